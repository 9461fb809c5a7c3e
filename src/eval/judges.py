"""Who judges generated digits (conf/judge/digit_classifiers.yaml): one classifier per domain, and the real
val images that FID compares the samples with."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from torch import Tensor, nn

from src.eval.classifiers import cached_val_accuracies, load_course_classifier, load_or_train_classifiers
from src.eval.resnet_svhn import load_svhn_classifier

log = logging.getLogger(__name__)


def load_judges(data_root: Path, *, cache_dir: Path, domains: list[str], seed: int, epochs: int, batch_size: int,
                lr: float, min_val_acc: float, mnistm_weights: Optional[str] = None,
                svhn_weights: Optional[str] = None) -> tuple[dict[str, nn.Module], dict[str, float]]:
    """One DigitNet per domain (trained once on real images, cached) and their `{domain}/classifier_val_acc`;
    the course grader's classifiers replace them where named: mnistm_weights (its Classifier.pth, a LeNet),
    svhn_weights (its resnet34_svhn: a file or the Hub id edadaltocg/resnet34_svhn)."""
    loaders = {"mnistm": (mnistm_weights, lambda w: load_course_classifier(Path(w).expanduser())),
               "svhn": (svhn_weights, load_svhn_classifier)}
    course = {d: loaders[d] for d in domains if d in loaders and loaders[d][0] is not None}
    ours = tuple(d for d in domains if d not in course)
    kw = dict(domains=ours, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    judges = load_or_train_classifiers(data_root, Path(cache_dir), min_val_acc=min_val_acc, **kw)
    accs = cached_val_accuracies(data_root, Path(cache_dir), **kw)
    for domain, (weights, load) in course.items():
        judges[domain] = load(weights)
        log.info("%s judged by the course grader's classifier %s", domain, weights)
    return {d: judges[d] for d in domains}, accs


def real_val_images(data_root: Path, domains: list[str]) -> dict[str, Tensor]:
    """uint8 [N, 3, 28, 28] val images per domain, the reference set for FID."""
    from src.data.digits import load_digit_split

    return {d: load_digit_split(Path(data_root) / d, "val")[0] for d in domains}
