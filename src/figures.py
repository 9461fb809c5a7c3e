"""Report figures as PNG files: sample grids and the denoising process."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from src.images import make_grid, read_numbered_pngs, save_png, to_numpy_hwc  # noqa: E402
from src.runtime import atomic_write  # noqa: E402


def _save(fig, path: Path) -> Path:
    atomic_write(path, lambda p: fig.savefig(p, dpi=150, bbox_inches="tight"))
    plt.close(fig)
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


def save_labelled_grid(images: Tensor, path: Path, *, title: str, row_labels: Sequence[str],
                       col_labels: Sequence[str], cell: float = 0.8) -> Path:
    """uint8 [R, K, C, H, W] -> one R x K grid PNG with a label left of each row and above each column."""
    r, k, _, h, w = images.shape
    grid = make_grid(images.flatten(0, 1), nrow=k, pad=2)
    fig, ax = plt.subplots(figsize=(cell * k + 1.0, cell * r * h / w + 0.7))
    ax.imshow(to_numpy_hwc(grid).squeeze(), cmap="gray", interpolation="nearest")
    ax.set_yticks([2 + (h + 2) * i + h / 2 for i in range(r)], row_labels, fontsize=8)
    ax.set_xticks([2 + (w + 2) * j + w / 2 for j in range(k)], col_labels, fontsize=8)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def save_confusion(matrix: Tensor, path: Path, *, class_names: Sequence[str], title: str) -> Path:
    """int64 [K, K] counts (row = true class, column = predicted) -> a heat map of each row's fractions,
    named ticks up to 60 classes, counts written in the cells up to 20."""
    k = matrix.shape[0]
    rates = (matrix.double() / matrix.sum(dim=1, keepdim=True).clamp(min=1)).numpy()
    side = min(1.5 + 0.32 * k, 18.0)
    fig, ax = plt.subplots(figsize=(side + 1.2, side))
    im = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    if k <= 60:
        font = 8 if k <= 20 else 5
        ax.set_xticks(range(k), class_names, rotation=90, fontsize=font)
        ax.set_yticks(range(k), class_names, fontsize=font)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if matrix[i, j]:
                    ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=6,
                            color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def save_cases(images: Sequence, titles: Sequence[str], path: Path, *, title: str, ncols: int = 5) -> Path:
    """RGB images (PIL or uint8 [H, W, 3], any sizes) -> panels in rows of `ncols`, each with its title."""
    n = len(images)
    rows, cols = (n + ncols - 1) // ncols, min(n, ncols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.2 * rows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, label in zip(axes.flat, images, titles):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(label, fontsize=8)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def save_folder_grids(folders: dict[str, Path], fig_dir: Path, nrow: int = 5) -> dict[str, Path]:
    """One grid (`nrow` per row) of each folder's numbered PNGs as <fig_dir>/<name>.png; returns {name: path}."""
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, folder in folders.items():
        images = torch.stack([torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in read_numbered_pngs(folder)])
        paths[name] = fig_dir / f"{name}.png"
        save_png(make_grid(images, nrow=nrow), paths[name])
    return paths
