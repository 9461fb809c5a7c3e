"""Score a folder of generated digits as the course grader does, plus FID in a classifier's feature space."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance

from src.data.digits import IMAGE_SIZE, read_digit_image
from src.errors import DataError
from src.eval.classifiers import classify, normalize_images

__all__ = ["read_generated", "classify", "digit_fid", "score_digit_folder"]

def read_generated(folder: Path, domain: str) -> tuple[Tensor, Tensor]:
    """`<folder>/<domain>/*.png` -> uint8 images [N, 3, 28, 28] and int64 labels [N] from the names' first character."""
    domain_dir = Path(folder) / domain
    files = sorted(domain_dir.glob("*.png")) if domain_dir.is_dir() else []
    if not files:
        raise DataError(f"{domain_dir}: no PNG files found; expected generated digits named {{digit}}_{{index:03d}}.png")
    labels = []
    for file in files:
        if not file.name[0].isdigit():
            raise DataError(f"{file}: name starts with {file.name[0]!r}; expected a digit 0-9 (the grader's label)")
        labels.append(int(file.name[0]))
    images = np.stack([read_digit_image(file) for file in files])  # [N, 28, 28, 3]
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.tensor(labels, dtype=torch.int64)


class _ClassifierFeatures(nn.Module):
    """Maps uint8 images [B, 3, H, W] to a classifier's `features` [B, D], the form torchmetrics' FID calls."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        with torch.no_grad():
            # An int attribute stops torchmetrics probing with a 299x299 dummy image LeNet cannot take.
            self.num_features = int(model.eval().features(torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE)).shape[-1])

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        """uint8 [B, 3, 28, 28] -> float [B, D]."""
        self.model.eval()
        return self.model.features(normalize_images(images))


def digit_fid(model: nn.Module, real: Tensor, fake: Tensor, batch_size: int = 500) -> float:
    """FID between uint8 image sets [N, 3, 28, 28] and [M, 3, 28, 28] in `model.features` space."""
    if len(real) < 2 or len(fake) < 2:
        raise DataError(f"digit FID got {len(real)} real and {len(fake)} generated images; expected at least 2 of each")
    # normalize=False: the wrapper receives the uint8 images unchanged and normalises them itself.
    fid = FrechetInceptionDistance(feature=_ClassifierFeatures(model), normalize=False)
    for chunk in real.split(batch_size):
        fid.update(chunk, real=True)
    for chunk in fake.split(batch_size):
        fid.update(chunk, real=False)
    return max(float(fid.compute()), 0.0)  # tiny negative values are round-off on identical sets


def _domain_scores(domain: str, model: nn.Module, images: Tensor, labels: Tensor) -> dict[str, float]:
    correct = classify(model, images) == labels  # [N] bool
    metrics = {f"{domain}/acc": correct.float().mean().item(), f"{domain}/n": float(len(labels))}
    for digit in range(10):
        mask = labels == digit
        if mask.any():
            metrics[f"{domain}/acc_digit{digit}"] = correct[mask].float().mean().item()
    return metrics


def score_digit_folder(folder: Path, classifiers: dict[str, nn.Module],
                       real_val: dict[str, Tensor] | None = None) -> dict[str, float]:
    """Grader-style accuracy per domain and their mean; FID per domain when real images are given."""
    metrics: dict[str, float] = {}
    for domain, model in classifiers.items():
        images, labels = read_generated(folder, domain)
        metrics.update(_domain_scores(domain, model, images, labels))
        if real_val is not None and domain in real_val:
            metrics[f"{domain}/fid"] = digit_fid(model, real_val[domain], images)
    accs = [metrics[f"{domain}/acc"] for domain in classifiers]
    metrics["mean_acc"] = sum(accs) / len(accs) if accs else float("nan")
    return metrics
