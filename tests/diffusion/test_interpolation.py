import math

import pytest
import torch

from src.diffusion.interpolation import lerp, slerp


def unit(shape, seed):
    z = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return z / z.norm()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_slerp_returns_the_endpoints(dtype):
    z1, z2 = torch.randn(1, 3, 8, 8, dtype=dtype), torch.randn(1, 3, 8, 8, dtype=dtype)
    assert torch.allclose(slerp(z1, z2, 0.0), z1, atol=1e-6)
    assert torch.allclose(slerp(z1, z2, 1.0), z2, atol=1e-6)
    assert slerp(z1, z2, 0.3).dtype == dtype


def test_slerp_keeps_the_norm_of_unit_vectors():
    z1, z2 = unit((1, 3, 8, 8), 0), unit((1, 3, 8, 8), 1)
    for alpha in [i / 10 for i in range(11)]:
        assert slerp(z1, z2, alpha).norm().item() == pytest.approx(1.0, abs=1e-12)
    assert lerp(z1, z2, 0.5).norm().item() < 0.8  # the linear midpoint of near-orthogonal unit vectors


def test_slerp_follows_the_course_formula():
    z1, z2 = torch.randn(2, 5, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)
    theta = math.acos(float((z1 * z2).sum() / (z1.norm() * z2.norm())))
    a = 0.3
    expected = math.sin((1 - a) * theta) / math.sin(theta) * z1 + math.sin(a * theta) / math.sin(theta) * z2
    assert torch.allclose(slerp(z1, z2, a), expected, atol=1e-12)


def test_parallel_vectors_fall_back_to_lerp_and_lerp_is_linear():
    z = torch.randn(4, dtype=torch.float64)
    assert torch.allclose(slerp(z, 2 * z, 0.5), 1.5 * z)
    assert torch.equal(lerp(z, 3 * z, 0.5), 2 * z)
