"""Noise schedules: the betas and the closed-form forward process q(x_t | x_0)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class NoiseSchedule:
    """A discrete schedule of T steps; `betas` is float64 [T], t indexes 0..T-1."""

    betas: Tensor
    timestep_offset: int = 1

    @classmethod
    def linear(cls, steps: int, beta_start: float, beta_end: float, timestep_offset: int = 1) -> "NoiseSchedule":
        """Linearly spaced betas (Ho et al. 2020, sec. 4), computed in float64 as the course does."""
        return cls(torch.linspace(beta_start, beta_end, steps, dtype=torch.float64), timestep_offset)

    @property
    def num_steps(self) -> int:
        return self.betas.numel()

    @property
    def alphas(self) -> Tensor:
        return 1.0 - self.betas

    @property
    def alphas_cumprod(self) -> Tensor:
        """alpha_bar_t = prod_{s<=t} alpha_s, float64 [T]."""
        return torch.cumprod(self.alphas, dim=0)

    def q_sample(self, x_0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (Ho et al. 2020, eq. 4); t: [B]."""
        # cast before moving: float64 never reaches a device without it (MPS); the same values either way
        alpha_bar_t = self.alphas_cumprod.to(device=x_0.device, dtype=x_0.dtype)[t].view(-1, 1, 1, 1)
        return alpha_bar_t.sqrt() * x_0 + (1.0 - alpha_bar_t).sqrt() * eps
