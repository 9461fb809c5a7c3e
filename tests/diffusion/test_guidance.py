import torch

from src.diffusion.guidance import ClassifierFreeGuidance


class CountingDenoiser:
    """eps depends on the condition, so conditional and null outputs differ; counts forwards."""

    def __init__(self):
        self.calls, self.batch_sizes = 0, []

    def __call__(self, x, t, cond):
        self.calls += 1
        self.batch_sizes.append(x.shape[0])
        return x * (1 + cond[:, :1].view(-1, 1, 1, 1).float()) + t.view(-1, 1, 1, 1)


def test_scale_0_and_1_are_the_unconditional_and_conditional_outputs():
    x, t = torch.randn(3, 1, 2, 2), torch.tensor([5, 6, 7])
    cond, null = torch.tensor([[1, 0], [2, 1], [3, 0]]), torch.tensor([10, 2])
    den = CountingDenoiser()
    assert torch.equal(ClassifierFreeGuidance(den, null, 1.0)(x, t, cond), den(x, t, cond))
    assert torch.equal(ClassifierFreeGuidance(den, null, 0.0)(x, t, cond), den(x, t, null.expand(3, 2)))


def test_guided_output_is_one_batched_forward():
    x, t = torch.randn(3, 1, 2, 2), torch.tensor([5, 6, 7])
    cond, null = torch.tensor([[1, 0], [2, 1], [3, 0]]), torch.tensor([10, 2])
    den = CountingDenoiser()
    out = ClassifierFreeGuidance(den, null, 5.0)(x, t, cond)
    assert den.calls == 1 and den.batch_sizes == [6]
    e_c, e_u = den(x, t, cond), den(x, t, null.expand(3, 2))
    assert torch.allclose(out, e_u + 5.0 * (e_c - e_u))
