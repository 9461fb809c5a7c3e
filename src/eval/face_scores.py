"""The course's score of task=faces: MSE on uint8 pixels against the ground truth."""
from __future__ import annotations

from typing import Sequence

from torch import Tensor


def mse_metrics(images: Tensor, gt: Tensor, names: Sequence[str]) -> dict[str, float]:
    """Per-image MSE on uint8 pixels as float ([N, C, H, W] each) as `mse/<name>`, and their mean `mse`."""
    per_image = (images.double() - gt.double()).pow(2).mean(dim=(1, 2, 3))  # [N]
    return {**{f"mse/{n}": float(v) for n, v in zip(names, per_image)}, "mse": float(per_image.mean())}
