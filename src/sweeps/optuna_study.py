"""An Optuna study kept in its sweep directory: opened or resumed, its cut-off trials failed and retried, its
trials counted and written out as <sweep dir>/optuna_trials.csv.

What counts towards n_trials: COMPLETE trials and trials FAILed by their own job (an error, or no finite main
metric; the `error` user attribute says which). A trial left RUNNING by a driver that stopped (killed, its
machine gone, a launcher error) is "cut off": the next start marks it FAIL without `error` and enqueues its
parameters again as a new trial (user attribute `retry_of`), which runs first.
"""
from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any, Optional

from src.errors import ConfigError
from src.runtime import atomic_write

log = logging.getLogger(__name__)

DB_FILE = "optuna.db"
CSV_FILE = "optuna_trials.csv"


def storage_url(storage: Optional[str], sweep_dir: Path) -> str:
    """The study's storage: the one configured, else SQLite in the sweep directory."""
    return storage or f"sqlite:///{(Path(sweep_dir) / DB_FILE).absolute()}"


def open_study(name: str, url: str, direction: str, seed: Optional[int], n_trials_so_far: int = 0):
    """Create the study, or load it if it exists (same name and storage); its direction must not change. The
    sampler's seed is `seed` plus the trials so far: a resumed study draws new points, not its first ones again."""
    import optuna

    sampler = optuna.samplers.TPESampler(seed=None if seed is None else seed + n_trials_so_far)
    study = optuna.create_study(study_name=name, storage=url, sampler=sampler, direction=direction,
                                load_if_exists=True)
    stored = study.direction.name.lower()
    if stored != direction:
        raise ConfigError(f"hydra.sweeper.direction={direction}: study {name!r} in {url} was created to {stored}; "
                          "expected the same direction, or a new study (hydra.sweep.dir=<new dir>)")
    return study


def peek_trials(name: str, url: str) -> list:
    """The trials of a stored study without creating anything ([] if there is no such study yet)."""
    import optuna

    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
        return []
    try:
        return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
    except KeyError:  # no study of that name in the storage
        return []


def counts_towards_n_trials(trial) -> bool:
    """COMPLETE, or FAILed by its own job (not cut off)."""
    from optuna.trial import TrialState

    return trial.state == TrialState.COMPLETE or trial.state == TrialState.FAIL and "error" in trial.user_attrs


def is_cut_off(trial) -> bool:
    from optuna.trial import TrialState

    return trial.state == TrialState.FAIL and "error" not in trial.user_attrs


def retry_cut_off(study, numbers: Optional[set[int]] = None) -> list[tuple[int, int]]:
    """Fail the RUNNING trials (those in `numbers`, or all: a driver that stopped left them) and enqueue their
    parameters again; returns (cut-off trial, its retry) pairs. One driver per study: a RUNNING trial is
    never another live driver's."""
    from optuna.trial import TrialState

    running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
               if numbers is None or t.number in numbers]
    pairs = []
    for trial in running:
        study.tell(trial.number, state=TrialState.FAIL)
        if trial.params:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            pairs.append((trial.number, study.get_trials(deepcopy=False)[-1].number))
    for cut, retry in pairs:
        log.info("trial %d was cut off (its driver stopped before it ended): FAIL; its parameters run again as "
                 "trial %d", cut, retry)
    return pairs


def check_job_dirs(trials: list, sweep_dir: Path) -> None:
    """Every numbered directory of the sweep belongs to a trial of this study: no trial may find another
    run's metrics.json in its own directory."""
    known = {t.number for t in trials}
    strays = sorted(int(p.name) for p in Path(sweep_dir).iterdir() if p.is_dir() and p.name.isdigit()
                    and int(p.name) not in known) if Path(sweep_dir).is_dir() else []
    if strays:
        raise ConfigError(f"{Path(sweep_dir) / str(strays[0])}: a job directory that no trial of this study made "
                          "(another study or a grid sweep used this directory); expected a new "
                          "hydra.sweep.dir=<dir>, or the study's own storage")


def trial_rows(trials: list, best: Optional[int], sweep_dir: Path) -> list[dict[str, Any]]:
    """One dict per trial: number, state, value, best ('*'), its parameters, error, job_dir."""
    retried = {t.user_attrs["retry_of"]: t.number for t in trials if "retry_of" in t.user_attrs}
    names = list(dict.fromkeys(k for t in trials for k in t.params))
    rows = []
    for t in trials:
        error = t.user_attrs.get("error", "")
        if is_cut_off(t):
            error = "cut off: its driver stopped" + (f"; retried as trial {retried[t.number]}"
                                                     if t.number in retried else "")
        job_dir = Path(sweep_dir) / str(t.number)
        rows.append({"number": t.number, "state": t.state.name, "value": "" if t.value is None else t.value,
                     "best": "*" if t.number == best else "", **{k: t.params.get(k, "") for k in names},
                     "error": error, "job_dir": str(job_dir) if job_dir.is_dir() else ""})
    return rows


def best_number(study) -> Optional[int]:
    from optuna.trial import TrialState

    return study.best_trial.number if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) else None


def write_trials_csv(study, sweep_dir: Path) -> Path:
    """<sweep dir>/optuna_trials.csv, atomically: every trial of the study."""
    rows = trial_rows(study.get_trials(deepcopy=False), best_number(study), sweep_dir)
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return atomic_write(Path(sweep_dir) / CSV_FILE, lambda p: p.write_text(buf.getvalue()))
