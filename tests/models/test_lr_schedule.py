"""task=digits' learning-rate factor: linear warmup, then a cosine down to model.lr_final."""
import math

import pytest

from src.models.diffusion_module import warmup_cosine


def test_warmup_then_cosine_to_the_final_factor():
    f = [warmup_cosine(s, warmup=10, total=110, final=0.1) for s in range(120)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)  # (step + 1) / warmup
    assert f[10] == pytest.approx(1.0) and f[60] == pytest.approx(0.55)  # half way down the cosine
    assert f[110] == pytest.approx(0.1) and f[119] == pytest.approx(0.1)  # held after max_steps
    assert all(a >= b for a, b in zip(f[10:], f[11:]))


@pytest.mark.parametrize("final", [0.0, 1.0])
def test_final_factor_zero_and_constant(final):
    f = [warmup_cosine(s, warmup=5, total=50, final=final) for s in range(5, 51)]
    assert f[0] == pytest.approx(1.0) and f[-1] == pytest.approx(final)
    if final == 1.0:
        assert f == [1.0] * len(f)


def test_default_factor_is_the_original_formula():
    """lr_final=0.1 gives the factors the recipe had before it was a setting, bit for bit."""
    for s in range(50, 1500, 37):
        progress = min((s - 50) / 1450, 1.0)
        assert warmup_cosine(s, warmup=50, total=1500, final=0.1) == 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
