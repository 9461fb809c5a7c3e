"""The run context every task shares: its output directory, device, logger, timers, metrics and figures,
one way to build a Lightning Trainer, and one ending (total time, figures and metrics to the logger, the
logger closed so that the next job of a sweep gets its own run)."""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.loggers import finish, log_images, log_metrics
from src.progress import Progress
from src.runtime import is_main_process, task_device


class TaskRun:
    """What a task's run(cfg) writes into: `metrics` (flat floats) and `figures` ({W&B key: PNG path})."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg, self.out = cfg, Path(cfg.paths.output_dir)
        self.start = time.perf_counter()
        self.metrics: dict[str, float] = {}
        self.figures: dict[str, Path] = {}
        self.device = task_device(cfg.trainer)
        self.logger = None
        if "_target_" in cfg.logger:  # logger=none has no builder
            self.logger = instantiate(cfg.logger)(self.out, run_name=self.out.name, job_type=cfg.task.name,
                                                  config=OmegaConf.to_container(cfg, resolve=True))

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Seconds spent in the block as metrics['time/<name>_s']."""
        t0 = time.perf_counter()
        yield
        self.metrics[f"time/{name}_s"] = time.perf_counter() - t0

    def progress(self, stage: str, total: int, unit: str = "step") -> Progress:
        """A Progress for a long stage, shown unless trainer.enable_progress_bar=false."""
        return Progress(stage, total, unit=unit, enabled=bool(self.cfg.trainer.enable_progress_bar))

    def trainer(self, *, callbacks: tuple = (), stage: str = "training", log: bool = True, **overrides):
        """The Trainer of cfg.trainer writing into the run directory, with the project's step progress
        instead of Lightning's epoch bar; `overrides` replace trainer keys (e.g. max_steps)."""
        from src.training import StepProgress, tame_lightning_logging

        tame_lightning_logging()
        progress = [StepProgress(stage)] if self.cfg.trainer.enable_progress_bar else []
        logger = self.logger if log and self.logger is not None else False
        return instantiate(self.cfg.trainer, logger=logger, callbacks=[*callbacks, *progress],
                           enable_progress_bar=False, default_root_dir=str(self.out), **overrides)

    def finish(self) -> None:
        self.metrics["time/total_s"] = time.perf_counter() - self.start
        if is_main_process():
            log_images(self.logger, self.figures)
            log_metrics(self.logger, self.metrics)
        finish(self.logger)


@contextmanager
def task_run(cfg: DictConfig) -> Iterator[TaskRun]:
    """`with task_run(cfg) as r:` build, fit, sample, score into r.metrics / r.figures; on leaving, the
    figures and metrics go to the logger and it is closed (also when the task fails)."""
    r = TaskRun(cfg)
    try:
        yield r
    except BaseException:
        finish(r.logger)
        raise
    r.finish()
