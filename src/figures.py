"""Report figures as PNG files: sample grids and the denoising process."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from torch import Tensor  # noqa: E402

from src.images import make_grid, to_numpy_hwc  # noqa: E402


def _save(fig, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=150, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def save_class_grid(images: Tensor, path: Path, *, title: str, row_labels: Sequence[str]) -> Path:
    """uint8 [R, K, C, H, W] (a row per class) -> a labelled R x K grid PNG."""
    r, k = images.shape[:2]
    grid = make_grid(images.flatten(0, 1), nrow=k, pad=2)
    h = images.shape[-2] + 2
    fig, ax = plt.subplots(figsize=(0.45 * k + 0.8, 0.45 * r + 0.6))
    ax.imshow(to_numpy_hwc(grid), interpolation="nearest")
    ax.set_yticks([2 + h * i + h / 2 - 1 for i in range(r)], row_labels)
    ax.set_xticks([])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def save_process(frames: Tensor, path: Path, *, title: str, row_labels: Sequence[str],
                 col_labels: Sequence[str]) -> Path:
    """uint8 [R, F, C, H, W] (a row per sample, frames x_T ... x_0) -> a labelled strip PNG."""
    r, f = frames.shape[:2]
    fig, axes = plt.subplots(r, f, figsize=(1.1 * f, 1.2 * r), squeeze=False)
    for i in range(r):
        for j in range(f):
            ax = axes[i][j]
            ax.imshow(to_numpy_hwc(frames[i, j]), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(col_labels[j], fontsize=8)
            if j == 0:
                ax.set_ylabel(row_labels[i], fontsize=8)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)
