"""What task=digits and task=evaluate share: where the digits data is, and who judges the samples."""
from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig
from torch import Tensor, nn

log = logging.getLogger(__name__)


def resolve_data_root(cfg: DictConfig) -> Path:
    """data.root if given (the course's <hw2_data>/digits), else the embedded set in the cache."""
    if cfg.data.root is not None:
        return Path(cfg.data.root).expanduser()
    from src.data.embedded_digits import ensure_embedded_digits

    e = cfg.data.embedded
    return ensure_embedded_digits(Path(cfg.paths.cache_dir), seed=e.seed, n_train=e.n_train, n_val=e.n_val)


def load_judges(cfg: DictConfig, data_root: Path) -> tuple[dict[str, nn.Module], dict[str, float]]:
    """One classifier per domain (trained once on real images, cached) and their val accuracies;
    task.classifier.course_mnistm swaps in the course's own MNIST-M LeNet."""
    from src.eval.classifiers import cached_val_accuracies, load_course_classifier, load_or_train_classifiers

    c = cfg.task.classifier
    domains = tuple(cfg.data.domains)
    kw = dict(epochs=c.epochs, batch_size=c.batch_size, lr=c.lr, seed=cfg.seed)
    judges = load_or_train_classifiers(data_root, Path(cfg.paths.cache_dir), domains=domains,
                                       min_val_acc=c.min_val_acc, **kw)
    accs = cached_val_accuracies(data_root, Path(cfg.paths.cache_dir), domains=domains, **kw)
    if c.course_mnistm is not None:
        judges["mnistm"] = load_course_classifier(Path(c.course_mnistm).expanduser())
        accs.pop("mnistm/classifier_val_acc", None)
        log.info("mnistm judged by the course classifier %s", c.course_mnistm)
    return judges, accs


def real_val_images(data_root: Path, domains: list[str]) -> dict[str, Tensor]:
    """uint8 [N, 3, 28, 28] val images per domain, the reference set for FID."""
    from src.data.digits import load_digit_split

    return {d: load_digit_split(data_root / d, "val")[0] for d in domains}
