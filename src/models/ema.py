"""Exponential moving average of a network's weights, kept as a frozen copy for sampling."""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """theta_ema <- d theta_ema + (1 - d) theta, with d warmed up as min(decay, (1 + n) / (10 + n))
    so that a short run is not dominated by its random initialisation."""

    def __init__(self, net: nn.Module, decay: float) -> None:
        super().__init__()
        self.decay = decay
        self.net = copy.deepcopy(net).requires_grad_(False).eval()
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        n = int(self.num_updates)
        d = min(self.decay, (1 + n) / (10 + n))
        ema_params = list(self.net.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in net.parameters()], 1.0 - d)
        for b_ema, b in zip(self.net.buffers(), net.buffers()):
            b_ema.copy_(b)
        self.num_updates += 1

    def forward(self, *args, **kwargs):
        return self.net(*args, **kwargs)
