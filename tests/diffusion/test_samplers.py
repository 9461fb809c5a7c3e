from functools import partial

import pytest
import torch

from src.diffusion.samplers import ddim_sample, ddim_timesteps, ddpm_sample, describe_sampler, dpmpp_sample
from src.diffusion.schedules import NoiseSchedule


def exact_denoiser(x_0: torch.Tensor, schedule: NoiseSchedule):
    """The true eps for a known x_0: eps = (x_t - sqrt(a_t) x_0) / sqrt(1 - a_t)."""
    a = schedule.alphas_cumprod

    def denoiser(x_t, t, cond):
        a_t = a[t].to(x_t.dtype).view(-1, 1, 1, 1)
        return (x_t - a_t.sqrt() * x_0) / (1 - a_t).sqrt()

    return denoiser


def test_course_ddim_timesteps():
    ts = ddim_timesteps(1000, 50, offset=1)
    assert ts[:3] == [981, 961, 941] and ts[-1] == 1 and len(ts) == 50


@pytest.mark.parametrize("num_steps", [1, 10, 50])
def test_ddim_eta0_with_exact_denoiser_recovers_x0(num_steps):
    s = NoiseSchedule.linear(1000, 1e-4, 2e-2)
    x_0 = torch.rand(4, 3, 8, 8, dtype=torch.float64) * 2 - 1
    x_T = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    out = ddim_sample(exact_denoiser(x_0, s), x_T, s, num_steps=num_steps, eta=0.0)
    assert torch.allclose(out, x_0, atol=1e-10)


def test_ddpm_with_exact_denoiser_ends_at_x0():
    s = NoiseSchedule.linear(100, 1e-4, 2e-2)
    x_0 = torch.rand(2, 3, 4, 4, dtype=torch.float64) * 2 - 1
    x_T = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    out = ddpm_sample(exact_denoiser(x_0, s), x_T, s, generator=torch.Generator().manual_seed(0))
    # the last step (t = 0) is the posterior mean with a_prev = 1, i.e. x_0 itself
    assert torch.allclose(out, x_0, atol=1e-10)


