"""Scores of a classifier's logits: top-k accuracy, per-class accuracy, the confusion matrix."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


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
