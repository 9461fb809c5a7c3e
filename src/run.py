"""The one entry point: `python -m src.run task=<name> [group=option] [key=value ...]`.

Composes conf/config.yaml, validates it, seeds, dispatches to the task, writes `metrics.json` in the
run's output directory and returns the task's main metric (for sweepers).
"""
from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

from src.config import register_configs, validate
from src.errors import DifflabError

log = logging.getLogger(__name__)
register_configs()


def run(cfg: DictConfig) -> dict[str, float]:
    """Validate, seed and run the task named by cfg.task.name; returns its flat metrics."""
    validate(cfg)
    from src.runtime import is_main_process, seed_everything, tune_allocator, write_json_atomic
    from src.tasks import get_task

    tune_allocator()
    task = get_task(cfg.task.name)
    seed_everything(cfg.seed)
    metrics = task(cfg)
    if is_main_process():
        write_json_atomic(metrics, f"{cfg.paths.output_dir}/metrics.json")
    return metrics


@hydra.main(config_path="../conf", config_name="config", version_base=None)
def main(cfg: DictConfig) -> float | None:
    try:
        metrics = run(cfg)
    except DifflabError as err:
        log.error("%s", err)
        if getattr(sys, "_difflab_raise", False):
            raise
        sys.exit(f"error: {err}")
    key = cfg.task.main_metric
    log.info("%s = %s", key, metrics.get(key))
    return metrics.get(key)


if __name__ == "__main__":
    main()
