"""Interpolation between two initial noises: spherical (slerp) and linear."""
from __future__ import annotations

import torch
from torch import Tensor


def slerp(z1: Tensor, z2: Tensor, alpha: float) -> Tensor:
    """sin((1-a) theta) / sin(theta) z1 + sin(a theta) / sin(theta) z2, theta = arccos(<z1,z2> / |z1||z2|).

    Shoemake 1985, as the course defines it; the whole tensor is one vector. Falls back to lerp when z1
    and z2 are (anti)parallel, where sin(theta) = 0. Computed in float64, returned in z1's dtype.
    """
    a, b = z1.double(), z2.double()
    cos = (a.flatten() @ b.flatten()) / (a.norm() * b.norm())
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    if torch.sin(theta).abs() < 1e-12:
        return lerp(z1, z2, alpha)
    out = (torch.sin((1 - alpha) * theta) * a + torch.sin(alpha * theta) * b) / torch.sin(theta)
    return out.to(z1.dtype)


def lerp(z1: Tensor, z2: Tensor, alpha: float) -> Tensor:
    """(1 - a) z1 + a z2."""
    return (1 - alpha) * z1 + alpha * z2
