"""task=evaluate: score a folder in the course's digits output layout, made here or elsewhere."""
from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from src.data.embedded_digits import resolve_data_root
from src.errors import DataError
from src.eval.digit_scores import score_digit_folder
from src.eval.judges import real_val_images
from src.tasks.context import task_run


def run(cfg: DictConfig) -> dict[str, float]:
    """Accuracy per domain (label = first character of each file name), their mean, and FID."""
    folder = Path(cfg.task.folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"task.folder={str(folder)!r}: no such folder; expected <folder>/{{mnistm,svhn}}/"
                        "{digit}_{index:03d}.png")
    with task_run(cfg) as r:
        d = cfg.data
        data_root = resolve_data_root(d.root, cfg.paths.cache_dir, **d.embedded)
        judges, judge_accs = instantiate(cfg.judge)(data_root, cache_dir=cfg.paths.cache_dir,
                                                    domains=list(d.domains), seed=cfg.seed)
        r.metrics.update(score_digit_folder(folder, judges, real_val_images(data_root, list(judges))))
        r.metrics.update(judge_accs)
    return r.metrics
