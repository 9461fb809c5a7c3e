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


def sweep_env(tmp_path) -> dict:
    return {**os.environ, "DIFFLAB_CACHE": str(tmp_path / "cache")}


def stderr_lines(done) -> list[str]:
    """What the launching command said, without the jobs' log lines."""
    return [line for line in done.stderr.splitlines() if line and not line.startswith("[")]


@pytest.mark.slow
def test_a_failing_job_is_one_line_the_others_finish_and_a_rerun_skips_them(tmp_path, tiny_faces_overrides):
    missing = tmp_path / "missing" / "UNet.pt"
    args = ["-m", "task=faces", f"model.weights=null,{missing}", "sampler.eta=0.5", *tiny_faces_overrides,
            "task.figures=false", "logger=none"]
    first = run_src(args, tmp_path, sweep_env(tmp_path))
    assert first.returncode == 1
    said = stderr_lines(first)
    error = f"{missing}: no such file; expected the face UNet's weights (model.weights)"
    assert said == [f"job 1 failed (model.weights={missing}): {error}",
                    f"sweep {first_sweep(tmp_path).relative_to(tmp_path)}: 2 job(s): 1 done, 1 failed",
                    f"error: 1 of 2 job(s) failed (above); their errors are in <job dir>/error.txt, their states in: "
                    f"python -m src.report {first_sweep(tmp_path).relative_to(tmp_path)}"]
    sweep = first_sweep(tmp_path)
    assert (sweep / "0" / "metrics.json").is_file() and not (sweep / "1" / "metrics.json").exists()
    assert (sweep / "1" / "error.txt").read_text().strip() == error
    registry = json.loads((sweep / ".difflab" / "jobs.json").read_text())
    assert sorted(registry) == ["0", "1"] and f"model.weights={missing}" in registry["1"]["overrides"]

    report = subprocess.run([sys.executable, "-m", "src.report", str(sweep)], capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    assert "   1  failed   model.weights=" in report.stdout and f"      {error}" in report.stdout
    assert "2 job(s): 1 done, 1 failed" in report.stdout
    rows = list(csv.DictReader((sweep / "report.csv").open()))
    assert [(r["status"], r["error"]) for r in rows] == [("ok", ""), ("failed", error)]

    mtime = (sweep / "0" / "metrics.json").stat().st_mtime_ns
    again = run_src(args, tmp_path, sweep_env(tmp_path))
    assert again.returncode == 1  # job 1 fails again: its file is still missing
    assert "2 job(s): 0 done, 1 skipped (finished earlier), 1 failed" in again.stderr
    assert (sweep / "0" / "metrics.json").stat().st_mtime_ns == mtime  # not run again


def first_sweep(tmp_path):
    (sweep,) = (tmp_path / "multirun" / "faces").iterdir()
    return sweep


@pytest.mark.slow
def test_submitit_local_jobs_fail_the_same_way(tmp_path, tiny_faces_overrides):
    """hydra/launcher=submitit_local: the SLURM code path in local processes, failures reported alike."""
    missing = tmp_path / "missing.pt"
    done = run_src(["-m", "task=faces", f"model.weights={missing},null", *tiny_faces_overrides, "logger=none",
                    "task.figures=false", "hydra/launcher=submitit_local", "hydra.sweep.dir=sweep"], tmp_path,
                   sweep_env(tmp_path))
    assert done.returncode == 1
    error = f"{missing}: no such file; expected the face UNet's weights (model.weights)"
    assert stderr_lines(done)[:2] == [f"job 0 failed (model.weights={missing}): {error}",
                                      "sweep sweep: 2 job(s): 1 done, 1 failed"]
    assert (tmp_path / "sweep" / "0" / "error.txt").read_text().strip() == error
    assert (tmp_path / "sweep" / "1" / "metrics.json").is_file()


@pytest.mark.slow
def test_fail_fast_stops_at_the_first_failure(tmp_path, tiny_faces_overrides):
    missing = tmp_path / "missing.pt"
    done = run_src(["-m", "task=faces", f"model.weights={missing},null", *tiny_faces_overrides, "logger=none",
                    "sweep.fail_fast=true"], tmp_path, sweep_env(tmp_path))
    assert done.returncode == 1
    assert "2 job(s): 0 done, 1 failed, 1 not run (fail_fast)" in done.stderr
    assert not list(tmp_path.rglob("metrics.json"))


@pytest.mark.slow
def test_dry_run_lists_the_jobs_and_their_fate_and_runs_nothing(tmp_path, tiny_faces_overrides):
    args = ["-m", "task=faces", "sampler.eta=0,1", *tiny_faces_overrides, "logger=none", "task.figures=false"]
    before = run_src(["-m", "task=faces", "sampler.eta=0", *tiny_faces_overrides, "logger=none", "task.figures=false",
                      "hydra.sweep.dir=multirun/faces/eta", "hydra.sweep.subdir=0"], tmp_path, sweep_env(tmp_path))
    assert before.returncode == 0, before.stderr[-2000:]
    files = sorted(p for p in tmp_path.rglob("*") if "cache" not in p.parts)
    dry = run_src([*args, "hydra.sweep.dir=multirun/faces/eta", "sweep.dry_run=true"], tmp_path, sweep_env(tmp_path))
    assert dry.returncode == 0, dry.stderr[-2000:]
    sweep = tmp_path / "multirun" / "faces" / "eta"
    assert dry.stdout.splitlines() == [
        "dry run: 2 job(s) in multirun/faces/eta; nothing is run or submitted",
        "  job 0: sampler.eta=0", f"    dir {sweep / '0'}", "    finished: skipped (metrics.json)",
        "  job 1: sampler.eta=1", f"    dir {sweep / '1'}", "    would run"]
    assert sorted(p for p in tmp_path.rglob("*") if "cache" not in p.parts) == files  # nothing written


@pytest.mark.parametrize("args,said", [
    (["sampler.eta=0,0.5,2"], ["job 2 (sampler.eta=2): sampler.eta=2.0: expected a value in [0, 1]",
                               "error: 1 of 3 jobs have bad values (above); nothing was run or submitted"]),
    (["seed=0,1,a"], ["job 2 (seed=a): seed='a': expected an integer",
                      "error: 1 of 3 jobs have bad values (above); nothing was run or submitted"]),
    (["sampler.etta=0,1"], ["job 0 (sampler.etta=0): Could not override 'sampler.etta'; Key 'etta' not in "
                            "'DDIMSamplerConfig'; To append to your config use +sampler.etta=0",
                            "job 1 (sampler.etta=1): Could not override 'sampler.etta'; Key 'etta' not in "
                            "'DDIMSamplerConfig'; To append to your config use +sampler.etta=1",
                            "error: 2 of 2 jobs have bad values (above); nothing was run or submitted"]),
    (["hydra/launcher=slurm"], ["error: In 'hydra/config': Could not find 'hydra/launcher/slurm'; Available options "
                                "in 'hydra/launcher': basic, submitit_local, submitit_slurm"]),
    (["hydra/sweeper=grid"], ["error: In 'hydra/config': Could not find 'hydra/sweeper/grid'; Available options in "
                              "'hydra/sweeper': basic, optuna"]),
    (["sweep.wait=false"], ["error: sweep.wait=false: only a SLURM sweep can be left running; expected "
                            "hydra/launcher=submitit_slurm, or sweep.wait=true"]),
    (["sweep.dry_run=maybe"], ["error: sweep.dry_run='maybe': expected true or false"]),
])
def test_bad_sweeps_are_one_line_each_before_any_job_starts(tmp_path, args, said):
    done = run_src(["-m", "task=faces", *args, "logger=none"], tmp_path, sweep_env(tmp_path))
    assert done.returncode == 1
    assert stderr_lines(done) == said
    assert not list(tmp_path.rglob("metrics.json")) and not list(tmp_path.rglob(".hydra"))


@pytest.mark.slow
def test_a_sweep_over_seeds_is_reported_per_setting_and_grouped_in_wandb(tmp_path, tiny_faces_overrides):
    from helpers.wandb_records import run_config

    done = run_src(["-m", "task=faces", "sampler.eta=0,1", "seed=0,1", *tiny_faces_overrides, "task.figures=false",
                    "hydra.sweep.dir=sweep"], tmp_path, sweep_env(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    sweep = tmp_path / "sweep"
    assert subprocess.run([sys.executable, "-m", "src.report", str(sweep)], capture_output=True).returncode == 0
    mse = {(r["sampler.eta"], r["seed"]): float(r["mse"]) for r in csv.DictReader((sweep / "report.csv").open())}
    seeds = list(csv.DictReader((sweep / "report_seeds.csv").open()))
    assert [(r["sampler.eta"], r["n"], r["seeds"]) for r in seeds] == [("0", "2", "0 1"), ("1", "2", "0 1")]
    one = [mse[("1", "0")], mse[("1", "1")]]
    assert float(seeds[1]["mse mean"]) == pytest.approx(sum(one) / 2, rel=1e-5)
    assert float(seeds[1]["mse std"]) == pytest.approx(abs(one[0] - one[1]) / 2 ** 0.5, rel=1e-5)
    assert "## Over seeds" in (sweep / "report.md").read_text() and (sweep / "report_sampler.eta.png").is_file()
    variants = {}
    for job in range(4):
        (run,) = (sweep / str(job) / "wandb").glob("offline-run-*")
        config = run_config(run)
        variants.setdefault(config["sweep_variant"], set()).add(config["seed"])
    assert len(variants) == 2 and all(seeds == {0, 1} for seeds in variants.values())
    assert all(v.startswith("sampler.eta=") and "seed=" not in v for v in variants)


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


def test_ddp_on_slurm_is_planned_when_the_tasks_match_the_devices(tmp_path):
    """On SLURM the ranks are SLURM tasks: tasks_per_node=2 is planned (dry run), 1 is refused before sbatch."""
    args = ["-m", "task=digits", "trainer=ddp_cpu", "seed=0,1", "hydra/launcher=submitit_slurm",
            "sweep.dry_run=true"]
    env = {**os.environ, "DIFFLAB_CACHE": str(tmp_path / "cache")}
    ok = run_src([*args, "hydra.launcher.tasks_per_node=2"], tmp_path, env)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "#SBATCH --ntasks-per-node=2" in ok.stdout + ok.stderr
    bad = run_src(args, tmp_path, env)
    assert bad.returncode == 1
    assert "trainer.devices=2 with hydra.launcher.tasks_per_node=1: Lightning takes one rank per SLURM task; " \
           "set hydra.launcher.tasks_per_node=2" in bad.stderr


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
