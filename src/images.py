"""Tensor <-> PNG conversion and image grids (no torchvision)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def to_uint8(x: Tensor) -> Tensor:
    """[..., C, H, W] in [-1, 1] -> uint8 in [0, 255], rounded as (x + 1) * 127.5."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def save_png(img: Tensor, path: str | Path) -> None:
    """Write a uint8 [C, H, W] tensor as an RGB (or L) PNG."""
    arr = img.permute(1, 2, 0).numpy()
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(path)


def make_grid(images: Tensor, nrow: int, pad: int = 2, pad_value: int = 255) -> Tensor:
    """uint8 [N, C, H, W] -> uint8 [C, rows*(H+pad)+pad, nrow*(W+pad)+pad], filled row by row."""
    n, c, h, w = images.shape
    rows = (n + nrow - 1) // nrow
    grid = torch.full((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), pad_value, dtype=torch.uint8)
    for k in range(n):
        r, col = divmod(k, nrow)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[:, top:top + h, left:left + w] = images[k]
    return grid


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a fully written folder into place; an older `final` is removed first."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def fresh_dir(path: Path) -> Path:
    """An empty folder at `path` (removing what an interrupted run left there)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def to_numpy_hwc(img: Tensor) -> np.ndarray:
    """uint8 [C, H, W] -> numpy [H, W, C] for matplotlib."""
    return img.permute(1, 2, 0).numpy()


def read_numbered_pngs(folder: Path) -> list[Image.Image]:
    """The PNGs `<stem>_<i>.png` of `folder` as RGB images, in index order."""
    files = sorted(Path(folder).glob("*.png"), key=lambda f: int(f.stem.rsplit("_", 1)[1]))
    return [Image.open(f).convert("RGB") for f in files]
