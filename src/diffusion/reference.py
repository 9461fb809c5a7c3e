"""The reference DDIM that src.diffusion.samplers.ddim_sample is tested against, and that makes the
embedded face folder's GT: diffusers' DDIMScheduler driven step by step."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from src.diffusion.schedules import NoiseSchedule


@torch.no_grad()
def reference_ddim_sample(net: nn.Module, x_T: Tensor, schedule: NoiseSchedule, *, num_steps: int,
                          eta: float = 0.0, clip_x0: bool = True,
                          generator: Optional[torch.Generator] = None) -> Tensor:
    """DDIM by diffusers' DDIMScheduler (leading spacing, alpha_prev = 1 at the end, x0 clamped to
    [-1, 1]): x_T [B, C, H, W] -> x_0 [B, C, H, W], net(x_t, t) -> eps. For eta > 0 the variance noise of
    each step is drawn from `generator` in the order ddim_sample draws it.

    The scheduler gets the schedule's float64 alpha_bar, as the course computes it: with its own float32
    cumprod an untrained (chaotic) UNet drifts by O(1) over 50 steps from float rounding alone."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(num_train_timesteps=schedule.num_steps, trained_betas=schedule.betas.tolist(),
                              clip_sample=clip_x0, clip_sample_range=1.0, set_alpha_to_one=True,
                              steps_offset=schedule.timestep_offset, timestep_spacing="leading",
                              prediction_type="epsilon")
    scheduler.alphas_cumprod = schedule.alphas_cumprod.clone()
    scheduler.set_timesteps(num_steps)
    x_t = x_T
    for t in scheduler.timesteps:
        eps = net(x_t, torch.full((x_t.shape[0],), int(t), device=x_t.device, dtype=torch.long))
        z = (torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
             if eta > 0 else None)
        x_t = scheduler.step(eps, t, x_t, eta=eta, variance_noise=z).prev_sample
    return x_t
