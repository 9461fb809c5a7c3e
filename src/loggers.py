"""Experiment loggers: W&B (offline by default), CSV, or none; plus image logging for each."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf


def build_logger(cfg: DictConfig, output_dir: Path, *, run_name: str, job_type: str):
    """One Lightning logger for this job, carrying the composed config; None for logger=none."""
    lcfg = cfg.logger
    if lcfg.name == "none":
        return None
    if lcfg.name == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=str(output_dir), name="csv", version="")
    from lightning.pytorch.loggers import WandbLogger

    os.environ.setdefault("WANDB_SILENT", "true")
    logger = WandbLogger(project=lcfg.project, name=run_name, save_dir=str(output_dir), mode=lcfg.mode,
                         group=lcfg.group, job_type=job_type, tags=list(lcfg.tags) or None)
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return logger


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


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def tame_lightning_logging() -> None:
    """One copy of each Lightning message (through Hydra's handlers, into run.log), without its
    advertising tips or the warning about the EMA copy that is in eval mode on purpose."""
    import warnings

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropTips())
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
