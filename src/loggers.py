"""Experiment loggers: W&B (offline by default), CSV, or none; plus image logging for each."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from src.config import own_overrides


def wandb_logger(output_dir: Path, *, run_name: str, job_type: str, config: dict, project: str, mode: str,
                 group: Optional[str] = None, tags: Optional[list] = None):
    """Lightning's WandbLogger for this job (logger=wandb), carrying the composed config. In a sweep, runs
    share a group named after the sweep directory, carry their own overrides as tags and, in the config
    field sweep_variant, their overrides without the seed."""
    from lightning.pytorch.loggers import WandbLogger

    os.environ.setdefault("WANDB_SILENT", "true")
    group, tags = sweep_group_and_tags(group, list(tags or []))
    if group is not None and tags:
        run_name = f"{run_name}:{','.join(tags)}"[:128]  # job number and overrides, e.g. 3:sampler.eta=0.75
    logger = WandbLogger(project=project, name=run_name, save_dir=str(output_dir), mode=mode, group=group,
                         job_type=job_type, tags=tags or None)
    # Lightning always passes anonymous=None, which wandb >= 0.19 answers with a warning a user cannot act on
    # ("The anonymous setting has no effect"); the run is created lazily, so dropping it here is enough.
    logger._wandb_init.pop("anonymous", None)
    variant = sweep_variant()
    logger.log_hyperparams(config if variant is None else {**config, "sweep_variant": variant})
    return logger


def csv_logger(output_dir: Path, *, run_name: str, job_type: str, config: dict):
    """Lightning's CSVLogger (logger=csv): <run>/csv/metrics.csv."""
    from lightning.pytorch.loggers import CSVLogger

    return CSVLogger(save_dir=str(output_dir), name="csv", version="")


def sweep_group_and_tags(group: Optional[str], tags: list[str]) -> tuple[Optional[str], list[str]]:
    """In a sweep, runs share a W&B group named after the sweep's directory (unless logger.group is
    set) and carry their own overrides as tags (W&B allows 64 characters per tag)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return group, tags
    hc = HydraConfig.get()
    if hc.mode == RunMode.MULTIRUN and group is None:
        group = str(hc.sweep.dir)
    return group, list(dict.fromkeys(t[:64] for t in [*tags, *own_overrides(hc.overrides.task)]))


def sweep_variant() -> Optional[str]:
    """In a sweep, the job's overrides without its seed (and task): the W&B config field `sweep_variant`, by
    which the dashboard groups the seeds of one setting and averages them; None outside sweeps."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    own = [o for o in own_overrides(HydraConfig.get().overrides.task) if not o.startswith(("seed=", "task="))]
    return ",".join(own) or "default"


def log_images(logger: Any, images: dict[str, Path], step: Optional[int] = None) -> None:
    """Send PNG figures to W&B; other loggers keep them as files in the run directory."""
    if logger is None or type(logger).__name__ != "WandbLogger":
        return
    for key, path in images.items():
        logger.log_image(key=key, images=[str(path)], step=step)


def log_metrics(logger: Any, metrics: dict[str, float], step: Optional[int] = None) -> None:
    """Final metrics to the logger (also the W&B summary)."""
    if logger is None:
        return
    logger.log_metrics(metrics, step=step)
    if type(logger).__name__ == "WandbLogger":
        logger.experiment.summary.update(metrics)
    logger.save()


def finish(logger: Any) -> None:
    """Close the W&B run so that the next job of a sweep gets its own."""
    if logger is not None and type(logger).__name__ == "WandbLogger":
        import wandb

        wandb.finish()


def log_table(logger: Any, key: str, columns: list[str], data: list[list], image_column: Optional[str] = None) -> None:
    """A W&B table (other loggers keep the run's files only); the values of `image_column` are PNG paths."""
    if logger is None or type(logger).__name__ != "WandbLogger":
        return
    import wandb

    if image_column is not None:
        i = columns.index(image_column)
        data = [[*row[:i], wandb.Image(str(row[i])), *row[i + 1:]] for row in data]
    logger.log_table(key=key, columns=columns, data=data)
