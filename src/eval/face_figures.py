"""The report's figures of task=faces: the eta grid and slerp vs linear interpolation between two noises."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

from src.diffusion.interpolation import lerp, slerp
from src.figures import save_labelled_grid
from src.images import to_uint8

# sample(x_T [N, C, H, W], eta) -> x_0 [N, C, H, W] in [-1, 1], the same variance noise at every call
Sample = Callable[[Tensor, float], Tensor]


def save_eta_grid(sample: Sample, noise: Tensor, names: Sequence[str], etas: Sequence[float], path: Path, *,
                  how: str) -> Path:
    """A row per eta, a column per noise file: the same x_T and variance noise z in every row."""
    rows = [to_uint8(sample(noise, float(eta))) for eta in etas]
    return save_labelled_grid(torch.stack(rows), path, title=f"{how}: eta by noise file",
                              row_labels=[f"eta={float(e):g}" for e in etas], col_labels=[f"{n}.pt" for n in names])


def save_interpolation(sample: Sample, z1: Tensor, z2: Tensor, alphas: Sequence[float], path: Path, *,
                       how: str, names: Sequence[str]) -> Path:
    """Slerp and linear rows, a column per alpha, DDIM eta 0, from z1 [C, H, W] to z2 (names: their files)."""
    x_T = torch.stack([f(z1, z2, a) for f in (slerp, lerp) for a in alphas])  # [2 * A, C, H, W]
    images = to_uint8(sample(x_T, 0.0)).view(2, len(alphas), *x_T.shape[1:])
    return save_labelled_grid(images, path, title=f"{how}, eta 0: {names[0]}.pt to {names[1]}.pt",
                              row_labels=["slerp", "linear"], col_labels=[f"α={a:.1f}" for a in alphas])
