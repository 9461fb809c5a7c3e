"""The one entry point: `python -m src.run task=<name> [group=option] [key=value ...]`.

Composes conf/config.yaml, validates it, seeds, dispatches to the task, writes `metrics.json` in the
run's output directory and returns the task's main metric (for sweepers).
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from src.config import check_removed_keys, register_configs, validate
from src.errors import ConfigError, DifflabError

log = logging.getLogger(__name__)
register_configs()


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def finished_metrics(cfg: DictConfig) -> dict[str, float] | None:
    """A sweep's job that already finished (its metrics.json exists): its metrics, else None."""
    path = Path(cfg.paths.output_dir) / "metrics.json"
    if not (cfg.skip_finished and in_multirun() and path.is_file()):
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # written atomically, so never half-written; unreadable means edited: run again


def check_launch(cfg: DictConfig, tasks_per_node: int | None = None) -> None:
    """Lightning starts the extra DDP processes of a local run by re-running the command line, which in
    a local multirun would start the whole sweep again in each: refuse that combination. On SLURM the
    ranks are SLURM's tasks, one per device (`tasks_per_node`: the SLURM launcher's, when planning)."""
    devices = cfg.trainer.devices
    many = isinstance(devices, int) and devices > 1 or str(devices) == "-1"
    if tasks_per_node is not None:
        if isinstance(devices, int) and devices > 1 and tasks_per_node != devices:
            raise ConfigError(f"trainer.devices={devices} with hydra.launcher.tasks_per_node={tasks_per_node}: "
                              f"Lightning takes one rank per SLURM task; set hydra.launcher.tasks_per_node={devices}")
        return
    if many and in_multirun() and "SLURM_NTASKS" not in os.environ:
        raise ConfigError(f"trainer.devices={devices} in a local multirun: Lightning would re-run the whole "
                          "sweep in every DDP process; run the jobs one by one, or on SLURM with "
                          f"hydra/launcher=submitit_slurm hydra.launcher.tasks_per_node={devices}")


def run(cfg: DictConfig) -> dict[str, float]:
    """Validate, seed and run the task named by cfg.task.name; returns its flat metrics."""
    validate(cfg)
    check_launch(cfg)
    done = finished_metrics(cfg)
    if done is not None:
        log.info("skipping: %s/metrics.json exists (skip_finished=false runs it again)", cfg.paths.output_dir)
        return done
    from src.runtime import (is_main_process, match_threads_to_allocation, seed_everything, tune_allocator,
                             write_json_atomic)
    from src.tasks import get_task

    tune_allocator()
    match_threads_to_allocation()
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
        if getattr(sys, "_difflab_raise", False) or in_multirun():
            raise  # in a sweep the other jobs go on; Hydra reports this one and exits non-zero at the end
        sys.exit(f"error: {err}")
    key = cfg.task.main_metric
    if metrics:  # empty in the extra processes of a DDP run
        log.info("%s = %s", key, metrics.get(key))
    return metrics.get(key)


def one_job_sweep_if_launched(argv: list[str]) -> list[str]:
    """Hydra hands jobs to a launcher only in multirun mode, so `task=ti hydra/launcher=submitit_slurm`
    would quietly run here. Named launchers get what they were named for: a sweep of one job."""
    launcher = [a for a in argv if a.startswith("hydra/launcher=") and a != "hydra/launcher=basic"]
    modal = {"-m", "--multirun", "--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i"}
    if launcher and not modal & set(argv) and not any(a.startswith(("hydra.mode=", "--cfg=", "--info=")) for a in argv):
        print(f"{launcher[-1]}: sending this run as a sweep of one job (multirun/...)", file=sys.stderr)
        return [*argv, "hydra.mode=MULTIRUN"]
    return argv


if __name__ == "__main__":
    from hydra.errors import HydraException

    from src.config import hydra_error_line

    try:
        check_removed_keys(sys.argv[1:])
    except ConfigError as err:
        sys.exit(f"error: {err}")
    sys.argv = one_job_sweep_if_launched(sys.argv)
    # Hydra then lets its errors through instead of printing them with a pointer to this variable: an unknown
    # key or option, a bad override, becomes one line here. (A bug in a task still shows its traceback.)
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    try:
        main()
    except HydraException as err:
        sys.exit(f"error: {hydra_error_line(err)}")
