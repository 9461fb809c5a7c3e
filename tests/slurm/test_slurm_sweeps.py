"""Real sweeps through submitit on the local SLURM cluster: array jobs, accounting, resumable sweeps,
W&B groups, DDP, and training jobs requeued at their time limit or preempted that resume exactly."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.overrides import TINY_TI_MODELS
from helpers.slurm import ON_LOCAL_SLURM, array_job_ids, run_src, sacct_states, src_run_env, start_src
from helpers.wandb_records import run_record


def said(done, stream: str = "stderr") -> list[str]:
    """What the launching command printed (stderr or stdout), without its log lines."""
    return [line for line in getattr(done, stream).splitlines() if line and not line.startswith("[")]

pytestmark = pytest.mark.slow

FACES = ["task=faces", "sampler.eta=0,0.5,1.0"]
@pytest.fixture(scope="module")
def faces_sweep(slurm, tmp_path_factory, tiny_faces_overrides):
    """`python -m src.run -m task=faces sampler.eta=0,0.5,1.0 hydra/launcher=submitit_slurm` (tiny model),
    run from a fresh directory, with W&B offline."""
    cwd = tmp_path_factory.mktemp("faces-sweep")
    env = {**slurm, "DIFFLAB_CACHE": str(tmp_path_factory.mktemp("faces-cache"))}
    args = ["-m", *FACES, *tiny_faces_overrides, *ON_LOCAL_SLURM]
    first = run_src(args, cwd, env)
    assert first.returncode == 0, first.stderr[-3000:]
    (sweep,) = (cwd / "multirun" / "faces").iterdir()
    return cwd, env, args, sweep


def test_faces_eta_sweep_runs_as_a_completed_slurm_array(faces_sweep):
    cwd, env, args, sweep = faces_sweep
    assert sweep.name.startswith("sampler.eta=0,0.5,1.0,")  # named by the command, not by the clock
    (array,) = array_job_ids(sweep)
    assert sacct_states(array) == {f"{array}_{i}": ["COMPLETED"] for i in range(3)}
    mse = [json.loads((sweep / str(i) / "metrics.json").read_text())["mse"] for i in range(3)]
    assert mse[0] == pytest.approx(0.0, abs=1e-6)  # eta 0 reproduces the DDIM ground truth
    assert 0 < mse[1] < mse[2]  # more stochasticity, further from it
    for i, eta in enumerate(["0", "0.5", "1.0"]):
        (wandb_run,) = (sweep / str(i) / "wandb").glob("offline-run-*")
        record = run_record(wandb_run)
        assert record.run_group == str(sweep.relative_to(cwd))
        assert record.job_type == "faces"
        assert f"sampler.eta={eta}" in record.tags


def test_rerunning_the_sweep_skips_finished_jobs_and_reruns_the_missing_one(faces_sweep):
    cwd, env, args, sweep = faces_sweep
    before = {i: (sweep / str(i) / "metrics.json").stat().st_mtime_ns for i in range(3)}
    mse_1 = json.loads((sweep / "1" / "metrics.json").read_text())["mse"]
    (sweep / "1" / "metrics.json").unlink()  # as if job 1 had failed
    again = run_src(args, cwd, env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [p.name for p in (cwd / "multirun" / "faces").iterdir()] == [sweep.name]
    for i in (0, 2):
        assert (sweep / str(i) / "metrics.json").stat().st_mtime_ns == before[i]
    assert "3 job(s): 1 done, 2 skipped (finished earlier), 0 failed" in again.stderr
    assert json.loads((sweep / "1" / "metrics.json").read_text())["mse"] == pytest.approx(mse_1)
    second = array_job_ids(sweep)[-1]
    assert sacct_states(second) == {second: ["COMPLETED"]}  # job 1 alone was submitted: not an array


def test_tiny_digits_sweep_on_slurm_writes_every_metrics_json(slurm, tmp_path, tiny_overrides):
    env = {**slurm, "DIFFLAB_CACHE": str(tmp_path / "cache")}
    done = run_src(["-m", "task=digits", "seed=0,1", *tiny_overrides, *ON_LOCAL_SLURM,
                    f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path, env)
    assert done.returncode == 0, done.stderr[-3000:]
    (array,) = array_job_ids(tmp_path / "sweep")
    assert sacct_states(array) == {f"{array}_0": ["COMPLETED"], f"{array}_1": ["COMPLETED"]}
    for i in range(2):
        metrics = json.loads((tmp_path / "sweep" / str(i) / "metrics.json").read_text())
        assert metrics["train/steps"] == 4 and metrics["mnistm/n"] == 20


def test_ddp_job_with_two_slurm_tasks_writes_one_run(slurm, tmp_path, tiny_overrides):
    """trainer=ddp_cpu with hydra.launcher.tasks_per_node=2: SLURM starts both ranks, Lightning finds them."""
    env = {**slurm, "DIFFLAB_CACHE": str(tmp_path / "cache")}
    done = run_src(["-m", "task=digits", "trainer=ddp_cpu", *tiny_overrides, *ON_LOCAL_SLURM,
                    "hydra.launcher.tasks_per_node=2", f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path, env)
    assert done.returncode == 0, done.stderr[-3000:]
    (job,) = array_job_ids(tmp_path / "sweep")
    assert list(sacct_states(job).values()) == [["COMPLETED"]]
    log = (tmp_path / "sweep" / "0" / "run.log").read_text()
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "GLOBAL_RANK: 1, MEMBER: 2/2" in log
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("metrics.json")] == [Path("sweep/0/metrics.json")]
    assert json.loads((tmp_path / "sweep" / "0" / "metrics.json").read_text())["train/steps"] == 4


def test_ti_run_named_for_slurm_runs_there(slurm, tmp_path):
    """`python -m src.run task=ti hydra/launcher=submitit_slurm` (no -m): a sweep of one job on the cluster."""
    tiny_ti = [*TINY_TI_MODELS, "trainer.max_steps=4", "task.checkpoint_every=2", "task.num_inference_steps=2",
               "task.batch_size=25", "data.embedded.size=32", "data.repeats=2", "trainer.enable_progress_bar=false"]
    env = {**slurm, "DIFFLAB_CACHE": str(tmp_path / "cache")}
    done = run_src(["task=ti", "hydra/launcher=submitit_slurm", *tiny_ti, *ON_LOCAL_SLURM[1:]], tmp_path, env)
    assert done.returncode == 0, done.stderr[-3000:]
    (sweep,) = (tmp_path / "multirun" / "ti").iterdir()
    (job,) = array_job_ids(sweep)
    assert list(sacct_states(job).values()) == [["COMPLETED"]]
    metrics = json.loads((sweep / "0" / "metrics.json").read_text())
    assert 0.0 <= metrics["pass_rate"] <= 1.0 and metrics["c0/train/steps"] == 4
    assert len(list((sweep / "0" / "samples" / "1" / "0").glob("source1_prompt0_*.png"))) == 25
    assert run_record(next((sweep / "0" / "wandb").glob("offline-run-*"))).job_type == "ti"


# The job must still be training when SLURM signals its time limit (timeout 3 min, signal 30 s before it:
# about 140 s per attempt, two requeues allowed). Its length is set from this machine's speed: 170 s of
# training alone (1,600 steps here), longer beside the reference run. DIFFLAB_REQUEUE_STEPS fixes it.
TRAIN_SECONDS = 170


def test_job_requeued_at_its_time_limit_resumes_and_ends_like_an_uninterrupted_run(slurm, tmp_path, tiny_overrides):
    env = {**slurm, "DIFFLAB_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    base = [o for o in tiny_overrides if not o.startswith(("trainer.max_steps", "trainer.val_check_interval"))]
    # the cache (data set, judges) first, and this machine's speed: 200 steps
    warm = run_src(["task=digits", *base, "trainer.max_steps=200", "trainer.val_check_interval=100",
                    f"hydra.run.dir={tmp_path / 'warm'}"], tmp_path, env)
    assert warm.returncode == 0, warm.stderr[-3000:]
    per_second = 200 / json.loads((tmp_path / "warm" / "metrics.json").read_text())["time/train_s"]
    steps = int(os.environ.get("DIFFLAB_REQUEUE_STEPS") or max(400, round(per_second * TRAIN_SECONDS, -2)))
    train = [*base, f"trainer.max_steps={steps}", "trainer.val_check_interval=100"]
    reference = start_src(["task=digits", *train, f"hydra.run.dir={tmp_path / 'reference'}"], tmp_path, env)
    slurm_run = run_src(["-m", "task=digits", "seed=0", *train, *ON_LOCAL_SLURM, "hydra.launcher.timeout_min=3",
                         "hydra.launcher.signal_delay_s=30", "hydra.launcher.max_num_timeout=2",
                         f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path, env)
    _, ref_err = reference.communicate(timeout=900)
    assert reference.returncode == 0, ref_err[-3000:]
    assert slurm_run.returncode == 0, slurm_run.stderr[-3000:]

    (job,) = array_job_ids(tmp_path / "sweep")
    (states,) = sacct_states(job, duplicates=True).values()  # one job: not an array
    assert "REQUEUED" in states and states[-1] == "COMPLETED", (
        f"{states}: the job ({steps} steps) never reached its time limit; set DIFFLAB_REQUEUE_STEPS higher")
    log = (tmp_path / "sweep" / "0" / "run.log").read_text()
    assert "resuming from" in log and "last.ckpt" in log

    resumed = json.loads((tmp_path / "sweep" / "0" / "metrics.json").read_text())
    uninterrupted = json.loads((tmp_path / "reference" / "metrics.json").read_text())
    drop = lambda m: {k: v for k, v in m.items() if not k.startswith("time/")}  # noqa: E731
    assert drop(resumed) == drop(uninterrupted)
    assert resumed["train/steps"] == steps


def test_preempted_job_is_requeued_and_ends_like_an_uninterrupted_run(slurm, tmp_path, tiny_overrides):
    """Preemption: SIGUSR2 before the time limit (what a preempting scheduler sends; scancel --signal here)."""
    env = {**slurm, "DIFFLAB_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    base = [o for o in tiny_overrides if not o.startswith(("trainer.max_steps", "trainer.val_check_interval"))]
    train = [*base, "trainer.max_steps=600", "trainer.val_check_interval=100"]
    warm = run_src(["task=digits", *tiny_overrides, f"hydra.run.dir={tmp_path / 'warm'}"], tmp_path, env)
    assert warm.returncode == 0, warm.stderr[-3000:]
    reference = start_src(["task=digits", *train, f"hydra.run.dir={tmp_path / 'reference'}"], tmp_path, env)
    sweep = tmp_path / "sweep"
    launch = start_src(["-m", "task=digits", *train, *ON_LOCAL_SLURM, f"hydra.sweep.dir={sweep}"], tmp_path, env)
    deadline = time.time() + 300
    while not (sweep / "0" / "checkpoints" / "last.ckpt").is_file():  # trained 100 steps
        assert time.time() < deadline and launch.poll() is None, "the job never wrote a checkpoint"
        time.sleep(1)
    (job,) = array_job_ids(sweep)
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    _, err = launch.communicate(timeout=600)
    assert launch.returncode == 0, err[-3000:]
    _, ref_err = reference.communicate(timeout=600)
    assert reference.returncode == 0, ref_err[-3000:]

    (states,) = sacct_states(job, duplicates=True).values()
    assert states[0] == "REQUEUED" and states[-1] == "COMPLETED", states
    assert "resuming from" in (sweep / "0" / "run.log").read_text()
    drop = lambda m: {k: v for k, v in m.items() if not k.startswith("time/")}  # noqa: E731
    resumed = json.loads((sweep / "0" / "metrics.json").read_text())
    assert drop(resumed) == drop(json.loads((tmp_path / "reference" / "metrics.json").read_text()))
    assert resumed["train/steps"] == 600


def test_dry_run_prints_the_sbatch_script_and_submits_nothing(slurm, tmp_path, tiny_faces_overrides):
    env = {**slurm, "DIFFLAB_CACHE": str(tmp_path / "cache")}
    before = subprocess.run(["sacct", "-X", "-n", "-o", "JobID"], capture_output=True, text=True, env=env).stdout
    done = run_src(["-m", *FACES, *tiny_faces_overrides, *ON_LOCAL_SLURM, "hydra.launcher.array_parallelism=2",
                    "hydra.sweep.dir=sweep", "sweep.dry_run=true"], tmp_path, env)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert out.startswith("dry run: 3 job(s) in sweep; nothing is run or submitted")
    assert out.count("would run") == 3 and "SLURM: one array of 3 job(s), at most 2 at a time" in out
    assert "#SBATCH --array=0-2%2" in out and "#SBATCH --partition=debug" in out and "submitit.core._submit" in out
    assert not (tmp_path / "sweep").exists()
    assert subprocess.run(["sacct", "-X", "-n", "-o", "JobID"], capture_output=True, text=True,
                          env=env).stdout == before


def test_a_failed_job_ends_failed_and_fail_fast_cancels_the_rest_of_the_array(slurm, tmp_path, tiny_faces_overrides):
    env = {**slurm, "DIFFLAB_CACHE": str(tmp_path / "cache")}
    missing = tmp_path / "missing.pt"
    done = run_src(["-m", "task=faces", f"model.weights={missing},null,null", *tiny_faces_overrides, *ON_LOCAL_SLURM,
                    "hydra.launcher.array_parallelism=1", "sweep.fail_fast=true", "hydra.sweep.dir=sweep"], tmp_path, env)
    assert done.returncode == 1
    lines = said(done)
    assert lines[0] == "sweep.fail_fast: job 0 failed; cancelling 2 other job(s)"
    assert lines[1] == (f"job 0 failed (model.weights={missing}): {missing}: no such file; expected the face UNet's "
                        "weights (model.weights)")
    assert lines[2] == "sweep sweep: 3 job(s): 0 done, 1 failed, 2 not run (fail_fast)"
    assert lines[3].startswith("error: 1 of 3 job(s) failed") and len(lines) == 4
    (array,) = array_job_ids(tmp_path / "sweep")
    states = sacct_states(array)
    assert states[f"{array}_0"] == ["FAILED"]  # a difflab error is a non-zero exit, not COMPLETED
    assert all(state[-1] == "CANCELLED" for task, state in states.items() if task != f"{array}_0"), states
    assert not list((tmp_path / "sweep").rglob("metrics.json"))


def test_submit_and_leave_then_report_states_and_never_submit_twice(slurm, tmp_path, tiny_faces_overrides):
    env = {**slurm, "DIFFLAB_CACHE": str(tmp_path / "cache")}
    args = ["-m", *FACES, *tiny_faces_overrides, *ON_LOCAL_SLURM, "hydra.launcher.array_parallelism=1",
            "hydra.sweep.dir=sweep", "sweep.wait=false", "sweep.fail_fast=true"]
    t0 = time.time()
    first = run_src(args, tmp_path, env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert said(first) == ["sweep.fail_fast does not apply: sweep.wait=false leaves the jobs running without this "
                           "command"]
    (array,) = array_job_ids(tmp_path / "sweep")
    assert said(first, "stdout") == [
        f"submitted 3 job(s) to SLURM (job {array}); they run without this command",
        *(f"  job {i}: {array}_{i}  sampler.eta={eta}" for i, eta in enumerate(["0", "0.5", "1.0"])),
        "their state, and the report once they are done: python -m src.report sweep"]

    again = run_src(args, tmp_path, env)  # at most one job runs at a time: two are still queued
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"  job 2: still queued as {array}_2  sampler.eta=1.0" in again.stdout
    assert array_job_ids(tmp_path / "sweep") == [array]  # nothing submitted twice
    status = subprocess.run([sys.executable, "-m", "src.report", "sweep"], cwd=tmp_path, env=src_run_env(env),
                            capture_output=True, text=True)
    assert status.returncode == 0 and "still pending or running" in status.stdout
    assert f"   2  pending  sampler.eta=1.0  {array}_2" in status.stdout
    assert not (tmp_path / "sweep" / "report.md").exists()
    assert time.time() - t0 < 60  # neither command waited for the jobs

    sacct_states(array, settle=300)  # until none is pending or running
    status = subprocess.run([sys.executable, "-m", "src.report", "sweep"], cwd=tmp_path, env=src_run_env(env),
                            capture_output=True, text=True)
    assert "3 job(s): 3 done" in status.stdout and (tmp_path / "sweep" / "report.md").is_file()
