"""task=evaluate: score a folder in the course's digits output layout, made here or elsewhere."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from src.errors import DataError
from src.eval.digit_scores import score_digit_folder
from src.tasks.digit_judging import load_judges, real_val_images, resolve_data_root


def run(cfg: DictConfig) -> dict[str, float]:
    """Accuracy per domain (label = first character of each file name), their mean, and FID."""
    folder = Path(cfg.task.folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"task.folder={str(folder)!r}: no such folder; expected <folder>/{{mnistm,svhn}}/"
                        "{digit}_{index:03d}.png")
    data_root = resolve_data_root(cfg)
    judges, accs = load_judges(cfg, data_root)
    metrics = score_digit_folder(folder, judges, real_val_images(data_root, list(judges)))
    return {**metrics, **accs}
