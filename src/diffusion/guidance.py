"""Classifier-free guidance (Ho & Salimans 2022) as one wrapper around any conditional denoiser."""
from __future__ import annotations

import torch
from torch import Tensor

from src.diffusion.samplers import Denoiser


class ClassifierFreeGuidance:
    """eps = eps(x, null) + w (eps(x, cond) - eps(x, null)); both rows in ONE batched forward.

    w = 0 is the unconditional model and w = 1 the conditional one (each a single plain forward).
    `cond` and `null_cond` are tensors whose first dimension is the batch ([B, ...] and [...]).
    """

    def __init__(self, denoiser: Denoiser, null_cond: Tensor, scale: float) -> None:
        self.denoiser, self.null_cond, self.scale = denoiser, null_cond, float(scale)

    def __call__(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        null = self.null_cond.to(cond.device).expand_as(cond)
        if self.scale == 1.0:
            return self.denoiser(x_t, t, cond)
        if self.scale == 0.0:
            return self.denoiser(x_t, t, null)
        eps_cond, eps_null = self.denoiser(
            torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([cond, null])
        ).chunk(2)  # [2B, C, H, W] -> 2 x [B, C, H, W]
        return eps_null + self.scale * (eps_cond - eps_null)
