"""Scores of a classifier's logits (top-k accuracy, per-class accuracy, the confusion matrix) and the files a
zero-shot run writes: predictions.csv, the confusion matrix and the correct / incorrect case grids."""
from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from src.data.clip_data import ImageSet, open_rgb
from src.figures import save_cases, save_confusion
from src.runtime import atomic_write

log = logging.getLogger(__name__)


def topk_hits(logits: Tensor, labels: Tensor, k: int) -> Tensor:
    """bool [N]: the label is among the k highest logits of [N, K] (all K when k > K)."""
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices  # [N, k]
    return (top == labels[:, None]).any(dim=1)


def confusion_matrix(predictions: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """int64 [K, K]: row = true class, column = predicted class."""
    return torch.bincount(labels * num_classes + predictions, minlength=num_classes**2).view(num_classes, num_classes)


def metric_names(class_names: Sequence[str]) -> list[str]:
    """`acc/<class name>` keys, unique: '/' becomes '_', a repeated name gets `_<class index>`."""
    clean = [name.replace("/", "_") for name in class_names]
    return [f"acc/{c}_{k}" if clean.count(c) > 1 else f"acc/{c}" for k, c in enumerate(clean)]


def classification_metrics(logits: Tensor, labels: Tensor, class_names: Sequence[str]) -> dict[str, float]:
    """Flat metrics: top1, top5, n, and acc/<class> for every class with at least one image."""
    hits = topk_hits(logits, labels, 1).double()
    metrics = {"top1": float(hits.mean()), "top5": float(topk_hits(logits, labels, 5).double().mean()),
               "n": float(len(labels))}
    for k, key in enumerate(metric_names(class_names)):
        mine = labels == k
        if mine.any():
            metrics[key] = float(hits[mine].mean())
    return metrics


def write_predictions(path: Path, images: ImageSet, logits: Tensor, labels: Tensor, indices: Tensor) -> Path:
    """predictions.csv (file, true, pred, top5 as names joined by '|', correct as 0/1), written atomically."""
    names = images.class_names
    top = logits.topk(min(5, logits.shape[1]), dim=1).indices  # [N, 5]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", "true", "pred", "top5", "correct"])
    for i, y, t in zip(indices.tolist(), labels.tolist(), top.tolist()):
        writer.writerow([images.relative(i), names[y], names[t[0]], "|".join(names[c] for c in t), int(t[0] == y)])
    return atomic_write(path, lambda p: p.write_text(buf.getvalue()))


def case_figures(fig_dir: Path, images: ImageSet, predictions: Tensor, labels: Tensor, indices: Tensor,
                 num_cases: int, seed: int, prompt: str) -> dict[str, Path]:
    """figures/correct.png and figures/incorrect.png: num_cases random cases each, titled 'true / pred'."""
    g = torch.Generator().manual_seed(seed)
    names, figures = images.class_names, {}
    for kind, mask in (("correct", predictions == labels), ("incorrect", predictions != labels)):
        where = mask.nonzero().flatten()
        chosen = where[torch.randperm(len(where), generator=g)[:num_cases]].tolist()
        if not chosen:
            log.info("no %s cases: figures/%s.png not written", kind, kind)
            continue
        figures[f"cases/{kind}"] = save_cases(
            [open_rgb(images.files[indices[j]]) for j in chosen],
            [f"{names[labels[j]]} / {names[predictions[j]]}" for j in chosen], fig_dir / f"{kind}.png",
            title=f"{kind.capitalize()} cases, true / predicted (prompt={prompt})")
    return figures


def write_zero_shot_outputs(out: Path, images: ImageSet, logits: Tensor, labels: Tensor, indices: Tensor, *,
                            top1: float, prompt: str, num_cases: int, seed: int) -> dict[str, Path]:
    """predictions.csv, figures/confusion.png and the case grids in `out`; returns the figures by W&B key."""
    predictions = logits.argmax(dim=1)
    out.mkdir(parents=True, exist_ok=True)
    write_predictions(out / "predictions.csv", images, logits, labels, indices)
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    matrix = confusion_matrix(predictions, labels, len(images.class_names))
    figures = {"confusion": save_confusion(matrix, fig_dir / "confusion.png", class_names=images.class_names,
                                           title=f"CLIP zero-shot, prompt={prompt}: top-1 {top1:.4f}")}
    figures.update(case_figures(fig_dir, images, predictions, labels, indices, num_cases, seed, prompt))
    return figures
