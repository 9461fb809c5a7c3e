"""Helpers for tests that send real sweeps to a SLURM cluster (tests/slurm/cluster.sh starts one)."""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# submitit_slurm on the one-node test cluster: its CPU partition, no GPUs, one core per job.
ON_LOCAL_SLURM = ["hydra/launcher=submitit_slurm", "hydra.launcher.partition=debug",
                  "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1",
                  "hydra.launcher.mem_gb=2", "hydra.launcher.timeout_min=10"]


def src_run_env(env: dict) -> dict:
    """`env` for a `python -m src.run` subprocess: this checkout importable, offline hub and W&B."""
    return {**env, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}


def start_src(args: list[str], cwd: Path, env: dict) -> subprocess.Popen:
    """`python -m src.run <args>` in cwd, in the background (stderr kept for the assertion message)."""
    return subprocess.Popen([sys.executable, "-m", "src.run", *args], cwd=cwd, env=src_run_env(env),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def run_src(args: list[str], cwd: Path, env: dict, timeout: float = 900) -> subprocess.CompletedProcess:
    """`python -m src.run <args>` in cwd, as a user would type it."""
    return subprocess.run([sys.executable, "-m", "src.run", *args], cwd=cwd, env=src_run_env(env),
                          capture_output=True, text=True, timeout=timeout)


def array_job_ids(sweep: Path) -> list[str]:
    """The SLURM job ids submitit sent for this sweep (from <sweep>/.submitit/<id>_<task>, or <id> for a
    sweep of one job, which is not an array)."""
    names = [p.name for p in (sweep / ".submitit").iterdir()]
    return sorted({n.split("_")[0] for n in names if re.fullmatch(r"\d+(_\d+)?", n)}, key=int)


def sacct_states(job_id: str, *, duplicates: bool = False, settle: float = 30) -> dict[str, list[str]]:
    """Array task -> its states in the accounting database (with duplicates: every requeued attempt),
    waiting until none is pending or running (sacct lags squeue by a second or two)."""
    deadline = time.time() + settle
    while True:
        out = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", job_id,
                              *(["-D"] if duplicates else [])], capture_output=True, text=True, check=True).stdout
        states: dict[str, list[str]] = {}
        for line in out.splitlines():
            task, state = line.split("|")
            states.setdefault(task, []).append(state.split()[0])
        busy = any(s[-1] in ("PENDING", "RUNNING", "REQUEUED", "COMPLETING") for s in states.values())
        if states and not busy or time.time() > deadline:
            return states
        time.sleep(1)
