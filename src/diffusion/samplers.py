"""Samplers: plain functions of a denoiser and the initial noise; all randomness from `generator`.

A denoiser is any callable `(x_t [B, C, H, W], t [B] int64, cond) -> eps [B, C, H, W]`. A callback
`(i, t, x_t)` is called after every step with the new sample, for progress and trajectories.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import Tensor

from src.diffusion.schedules import NoiseSchedule

Denoiser = Callable[[Tensor, Tensor, Any], Tensor]
Callback = Callable[[int, int, Tensor], None]


def ddim_timesteps(num_train_steps: int, num_steps: int, offset: int = 1) -> list[int]:
    """Uniform "leading" timesteps, descending: 1000 steps, 50 -> [981, 961, ..., 1]."""
    if not 1 <= num_steps <= num_train_steps:
        raise ValueError(f"num_steps={num_steps}: expected 1..{num_train_steps}")
    ratio = num_train_steps // num_steps
    return [min(i * ratio + offset, num_train_steps - 1) for i in reversed(range(num_steps))]


def num_sampling_steps(sample: Callable, schedule: NoiseSchedule) -> int:
    """How many denoiser calls a configured sampler (a partial of ddim_, dpmpp_ or ddpm_sample) makes."""
    return int(getattr(sample, "keywords", {}).get("num_steps", schedule.num_steps))


def describe_sampler(sample: Callable, schedule: NoiseSchedule) -> str:
    """A configured sampler in words, for figure titles: "DDIM 50 steps, eta 0" or "DDPM 1000 steps"."""
    name = getattr(sample, "func", sample).__name__.removesuffix("_sample").upper().replace("DPMPP", "DPM-Solver++")
    eta = getattr(sample, "keywords", {}).get("eta")
    return f"{name} {num_sampling_steps(sample, schedule)} steps" + ("" if eta is None else f", eta {eta:g}")


def _randn(x: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _predict_x0(x_t: Tensor, eps: Tensor, alpha_bar_t: float, clip_x0: bool) -> Tensor:
    """x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t) (DDIM, eq. 12 first term)."""
    x_0 = (x_t - (1.0 - alpha_bar_t) ** 0.5 * eps) / alpha_bar_t**0.5
    return x_0.clamp(-1.0, 1.0) if clip_x0 else x_0


@torch.no_grad()
def ddim_sample(
    denoiser: Denoiser,
    x_T: Tensor,
    schedule: NoiseSchedule,
    *,
    num_steps: int,
    cond: Any = None,
    eta: float = 0.0,
    clip_x0: bool = True,
    generator: Optional[torch.Generator] = None,
    callback: Optional[Callback] = None,
) -> Tensor:
    """DDIM (Song et al. 2021, eq. 12) with sigma_t = eta sqrt((1-a_prev)/(1-a_t)) sqrt(1-a_t/a_prev).

    Matches diffusers' DDIMScheduler (leading spacing, set_alpha_to_one, use_clipped_model_output=False).
    """
    alpha_bar = schedule.alphas_cumprod.tolist()
    ratio = schedule.num_steps // num_steps
    x_t = x_T
    for i, t in enumerate(ddim_timesteps(schedule.num_steps, num_steps, schedule.timestep_offset)):
        a_t = alpha_bar[t]
        a_prev = alpha_bar[t - ratio] if t - ratio >= 0 else 1.0
        eps = denoiser(x_t, torch.full((x_t.shape[0],), t, device=x_t.device, dtype=torch.long), cond)
        x_0 = _predict_x0(x_t, eps, a_t, clip_x0)
        sigma_t = eta * ((1 - a_prev) / (1 - a_t)) ** 0.5 * (1 - a_t / a_prev) ** 0.5
        x_t = a_prev**0.5 * x_0 + (1 - a_prev - sigma_t**2) ** 0.5 * eps
        if eta > 0:
            x_t = x_t + sigma_t * _randn(x_t, generator)
        if callback is not None:
            callback(i, t, x_t)
    return x_t


@torch.no_grad()
def ddpm_sample(
    denoiser: Denoiser,
    x_T: Tensor,
    schedule: NoiseSchedule,
    *,
    cond: Any = None,
    clip_x0: bool = True,
    generator: Optional[torch.Generator] = None,
    callback: Optional[Callback] = None,
) -> Tensor:
    """Ancestral sampling over all T steps (Ho et al. 2020, Algorithm 2) through the posterior
    q(x_{t-1} | x_t, x_0) of eq. 7: mean from the predicted (optionally clipped) x_0, variance beta~_t."""
    betas = schedule.betas.tolist()
    alpha_bar = schedule.alphas_cumprod.tolist()
    x_t = x_T
    for i, t in enumerate(reversed(range(schedule.num_steps))):
        a_t, a_prev, beta_t = alpha_bar[t], (alpha_bar[t - 1] if t > 0 else 1.0), betas[t]
        eps = denoiser(x_t, torch.full((x_t.shape[0],), t, device=x_t.device, dtype=torch.long), cond)
        x_0 = _predict_x0(x_t, eps, a_t, clip_x0)
        # eq. 7: mu~ = sqrt(a_prev) beta_t / (1 - a_t) x_0 + sqrt(alpha_t) (1 - a_prev) / (1 - a_t) x_t
        mean = (a_prev**0.5 * beta_t / (1 - a_t)) * x_0 + ((1 - beta_t) ** 0.5 * (1 - a_prev) / (1 - a_t)) * x_t
        x_t = mean
        if t > 0:
            x_t = mean + ((1 - a_prev) / (1 - a_t) * beta_t) ** 0.5 * _randn(x_t, generator)
        if callback is not None:
            callback(i, t, x_t)
    return x_t


@torch.no_grad()
def dpmpp_sample(
    denoiser: Denoiser,
    x_T: Tensor,
    schedule: NoiseSchedule,
    *,
    num_steps: int,
    order: int = 2,
    cond: Any = None,
    clip_x0: bool = True,
    generator: Optional[torch.Generator] = None,
    callback: Optional[Callback] = None,
) -> Tensor:
    """DPM-Solver++ (Lu et al. 2022), multistep, deterministic: diffusers' DPMSolverMultistepScheduler on
    this schedule's betas and DDIM's timesteps, `order` 1 (= DDIM), 2 or 3, the last steps at lower order
    (stable at few steps). clip_x0 clamps each predicted x_0 to [-1, 1] as DDIM's does (diffusers' dynamic
    thresholding with its bound at 1: a plain clamp); under classifier-free guidance it decides the result
    (a digits model at guidance 3, 20 steps: mean_acc 0.17 unclipped).

    `generator` is unused (the solver draws no noise); it is accepted so that every sampler is called alike."""
    from diffusers import DPMSolverMultistepScheduler

    if not 1 <= num_steps <= schedule.num_steps:
        raise ValueError(f"num_steps={num_steps}: expected 1..{schedule.num_steps}")
    solver = DPMSolverMultistepScheduler(
        num_train_timesteps=schedule.num_steps, trained_betas=schedule.betas.float().numpy(),
        algorithm_type="dpmsolver++", solver_order=order, prediction_type="epsilon",
        lower_order_final=True, thresholding=clip_x0, sample_max_value=1.0)
    solver.set_timesteps(device=x_T.device, timesteps=ddim_timesteps(schedule.num_steps, num_steps,
                                                                     schedule.timestep_offset))
    x_t = x_T
    for i, t in enumerate(solver.timesteps.tolist()):
        eps = denoiser(x_t, torch.full((x_t.shape[0],), t, device=x_t.device, dtype=torch.long), cond)
        x_t = solver.step(eps, t, x_t).prev_sample
        if callback is not None:
            callback(i, t, x_t)
    return x_t
