"""hydra/sweeper=optuna: studies of tiny task=faces trials (mse, minimised) that resume from their sweep
directory without reusing a trial's directory, cut-off and failed trials, one-line bad input, the search-space
grammar, the report, and the digits preset."""
from __future__ import annotations

import csv
import json
import os

import optuna
import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from src.config import CONF_DIR, register_configs
from src.errors import ConfigError
from src.sweeps.optuna_report import write_optuna_report
from src.sweeps.optuna_space import as_override, parse_search_space
from src.sweeps.optuna_sweeper import consecutive_runs
from helpers.slurm import run_src

ETA = {"sampler.eta": FloatDistribution(0.0, 1.0)}


@pytest.fixture(scope="module")
def faces_study(tmp_path_factory, tiny_faces_overrides):
    """run(sweep, *overrides): `python -m src.run -m task=faces hydra/sweeper=optuna sampler.eta='interval(0,1)'`
    minimising mse (tiny model, no figures) into `sweep`, sharing one cache."""
    cwd = tmp_path_factory.mktemp("optuna")
    env = {**os.environ, "DIFFLAB_CACHE": str(tmp_path_factory.mktemp("optuna-cache"))}
    base = ["-m", "task=faces", "hydra/sweeper=optuna", "hydra.sweeper.direction=minimize", "sampler.eta=interval(0,1)",
            "task.figures=false", "logger=none", *tiny_faces_overrides]

    def run(sweep, *overrides):
        return run_src([*base, f"hydra.sweep.dir={sweep}", *overrides], cwd, env)

    return cwd, run


def stored(sweep) -> list:
    """The trials of the study in <sweep>/optuna.db (named after the sweep dir, as the sweeper names it)."""
    return optuna.load_study(study_name=str(sweep), storage=f"sqlite:///{sweep}/optuna.db").get_trials()


def new_study(sweep) -> optuna.Study:
    sweep.mkdir(parents=True)
    return optuna.create_study(study_name=str(sweep), storage=f"sqlite:///{sweep}/optuna.db", direction="minimize")


def job_dirs(sweep) -> list[int]:
    return sorted(int(p.name) for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())


def mse(sweep, n: int) -> float:
    return json.loads((sweep / str(n) / "metrics.json").read_text())["mse"]


def job_override(sweep, n: int, key: str) -> str:
    items = yaml.safe_load((sweep / str(n) / ".hydra" / "overrides.yaml").read_text())
    return next(i.split("=", 1)[1] for i in items if i.startswith(f"{key}="))


def assert_values_are_their_own(sweep, trials) -> None:
    """Each completed trial's value is the mse of its own directory, run with its own parameters."""
    for t in trials:
        assert t.value == pytest.approx(mse(sweep, t.number))
        assert float(job_override(sweep, t.number, "sampler.eta")) == pytest.approx(t.params["sampler.eta"])