def test_samplers_are_deterministic_for_a_generator():
    s = NoiseSchedule.linear(50, 1e-4, 2e-2)
    net = torch.nn.Conv2d(3, 3, 3, padding=1).double()
    den = lambda x, t, c: net(x) * (t.view(-1, 1, 1, 1) / 50)  # noqa: E731
    x_T = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    runs = [ddim_sample(den, x_T, s, num_steps=10, eta=0.7, generator=torch.Generator().manual_seed(3))
            for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    other = ddim_sample(den, x_T, s, num_steps=10, eta=0.7, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(runs[0], other)
    a, b = (ddpm_sample(den, x_T, s, generator=torch.Generator().manual_seed(1)) for _ in range(2))
    assert torch.equal(a, b)


def test_callback_sees_every_step_in_order():
    s = NoiseSchedule.linear(100, 1e-4, 2e-2)
    seen = []
    ddim_sample(lambda x, t, c: torch.zeros_like(x), torch.randn(1, 1, 2, 2), s, num_steps=5,
                callback=lambda i, t, x: seen.append((i, t)))
    assert seen == [(0, 81), (1, 61), (2, 41), (3, 21), (4, 1)]


def test_describe_sampler_names_the_configured_algorithm():
    schedule = NoiseSchedule.linear(1000, 1e-4, 2e-2)
    assert describe_sampler(partial(ddim_sample, num_steps=50, eta=0.25), schedule) == "DDIM 50 steps, eta 0.25"
    assert describe_sampler(partial(ddpm_sample), schedule) == "DDPM 1000 steps"
    assert describe_sampler(partial(dpmpp_sample, num_steps=20), schedule) == "DPM-Solver++ 20 steps"


@pytest.mark.parametrize("order", [1, 2, 3])
def test_dpmpp_with_exact_denoiser_recovers_x0(order):
    s = NoiseSchedule.linear(1000, 1e-4, 2e-2)
    x_0 = torch.rand(4, 3, 8, 8) * 2 - 1
    out = dpmpp_sample(exact_denoiser(x_0, s), torch.randn(4, 3, 8, 8), s, num_steps=10, order=order)
    torch.testing.assert_close(out, x_0, atol=1e-4, rtol=0)


def test_dpmpp_first_order_is_ddim_on_ddims_timesteps():
    """DPM-Solver++ of order 1 is DDIM (Lu et al. 2022, sec. 4): the same steps give the same samples."""
    s = NoiseSchedule.linear(1000, 1e-4, 2e-2)
    net = torch.nn.Conv2d(3, 3, 3, padding=1)
    den = lambda x, t, c: torch.tanh(net(x)) * (t.view(-1, 1, 1, 1) / 1000)  # noqa: E731
    x_T = torch.randn(2, 3, 8, 8)
    seen = []
    out = dpmpp_sample(den, x_T, s, num_steps=10, order=1, clip_x0=False, callback=lambda i, t, x: seen.append(t))
    assert seen == ddim_timesteps(1000, 10, offset=1)
    torch.testing.assert_close(out, ddim_sample(den, x_T, s, num_steps=10, eta=0.0, clip_x0=False),
                               atol=1e-4, rtol=1e-4)
    # clip_x0 clamps every predicted x_0 to [-1, 1] (the solver then steps on the clamped x_0, where DDIM
    # keeps the model's eps): with a denoiser that overshoots, the result stays in range
    wild = lambda x, t, c: 5 * den(x, t, c) - 3 * x  # noqa: E731
    clipped = dpmpp_sample(wild, x_T, s, num_steps=10, order=1, clip_x0=True)
    assert clipped.abs().max() <= 1.0 + 1e-5 < dpmpp_sample(wild, x_T, s, num_steps=10, order=1, clip_x0=False).abs().max()


def test_dpmpp_converges_at_second_order_where_ddim_is_first_order():
    """Data ~ N(0, std^2): eps(x_t, t) = sqrt(1 - a) x_t / v_t with v_t = a std^2 + 1 - a, and the ODE's exact
    end point from x at t0 is x std / sqrt(v_t0). From 100 to 250 steps (2.5x), a first-order solver's error
    falls about 2.5x, a second-order one's about 6x."""
    s = NoiseSchedule.linear(1000, 1e-4, 2e-2)
    a, std = s.alphas_cumprod, 0.5

    def den(x, t, c):
        a_t = a[t].to(x.dtype).view(-1, 1, 1, 1)
        return (1 - a_t).sqrt() * x / (a_t * std**2 + 1 - a_t)

    x_T = torch.randn(64, 1, 4, 4, generator=torch.Generator().manual_seed(0))

    def error(sample, n):
        t0 = ddim_timesteps(1000, n)[0]
        exact = x_T * std / (a[t0] * std**2 + 1 - a[t0]).sqrt().float()
        return (sample(den, x_T, s, num_steps=n) - exact).abs().mean().item()

    ddim, dpmpp = partial(ddim_sample, clip_x0=False), partial(dpmpp_sample, clip_x0=False)
    assert 2.0 < error(ddim, 100) / error(ddim, 250) < 3.5
    assert error(dpmpp, 100) / error(dpmpp, 250) > 5.0
    assert error(dpmpp, 250) < 0.2 * error(ddim, 250)


def test_dpmpp_is_a_sampler_the_config_builds():
    from hydra.utils import instantiate

    from src.config import compose_config, validate

    cfg = compose_config(["task=digits", "sampler=dpmpp", "sampler.num_steps=12", "paths.output_dir=/tmp/x"])
    validate(cfg)
    sample = instantiate(cfg.sampler)
    assert sample.func is dpmpp_sample and sample.keywords == {"num_steps": 12, "order": 2, "clip_x0": True}
