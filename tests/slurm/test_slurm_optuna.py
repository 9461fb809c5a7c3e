"""An Optuna study on the local SLURM cluster: each batch of trials is one array, the driver waits for it."""
from __future__ import annotations

import json

import optuna
import pytest

from helpers.slurm import ON_LOCAL_SLURM, array_job_ids, run_src, sacct_states

pytestmark = pytest.mark.slow


def test_two_trial_study_runs_as_a_completed_slurm_array(slurm, tmp_path, tiny_faces_overrides):
    sweep = tmp_path / "sweep"
    env = {**slurm, "DIFFLAB_CACHE": str(tmp_path / "cache")}
    done = run_src(["-m", "task=faces", "hydra/sweeper=optuna", "hydra.sweeper.direction=minimize",
                    "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2", "sampler.eta=interval(0,1)",
                    "task.figures=false", "logger=none", *tiny_faces_overrides, *ON_LOCAL_SLURM,
                    f"hydra.sweep.dir={sweep}"], tmp_path, env)
    assert done.returncode == 0, done.stderr[-3000:]
    (array,) = array_job_ids(sweep)
    assert sacct_states(array) == {f"{array}_0": ["COMPLETED"], f"{array}_1": ["COMPLETED"]}
    trials = optuna.load_study(study_name=str(sweep), storage=f"sqlite:///{sweep}/optuna.db").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    for t in trials:
        assert t.value == pytest.approx(json.loads((sweep / str(t.number) / "metrics.json").read_text())["mse"])