@pytest.mark.slow
def test_study_resumes_counting_the_whole_study_and_never_reuses_a_trial_dir(faces_study):
    cwd, run = faces_study
    sweep = cwd / "study"
    first = run(sweep, "hydra.sweeper.n_trials=3")
    assert first.returncode == 0, first.stderr[-3000:]
    trials = stored(sweep)
    assert [(t.number, t.state.name) for t in trials] == [(0, "COMPLETE"), (1, "COMPLETE"), (2, "COMPLETE")]
    assert job_dirs(sweep) == [0, 1, 2]
    assert_values_are_their_own(sweep, trials)
    mtimes = {n: (sweep / str(n) / "metrics.json").stat().st_mtime_ns for n in range(3)}

    again = run(sweep, "hydra.sweeper.n_trials=3")  # the study is complete: nothing runs
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(stored(sweep)) == 3 and job_dirs(sweep) == [0, 1, 2]

    more = run(sweep, "hydra.sweeper.n_trials=5")  # two more, in directories of their own
    assert more.returncode == 0, more.stderr[-3000:]
    trials = stored(sweep)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 5 and job_dirs(sweep) == [0, 1, 2, 3, 4]
    assert {n: (sweep / str(n) / "metrics.json").stat().st_mtime_ns for n in range(3)} == mtimes
    assert_values_are_their_own(sweep, trials)
    first_etas = {t.params["sampler.eta"] for t in trials[:3]}
    assert not first_etas & {t.params["sampler.eta"] for t in trials[3:]}  # the resumed sampler draws anew

    rows = list(csv.DictReader((sweep / "optuna_trials.csv").open()))
    best = min(trials, key=lambda t: t.value)
    assert [r["number"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert [r["number"] for r in rows if r["best"] == "*"] == [str(best.number)]
    md, png = write_optuna_report(sweep)
    assert png.stat().st_size > 0 and f"| **{best.number}** | COMPLETE | **{best.value:.6g}** |" in md.read_text()


@pytest.mark.slow
def test_trial_cut_off_by_a_killed_driver_fails_and_runs_again_in_a_new_dir(faces_study):
    cwd, run = faces_study
    sweep = cwd / "cut"
    cut = new_study(sweep).ask(ETA)  # what a killed driver leaves: a RUNNING trial ...
    (sweep / "0").mkdir()
    (sweep / "0" / "metrics.json").write_text(json.dumps({"mse": -1.0}))  # ... and its directory
    done = run(sweep, "hydra.sweeper.n_trials=2")
    assert done.returncode == 0, done.stderr[-3000:]
    trials = stored(sweep)
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert "error" not in trials[0].user_attrs  # cut off, not failed by its job: it does not count
    assert trials[1].user_attrs["retry_of"] == 0 and trials[1].params == cut.params
    assert job_dirs(sweep) == [0, 1, 2] and mse(sweep, 0) == -1.0  # its directory is never run in again
    assert_values_are_their_own(sweep, trials[1:])
    rows = list(csv.DictReader((sweep / "optuna_trials.csv").open()))
    assert rows[0]["error"] == "cut off: its driver stopped; retried as trial 1"


@pytest.mark.slow
def test_failed_trials_are_told_fail_with_their_error_and_the_study_goes_on(faces_study):
    cwd, run = faces_study
    sweep = cwd / "failing"
    study = new_study(sweep)
    space = ["sampler.num_steps=choice(4,60,5)", "sampler.eta=choice(0.0,2.0,1.0)"]  # the corners are valid
    for params in ({"sampler.num_steps": 60, "sampler.eta": 0.0},  # fails in the job (60 > scheduler.steps)
                   {"sampler.num_steps": 4, "sampler.eta": 2.0},  # refused by the config checks: never launched
                   {"sampler.num_steps": 4, "sampler.eta": 0.0}):
        study.enqueue_trial(params)
    done = run(sweep, *space, "hydra.sweeper.n_trials=3")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: 2 trial(s) failed (above)")
    trials = stored(sweep)
    assert [t.state.name for t in trials] == ["FAIL", "FAIL", "COMPLETE"]
    assert trials[0].user_attrs["error"] == "ValueError: num_steps=60: expected 1..50"
    assert trials[1].user_attrs["error"] == "sampler.eta=2.0: expected a value in [0, 1]"
    assert job_dirs(sweep) == [0, 2]
    again = run(sweep, *space, "hydra.sweeper.n_trials=3")  # failed trials count: nothing left to run
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(stored(sweep)) == 3


@pytest.mark.parametrize("overrides,line", [
    (["+hydra.sweeper.foo=1"], "error: hydra.sweeper.foo: not an option of hydra/sweeper=optuna; expected one of "
                               "direction, n_trials, n_jobs, seed, study_name, storage, params"),
    (["sampler.etaa=interval(0,1)"], "error: sampler.etaa=interval(0,1): sampler.etaa is not a key of the task=faces "
                                     "config; expected an existing key (python -m src.run task=... --cfg job lists them)"),
    (["hydra.sweeper.direction=up"], "error: hydra.sweeper.direction='up': expected maximize or minimize"),
    (["hydra.sweeper.n_trials=0"], "error: hydra.sweeper.n_trials=0: expected an integer >= 1"),
    (["sampler.eta=interval(0,2)"], "error: sampler.eta=2.0: expected a value in [0, 1] (the search space's high "
                                    "end: sampler.eta=2.0)"),
    (["sweep.wait=false"], "error: sweep.wait=false: an Optuna study asks for each batch after the last one ended, "
                           "so its driver stays alive while trials run; expected sweep.wait=true"),
])
def test_bad_input_is_one_line_before_anything_is_created(tmp_path, overrides, line):
    args = ["-m", "task=faces", "hydra/sweeper=optuna", *overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    if not any(o.startswith("sampler.eta") for o in overrides):
        args.append("sampler.eta=interval(0,1)")
    done = run_src(args, tmp_path, {**os.environ, "DIFFLAB_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [line]
    assert not (tmp_path / "sweep").exists()


def test_unknown_sweeper_key_fails_when_the_config_is_composed(tmp_path):
    done = run_src(["-m", "task=faces", "hydra/sweeper=optuna", "hydra.sweeper.n_trial=3",
                    f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path, dict(os.environ))
    assert done.returncode == 1 and "Key 'n_trial' not in 'OptunaSweeperConf'" in done.stderr
    assert not (tmp_path / "sweep").exists()


def test_search_space_grammar():
    params = {"a": "choice(10,25,50)", "b": "interval(0.0,8.0)", "c": "int(interval(10,100))",
              "d": "tag(log, interval(1e-4,1e-1))", "e": "range(10,100,10)"}
    space = parse_search_space(params, ["b=2.5", "f=range(0.5,2.0,0.5)", "g=x", "e=shuffle(range(3,0,-1))"],
                               OverridesParser.create())
    assert space.distributions == {
        "a": CategoricalDistribution([10, 25, 50]), "c": IntDistribution(10, 100),
        "d": FloatDistribution(1e-4, 1e-1, log=True), "e": CategoricalDistribution([1, 2, 3]),
        "f": FloatDistribution(0.5, 1.5, step=0.5)}  # a range's stop is excluded, as in Hydra
    assert space.fixed == ["b=2.5", "g=x"]  # typed on the command line: wins over hydra.sweeper.params
    assert space.overrides({"a": 25, "c": 40, "d": 0.01, "e": 2, "f": 1.0}) == [
        "b=2.5", "g=x", "a=25", "c=40", "d=0.01", "e=2", "f=1.0"]
    assert parse_search_space({"e": "range(10,100,10)"}, [], OverridesParser.create()).distributions == {
        "e": IntDistribution(10, 90, step=10)}


@pytest.mark.parametrize("params,message", [
    ({"a": "interval(0,"}, "hydra.sweeper.params.a=interval(0,: no viable alternative at input 'interval(0,'; "
                           "expected choice(a,b,...)"),
    ({"a": "interval(3,1)"}, "hydra.sweeper.params.a=interval(3,1): "),
    ({"+a": "choice(1,2)"}, "hydra.sweeper.params.+a=choice(1,2): expected a search space over an existing key"),
])
def test_unparsable_search_space_is_one_line(params, message):
    with pytest.raises(ConfigError) as err:
        parse_search_space(params, [], OverridesParser.create())
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_trial_values_become_overrides_and_consecutive_numbers_one_launch():
    assert [as_override("k", v) for v in (True, None, 1e-5, 3, "ddpm", "a b", "null")] == [
        "k=true", "k=null", "k=1e-05", "k=3", "k=ddpm", "k='a b'", "k='null'"]
    trials = [type("T", (), {"number": n})() for n in (7, 3, 4, 9, 8)]
    assert [[t.number for t in run] for run in consecutive_runs(trials)] == [[3, 4], [7, 8, 9]]


def test_digits_preset_searches_guidance_and_steps_from_a_checkpoint(tmp_path):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose(config_name="config", overrides=["+experiment=optuna_digits", "ckpt_path=x.ckpt"],
                      return_hydra_config=True)
    assert cfg.task.name == "digits" and cfg.task.train is False and cfg.task.main_metric == "mean_acc"
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.difflab.OptunaSweeper"
    assert cfg.hydra.sweeper.direction == "maximize" and cfg.hydra.sweeper.n_trials == 20
    assert dict(cfg.hydra.sweeper.params) == {"guidance.scale": "interval(0.0,8.0)",
                                              "sampler.num_steps": "choice(10,25,50)"}
    done = run_src(["-m", "+experiment=optuna_digits", "ckpt_path=x.ckpt", "sweep.dry_run=true",
                    f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path, dict(os.environ))
    assert done.returncode == 0, done.stderr[-3000:]
    assert ("would run 20 trial(s), 1 at a time, over guidance.scale=interval(0.0,8.0) "
            "sampler.num_steps=choice(10,25,50); nothing is run or written") in done.stdout
    assert not (tmp_path / "sweep").exists()
    missing = run_src(["-m", "+experiment=optuna_digits", f"hydra.sweep.dir={tmp_path / 'sweep'}"], tmp_path,
                      dict(os.environ))
    assert missing.returncode == 1 and not (tmp_path / "sweep").exists()
    assert "task.train=false needs ckpt_path=<a checkpoint of task=digits>" in missing.stderr.strip().splitlines()[-1]
