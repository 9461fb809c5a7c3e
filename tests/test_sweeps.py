"""Sweeps on this machine: the launcher presets, sweep directories named by the command, resumable and
failure-tolerant multiruns, W&B grouping, and DDP on CPU."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import src.config as config
from src.config import CONF_DIR, register_configs, sweep_name
from helpers.slurm import run_src


def compose_with_hydra(overrides):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


def test_slurm_preset_has_gpu_cluster_defaults_and_takes_overrides():
    cfg = compose_with_hydra(["hydra/launcher=submitit_slurm", "hydra.launcher.partition=a100",
                              "hydra.launcher.account=my_lab", "+hydra.launcher.additional_parameters={qos:high}"])
    launcher = cfg.hydra.launcher
    assert launcher.partition == "a100" and launcher.account == "my_lab"
    assert launcher.gpus_per_node == 1 and launcher.cpus_per_task == 8 and launcher.mem_gb == 32
    assert launcher.timeout_min == 240 and launcher.array_parallelism == 16 and launcher.max_num_timeout == 3
    assert launcher.additional_parameters == {"qos": "high"}
    built = instantiate(launcher)
    assert type(built).__name__ == "SlurmLauncher"
    assert built.params["partition"] == "a100" and built.params["setup"][0].startswith("echo")


def test_local_preset_builds_the_local_launcher():
    built = instantiate(compose_with_hydra(["hydra/launcher=submitit_local"]).hydra.launcher)
    assert type(built).__name__ == "LocalLauncher" and built.params["gpus_per_node"] == 0


@pytest.mark.parametrize("typed,expected", [
    (["task=faces", "sampler.eta=0,0.5,1.0", "hydra/launcher=submitit_slurm", "hydra.launcher.partition=x"],
     "sampler.eta=0,0.5,1.0"),
    (["task=digits"], "default"),
    (["data.root=/data/hw2 data", "+experiment=quick"], "data.root=_data_hw2_data,+experiment=quick"),
])
def test_sweep_name_is_the_typed_overrides_without_task_and_hydra(monkeypatch, typed, expected):
    monkeypatch.setattr(config, "_typed_overrides", typed)
    assert sweep_name() == expected


def test_long_sweep_names_are_cut_and_keep_a_hash(monkeypatch):
    monkeypatch.setattr(config, "_typed_overrides", [f"model.lr={i}e-4" for i in range(20)])
    long = sweep_name()
    monkeypatch.setattr(config, "_typed_overrides", [f"model.lr={i}e-4" for i in range(21)])
    assert len(long) == 73 and long[:64] == sweep_name()[:64] and long != sweep_name()


@pytest.mark.slow
def test_failing_job_keeps_the_others_and_a_rerun_skips_them(tmp_path, tiny_faces_overrides):
    env = {**os.environ, "DIFFLAB_CACHE": str(tmp_path / "cache")}
    args = ["-m", "task=faces", "sampler.eta=0,2,1", *tiny_faces_overrides, "logger=none"]
    first = run_src(args, tmp_path, env)
    assert first.returncode != 0
    (sweep,) = (tmp_path / "multirun" / "faces").iterdir()
    assert sweep.name.startswith("sampler.eta=0,2,1,")
    assert (sweep / "0" / "metrics.json").is_file() and (sweep / "2" / "metrics.json").is_file()
    assert not (sweep / "1" / "metrics.json").exists()
    assert "sampler.eta=2.0: expected a value in [0, 1]" in (sweep / "1" / "run.log").read_text()

    subprocess.run([sys.executable, "-m", "src.report", str(sweep)], check=True, capture_output=True)
    rows = list(csv.DictReader((sweep / "report.csv").open()))
    assert [r["status"] for r in rows] == ["ok", "failed", "ok"]

    mtime = (sweep / "0" / "metrics.json").stat().st_mtime_ns
    again = run_src(args, tmp_path, env)
    assert again.returncode != 0  # job 1 fails again: its value is still invalid
    assert (sweep / "0" / "metrics.json").stat().st_mtime_ns == mtime
    assert "skipping" in (sweep / "2" / "run.log").read_text()


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_writes_one_run(tmp_path, tiny_overrides):
    out = tmp_path / "run"
    done = run_src(["task=digits", "trainer=ddp_cpu", *tiny_overrides, f"hydra.run.dir={out}"], tmp_path,
                   {**os.environ, "DIFFLAB_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("metrics.json")] == [out.relative_to(tmp_path) / "metrics.json"]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in (out / "train_ddp_process_1.log").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train/steps"] == 4 and metrics["mnistm/n"] == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "run"]  # no stray run dirs


def test_ddp_in_a_local_multirun_is_refused(tmp_path):
    done = run_src(["-m", "task=digits", "trainer=ddp_cpu", "seed=0,1"], tmp_path,
                   {**os.environ, "DIFFLAB_CACHE": str(tmp_path / "cache")})
    assert done.returncode != 0
    assert "trainer.devices=2 in a local multirun" in done.stderr


@pytest.mark.parametrize("argv,multirun", [
    (["src/run.py", "task=ti", "hydra/launcher=submitit_slurm"], True),
    (["src/run.py", "-m", "task=ti", "hydra/launcher=submitit_slurm"], False),  # already a sweep
    (["src/run.py", "task=ti", "hydra/launcher=submitit_slurm", "--cfg", "job"], False),
    (["src/run.py", "task=ti", "hydra/launcher=basic"], False),
    (["src/run.py", "task=ti"], False),
])
def test_a_run_named_for_a_launcher_becomes_a_sweep_of_one(argv, multirun):
    from src.run import one_job_sweep_if_launched

    assert one_job_sweep_if_launched(list(argv)) == (argv + ["hydra.mode=MULTIRUN"] if multirun else argv)
