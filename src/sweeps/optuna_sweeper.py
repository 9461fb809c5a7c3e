"""hydra/sweeper=optuna: an Optuna study (TPE) whose trials are this project's jobs, resumable from its sweep
directory. Driven by current Optuna through Hydra's Sweeper interface (hydra-optuna-sweeper pins optuna < 3).

Each batch of n_jobs trials is asked from the study, launched by the configured launcher (basic, submitit_local,
submitit_slurm) and told each job's return value (src.run's main metric); the driver stays alive while they
run. Trial N runs in <sweep dir>/N: trial numbers are unique in a study, so no trial ever reads another's
metrics.json. n_trials counts the whole study; resuming and what counts: src/sweeps/optuna_study.py. Bad
input (direction, n_trials, a search space over a missing key or out of range) stops the sweep with one line
before anything is created or run.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

from src.errors import ConfigError
from src.sweeps import optuna_space, optuna_study

log = logging.getLogger(__name__)
DIRECTIONS = ("maximize", "minimize")


@dataclass
class OptunaSweeperConf:
    """conf/hydra/sweeper/optuna.yaml's keys (Hydra refuses others when it composes the config)."""

    _target_: str = "hydra_plugins.difflab.OptunaSweeper"
    direction: str = "maximize"  # of the task's main metric (src.run's return value)
    n_trials: int = 20  # of the whole study, over every start
    n_jobs: int = 1  # trials per launched batch (a SLURM array of n_jobs)
    seed: Optional[int] = 0  # the TPE sampler's
    study_name: Optional[str] = None  # null: the sweep directory as configured
    storage: Optional[str] = None  # null: sqlite:///<sweep dir>/optuna.db
    params: Dict[str, str] = field(default_factory=dict)  # key -> search space in Hydra's override grammar


ConfigStore.instance().store(group="hydra/sweeper", name="optuna_schema", node=OptunaSweeperConf)


