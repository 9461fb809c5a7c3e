"""A configured sampler applied to given initial noise in batches, with the same variance noise each call."""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn

from src.diffusion.schedules import NoiseSchedule


class BatchedSampler:
    """`sample` (a partial of ddim_sample) from an unconditional eps network net(x_t, t); every call
    re-seeds the variance noise with `seed`, so each eta sees the same z at every step (eta 0 needs none)."""

    def __init__(self, net: nn.Module, sample: Callable, schedule: NoiseSchedule, *, batch_size: int, seed: int,
                 device: torch.device) -> None:
        self.net, self.sample, self.schedule = net.to(device), sample, schedule
        self.batch_size, self.seed, self.device = batch_size, seed, device

    def __call__(self, x_T: Tensor, eta: float, callback: Optional[Callable] = None) -> Tensor:
        """x_T [N, C, H, W] -> x_0 [N, C, H, W] in [-1, 1] (CPU), batch_size at a time; `callback(i, t, x_t)`
        after every step of every batch."""
        gen = torch.Generator(device=self.device).manual_seed(self.seed)
        out = []
        for start in range(0, len(x_T), self.batch_size):
            x = x_T[start:start + self.batch_size].to(self.device)
            out.append(self.sample(lambda x_t, t, cond: self.net(x_t, t), x, self.schedule, eta=eta,
                                   generator=gen, callback=callback).cpu())
        return torch.cat(out)
