import math

import torch

from src.diffusion.schedules import NoiseSchedule


def test_linear_betas_match_the_formula():
    s = NoiseSchedule.linear(1000, 1e-4, 2e-2)
    assert s.betas.dtype == torch.float64 and s.betas.shape == (1000,)
    t = torch.arange(1000, dtype=torch.float64)
    assert torch.allclose(s.betas, 1e-4 + (2e-2 - 1e-4) * t / 999, atol=1e-15)
    assert torch.all(s.betas[1:] > s.betas[:-1])


def test_alpha_bar_is_the_cumulative_product():
    s = NoiseSchedule.linear(500, 1e-3, 1e-2)
    expected, prod = [], 1.0
    for b in s.betas.tolist():
        prod *= 1 - b
        expected.append(prod)
    assert torch.allclose(s.alphas_cumprod, torch.tensor(expected, dtype=torch.float64), rtol=1e-12)
    assert torch.all(s.alphas_cumprod[1:] < s.alphas_cumprod[:-1])
    # STACK_NOTES: the report's 500 steps of 1e-3..1e-2 keep some signal at the last step.
    assert math.isclose(float(s.alphas_cumprod[-1]), 0.063, abs_tol=1e-3)


def test_q_sample_is_eq_4():
    s = NoiseSchedule.linear(100, 1e-4, 2e-2)
    x0, eps = torch.randn(3, 3, 8, 8), torch.randn(3, 3, 8, 8)
    t = torch.tensor([0, 50, 99])
    a = s.alphas_cumprod[t].float().view(-1, 1, 1, 1)
    assert torch.allclose(s.q_sample(x0, t, eps), a.sqrt() * x0 + (1 - a).sqrt() * eps, atol=1e-6)