class OptunaSweeper(Sweeper):
    def __init__(self, direction: str, n_trials: int, n_jobs: int, seed: Optional[int], study_name: Optional[str],
                 storage: Optional[str], params: Optional[DictConfig], **unknown: Any) -> None:
        self.unknown = sorted(unknown)  # +hydra.sweeper.<key>=...: refused in one line by sweep(), not here
        self.direction, self.n_trials, self.n_jobs, self.seed = direction, n_trials, n_jobs, seed
        self.study_name, self.storage = study_name, storage
        self.params = dict(params or {})
        self.hydra_context = self.config = self.launcher = None

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        from src.sweeps.launchers import SweepFailed

        try:
            space = self.prepare(arguments)
            sweep_dir = Path(str(self.config.hydra.sweep.dir))
            name = self.study_name or str(self.config.hydra.sweep.dir)
            url = optuna_study.storage_url(self.storage, sweep_dir)
            so_far = optuna_study.peek_trials(name, url)
            optuna_study.check_job_dirs(so_far, sweep_dir)
            if self.config.sweep.dry_run:
                print(self.describe(name, url, space, so_far))
                return []
            sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
            study = optuna_study.open_study(name, url, self.direction, self.seed, len(so_far))
        except ConfigError as err:
            raise SweepFailed(str(err)) from None
        study.set_user_attr("main_metric", str(OmegaConf.select(self.config, "task.main_metric")))
        optuna_study.retry_cut_off(study)
        optuna_study.write_trials_csv(study, sweep_dir)
        return self.run_study(study, space, sweep_dir)

    def prepare(self, arguments: List[str]) -> optuna_space.SearchSpace:
        """Check the options and the search space, and both corners of it as a job's config would be checked;
        ConfigError names the first problem. Nothing is created."""
        from hydra.core.override_parser.overrides_parser import OverridesParser

        if self.unknown:
            raise ConfigError(f"hydra.sweeper.{self.unknown[0]}: not an option of hydra/sweeper=optuna; expected one "
                              f"of {', '.join(f for f in OptunaSweeperConf.__dataclass_fields__ if f != '_target_')}")
        if self.direction not in DIRECTIONS:
            raise ConfigError(f"hydra.sweeper.direction={self.direction!r}: expected maximize or minimize")
        for key in ("n_trials", "n_jobs"):
            if getattr(self, key) < 1:
                raise ConfigError(f"hydra.sweeper.{key}={getattr(self, key)}: expected an integer >= 1")
        self.check_sweep_keys()
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        space = optuna_space.parse_search_space(self.params, arguments, parser)
        if not space.distributions:
            raise ConfigError("hydra.sweeper.params is empty and the command line has no search space; expected one, "
                              "e.g. guidance.scale='interval(0,8)' (or hydra.sweeper.params in an experiment config)")
        optuna_space.check_keys(space, self.config)
        self.check_corners(space)
        return space

    def check_sweep_keys(self) -> None:
        """The `sweep` keys that an Optuna driver cannot honour, and the job directory it relies on."""
        from src.sweeps.launchers import sweep_options

        if not sweep_options(self.config, slurm=True).wait:
            raise ConfigError("sweep.wait=false: an Optuna study asks for each batch after the last one ended, so "
                              "its driver stays alive while trials run; expected sweep.wait=true")
        subdir = OmegaConf.to_container(self.config.hydra.sweep, resolve=False)["subdir"]
        if subdir != "${hydra.job.num}":
            raise ConfigError(f"hydra.sweep.subdir={subdir}: an Optuna study runs trial N in <sweep dir>/N; "
                              "expected ${hydra.job.num}")

    def check_corners(self, space: optuna_space.SearchSpace) -> None:
        """Compose and validate a job at each corner of the search space (src.run's own checks)."""
        from src.sweeps.launchers import plan

        for corner, end in zip(optuna_space.corners(space), ("low", "high")):
            (job,) = plan(self.config, self.hydra_context, [space.overrides(corner)], 0)
            if job.fate == "bad":
                at = " ".join(optuna_space.as_override(k, v) for k, v in corner.items())
                where = f" (the search space's {end} end: {at})" if any(k in job.error for k in corner) else ""
                raise ConfigError(f"{job.error}{where}")

    def describe(self, name: str, url: str, space: optuna_space.SearchSpace, trials: list) -> str:
        """The dry run's line: the study so far and what a start would run."""
        done = sum(map(optuna_study.counts_towards_n_trials, trials))
        cut = sum(t.state.name == "RUNNING" for t in trials)
        return (f"dry run: study {name!r} in {url}: {done} of {self.n_trials} trial(s) done"
                + (f", {cut} cut off (run again first)" if cut else "")
                + f"; would run {max(self.n_trials - done, 0)} trial(s), {self.n_jobs} at a time, over "
                f"{space.describe()}; nothing is run or written")

    def run_study(self, study, space: optuna_space.SearchSpace, sweep_dir: Path) -> list:
        """Batches of n_jobs trials until n_trials count; failures end the command with status 1."""
        from src.sweeps.launchers import SweepFailed

        returns, failed = [], []
        log.info("study %r (%s): %d of %d trial(s) done; searching %s", study.study_name, sweep_dir,
                 self.done(study), self.n_trials, space.describe())
        while (todo := self.n_trials - self.done(study)) > 0:
            trials = [study.ask(space.distributions) for _ in range(min(todo, self.n_jobs))]
            results, errors, not_run = self.run_batch(study, trials, space)
            optuna_study.write_trials_csv(study, sweep_dir)
            returns.append(results)
            failed += errors
            if not_run or errors and self.config.sweep.fail_fast:
                raise SweepFailed(f"sweep.fail_fast: stopped after {len(errors)} failed trial(s) (above); "
                                  "running the command again goes on with the study")
            if len(failed) >= max(3, self.n_jobs) and optuna_study.best_number(study) is None:
                raise SweepFailed(f"{len(failed)} trials failed and none completed, the first with: {failed[0]}; stopped "
                                  "(fix it and run the command again: failed trials count towards n_trials)")
        self.summarize(study)
        if failed:
            raise SweepFailed(f"{len(failed)} trial(s) failed (above); the study has its {self.n_trials} trials: "
                              f"{sweep_dir / optuna_study.CSV_FILE}")
        return returns

    def done(self, study) -> int:
        return sum(map(optuna_study.counts_towards_n_trials, study.get_trials(deepcopy=False)))

    def run_batch(self, study, trials: list, space: optuna_space.SearchSpace):
        """Launch the trials (each in <sweep dir>/<its number>) and tell the study how each ended; returns the
        JobReturns, the failed trials' errors, and the trials the launcher did not run (failed and retried)."""
        from src.sweeps.launchers import plan

        overrides = {t.number: space.overrides(t.params) for t in trials}
        outcome: dict[int, tuple[Optional[float], Optional[str]]] = {}
        for t in trials:  # a value the config refuses fails its trial only; the launcher would stop the batch
            (job,) = plan(self.config, self.hydra_context, [overrides[t.number]], t.number)
            if job.fate == "bad":
                outcome[t.number] = (None, job.error)
        results = []
        for run in consecutive_runs([t for t in trials if t.number not in outcome]):
            returned = self.launcher.launch([overrides[t.number] for t in run], initial_job_idx=run[0].number)
            results += returned
            outcome.update({job_number(r): self.value(r) for r in returned})
        errors = []
        for t in trials:
            if t.number in outcome:
                errors += self.tell(study, t, *outcome[t.number])
        not_run = optuna_study.retry_cut_off(study, {t.number for t in trials if t.number not in outcome})
        return results, errors, not_run

    def value(self, ret) -> tuple[Optional[float], Optional[str]]:
        """A job's value, or why it has none."""
        from hydra.core.utils import JobStatus

        from src.sweeps.launchers import error_line

        if ret.status == JobStatus.FAILED:
            return None, error_line(ret._return_value)
        if not optuna_space.is_number(ret.return_value):
            key = OmegaConf.select(self.config, "task.main_metric")
            return None, f"{key}={ret.return_value!r}: expected a finite number (the task's main metric)"
        return float(ret.return_value), None

    @staticmethod
    def tell(study, trial, value: Optional[float], error: Optional[str]) -> list[str]:
        from optuna.trial import TrialState

        if error is None:
            study.tell(trial, value)
            return []
        trial.set_user_attr("error", error)
        study.tell(trial, state=TrialState.FAIL)
        log.warning("trial %d failed (%s): %s", trial.number, " ".join(f"{k}={v}" for k, v in trial.params.items()),
                    error)
        return [error]

    def summarize(self, study) -> None:
        best = optuna_study.best_number(study)
        if best is not None:
            trial = study.trials[best]
            log.info("study %r: best value %s at trial %d (%s)", study.study_name, trial.value, best,
                     " ".join(optuna_space.as_override(k, v) for k, v in trial.params.items()))


def consecutive_runs(trials: list) -> list[list]:
    """Trials split where their numbers are not consecutive: each run is launched with initial_job_idx = its
    first number, so that job N (directory <sweep dir>/N) is trial N."""
    runs: list[list] = []
    for t in sorted(trials, key=lambda t: t.number):
        if runs and t.number == runs[-1][-1].number + 1:
            runs[-1].append(t)
        else:
            runs.append([t])
    return runs


def job_number(ret) -> int:
    """The job number a launcher's JobReturn belongs to (its Hydra config, else its directory's name)."""
    if ret.hydra_cfg is not None:
        return int(ret.hydra_cfg.hydra.job.num)
    return int(Path(str(ret.working_dir)).name)
