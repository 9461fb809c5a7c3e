"""difflab's launchers: Hydra's basic launcher and hydra-submitit-launcher's local and SLURM launchers (the
`hydra/launcher` options basic, submitit_local, submitit_slurm), with what their users keep asking for.

Before any job starts, every job of the batch is composed and validated (a bad fifth value fails before the
first job is queued) and sorted into: to run, finished (its metrics.json exists: not run or submitted again)
and, on SLURM, still queued by an earlier command (not submitted twice). Then, by the `sweep` config keys:
- sweep.dry_run: print each job's overrides, directory and fate (and on SLURM the array size and the sbatch
  script) and stop; nothing runs, nothing is submitted, nothing is written.
- sweep.fail_fast: the first failure stops the sweep (no further local jobs; the rest of a SLURM array is
  cancelled).
- sweep.wait=false (SLURM): submit and return, printing the job ids; `python -m src.report <sweep dir>`
  shows the jobs' states and builds the report when they are done.
Every launched job is recorded in <sweep dir>/.difflab/jobs.json (its overrides, directory and SLURM id); a
failed job leaves its one-line error in <job dir>/error.txt and, on SLURM, ends FAILED (non-zero exit). After
a batch the launcher prints one line per failed job and a summary; src.sweeps.sweeper makes failures the
command's exit status.
"""
from __future__ import annotations

import copy
import json
import logging
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from hydra._internal.core_plugins.basic_launcher import BasicLauncher as HydraBasicLauncher
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher as SubmititLocalLauncher
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from src.errors import first_line
from src.runtime import atomic_write

log = logging.getLogger(__name__)

REGISTRY = Path(".difflab") / "jobs.json"  # in the sweep dir
ERROR_FILE = "error.txt"  # in a failed job's dir
QUEUED = {"PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED"}


@dataclass
class PlannedJob:
    """One job of a batch: its number, overrides, directory, and what the launcher will do with it."""

    num: int
    overrides: list[str]
    dir: Optional[Path] = None
    fate: str = "run"  # run | finished | queued | bad
    error: Optional[str] = None  # why it is bad (validation) or why it failed
    slurm_id: Optional[str] = None  # of the earlier submission still queued (fate queued)
    metrics: dict[str, float] = field(default_factory=dict)

    label: str = ""  # the overrides that set this job apart from the others of the batch


class SweepFailed(SystemExit):
    """A sweep that cannot start, or had failures: `error: <message>` on stderr and exit status 1, as src.run
    ends on a bad value (a SystemExit: Hydra would print any Exception with a pointer to HYDRA_FULL_ERROR)."""

    def __init__(self, message: str):
        super().__init__(f"error: {message}")


def sweep_options(config: DictConfig, slurm: bool = False) -> DictConfig:
    """The multirun's `sweep` keys (dry_run, fail_fast, wait), checked; SweepFailed names a bad one."""
    for key in ("dry_run", "fail_fast", "wait"):
        if not isinstance(config.sweep[key], bool):
            raise SweepFailed(f"sweep.{key}={config.sweep[key]!r}: expected true or false")
    if not config.sweep.wait and not slurm:
        raise SweepFailed("sweep.wait=false: only a SLURM sweep can be left running; expected "
                          "hydra/launcher=submitit_slurm, or sweep.wait=true")
    return config.sweep


# ---------------------------------------------------------------- planning: compose, validate, sort


def job_config(config: DictConfig, hydra_context, overrides: list[str], num: int) -> DictConfig:
    """The job's config as run_job will see it: the sweep config with its overrides, job number and dir."""
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = num
        sweep_config.hydra.job.num = num
        out = Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)
        sweep_config.hydra.runtime.output_dir = str(out.absolute())
    return sweep_config


def validate_job(sweep_config: DictConfig) -> None:
    """src.run's checks on a job's config, with Hydra's runtime values the job's (paths.output_dir)."""
    from hydra.core.hydra_config import HydraConfig

    from src.config import validate
    from src.run import check_launch

    hydra_config, saved = HydraConfig.instance(), HydraConfig.instance().cfg
    cfg = copy.deepcopy(sweep_config)
    HydraConfig.instance().set_config(cfg)
    try:
        task_cfg = copy.deepcopy(cfg)
        with read_write(task_cfg), open_dict(task_cfg):
            del task_cfg["hydra"]
        validate(task_cfg)
        launcher = cfg.hydra.launcher
        on_slurm = str(launcher.get("_target_", "")).endswith("SlurmLauncher")
        check_launch(task_cfg, int(launcher.tasks_per_node) if on_slurm else None)
    finally:
        hydra_config.cfg = saved


def plan(config: DictConfig, hydra_context, job_overrides: Sequence[Sequence[str]], initial_job_idx: int,
         queued: Optional[dict[int, str]] = None) -> list[PlannedJob]:
    """Every job composed and validated before any runs; finished ones (metrics.json, unless
    skip_finished=false) and ones still queued on SLURM (`queued`: job number -> SLURM id) set apart."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from src.config import hydra_error_line
    from src.errors import DifflabError

    jobs, labels = [], swept_labels(job_overrides)
    for num, (overrides, label) in enumerate(zip(job_overrides, labels), initial_job_idx):
        job = PlannedJob(num, list(overrides), label=label)
        jobs.append(job)
        try:
            sweep_config = job_config(config, hydra_context, job.overrides, num)
            job.dir = Path(sweep_config.hydra.runtime.output_dir)
            validate_job(sweep_config)
        except DifflabError as err:
            job.fate, job.error = "bad", first_line(err, 300)
            continue
        except (HydraException, OmegaConfBaseException) as err:
            job.fate, job.error = "bad", hydra_error_line(err)
            continue
        metrics = read_metrics(job.dir)
        if metrics is not None and sweep_config.skip_finished:
            job.fate, job.metrics = "finished", metrics
        elif queued and num in queued:
            job.fate, job.slurm_id = "queued", queued[num]
    return jobs


def swept_labels(job_overrides: Sequence[Sequence[str]]) -> list[str]:
    """Each job's overrides that differ between the jobs (all of its own if they do not differ)."""
    from src.config import own_overrides

    own = [own_overrides(filter_overrides(o)) for o in job_overrides]
    common = set.intersection(*(set(o) for o in own)) if len(own) > 1 else set()
    return [" ".join(o for o in overrides if o not in common) or " ".join(overrides) or "(no overrides)"
            for overrides in own]


def read_metrics(job_dir: Path) -> Optional[dict[str, float]]:
    """A job's metrics.json (written atomically: present means complete), None if absent or unreadable."""
    try:
        return json.loads((job_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None


def check_plan(jobs: list[PlannedJob]) -> None:
    """One line per job with a bad value, then SweepFailed: nothing has run or been submitted."""
    bad = [j for j in jobs if j.fate == "bad"]
    by_error: dict[str, list[PlannedJob]] = {}
    for job in bad:
        by_error.setdefault(job.error, []).append(job)
    for error, same in by_error.items():  # an unknown key is the same error in every job: said once
        which = f"job {same[0].num} ({same[0].label})" if len(same) == 1 else \
            f"jobs {', '.join(str(j.num) for j in same)}"
        print(f"{which}: {error}", file=sys.stderr)
    if bad:
        raise SweepFailed(f"{len(bad)} of {len(jobs)} jobs have bad values (above); nothing was run or submitted")


def describe_plan(jobs: list[PlannedJob], sweep_dir: str) -> str:
    """The dry run's table: each job's number, overrides, directory and fate."""
    fates = {"run": "would run", "finished": "finished: skipped (metrics.json)",
             "queued": "queued on SLURM: not submitted again"}
    lines = [f"dry run: {len(jobs)} job(s) in {sweep_dir}; nothing is run or submitted"]
    for job in jobs:
        fate = fates[job.fate] + (f" ({job.slurm_id})" if job.slurm_id else "")
        lines.append(f"  job {job.num}: {job.label}\n    dir {job.dir}\n    {fate}")
    return "\n".join(lines)


# ---------------------------------------------------------------- bookkeeping


def read_registry(sweep_dir: Path) -> dict[int, dict]:
    """<sweep dir>/.difflab/jobs.json: job number -> {overrides, dir, slurm_id}."""
    try:
        return {int(k): v for k, v in json.loads((Path(sweep_dir) / REGISTRY).read_text()).items()}
    except (OSError, ValueError):
        return {}


def record(sweep_dir: Path, jobs: list[PlannedJob], slurm_ids: Optional[dict[int, str]] = None) -> None:
    """Add the launched jobs to the registry (atomically)."""
    registry = read_registry(sweep_dir)
    for job in jobs:
        registry[job.num] = {"overrides": job.overrides, "dir": str(job.dir),
                             "slurm_id": (slurm_ids or {}).get(job.num)}
    text = json.dumps({str(k): registry[k] for k in sorted(registry)}, indent=2) + "\n"
    atomic_write(Path(sweep_dir) / REGISTRY, lambda p: p.write_text(text))


def note_outcome(ret: JobReturn) -> None:
    """In the job: a failure's one-line error into <job dir>/error.txt; a success removes a stale one."""
    if ret.hydra_cfg is None:
        return
    path = Path(ret.hydra_cfg.hydra.runtime.output_dir) / ERROR_FILE
    if ret.status == JobStatus.FAILED:
        line = error_line(ret._return_value)
        atomic_write(path, lambda p: p.write_text(line + "\n"))
    else:
        path.unlink(missing_ok=True)


def error_line(err: BaseException) -> str:
    """difflab's errors are their message; anything else is its type and first line."""
    from src.errors import DifflabError

    return first_line(err, 300) if isinstance(err, DifflabError) else f"{type(err).__name__}: {first_line(err, 300)}"


def finished_return(job: PlannedJob, config: DictConfig) -> JobReturn:
    """The JobReturn of a job that finished earlier: its main metric, as the job itself would return it."""
    ret = JobReturn(overrides=job.overrides, working_dir=str(job.dir), task_name=config.hydra.job.name,
                    status=JobStatus.COMPLETED)
    ret.return_value = job.metrics.get(str(OmegaConf.select(config, "task.main_metric")))
    return ret


def failed_return(job: PlannedJob, message: str) -> JobReturn:
    ret = JobReturn(overrides=job.overrides, working_dir=str(job.dir), status=JobStatus.FAILED)
    job.error = message
    ret.return_value = JobFailed(message)
    return ret


class JobFailed(Exception):
    """A job's failure as the launching side knows it: its one-line error."""


def summarize(jobs: list[PlannedJob], results: dict[int, JobReturn], sweep_dir: str) -> None:
    """One line per failed job (its overrides and error), then done / skipped / failed / not run."""
    failed = [j for j in jobs if j.num in results and results[j.num].status == JobStatus.FAILED]
    for job in failed:
        print(f"job {job.num} failed ({job.label}): {job.error or error_line(results[job.num]._return_value)}",
              file=sys.stderr)
    done = sum(r.status == JobStatus.COMPLETED for n, r in results.items()) - sum(j.fate == "finished" for j in jobs)
    counts = {"done": done, "skipped (finished earlier)": sum(j.fate == "finished" for j in jobs),
              "failed": len(failed), "not run (fail_fast)": sum(j.num not in results for j in jobs)}
    print(f"sweep {sweep_dir}: {len(jobs)} job(s): "
          + ", ".join(f"{n} {what}" for what, n in counts.items() if n or what in ("done", "failed")), file=sys.stderr)


# ---------------------------------------------------------------- launchers


class BasicLauncher(HydraBasicLauncher):
    """Jobs one after another in this process (Hydra's basic launcher, planned and summarised)."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        options = sweep_options(self.config)
        jobs = plan(self.config, self.hydra_context, job_overrides, initial_job_idx)
        check_plan(jobs)
        sweep_dir = str(self.config.hydra.sweep.dir)
        if options.dry_run:
            print(describe_plan(jobs, sweep_dir))
            return []
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(sweep_dir).mkdir(parents=True, exist_ok=True)
        record(Path(sweep_dir), [j for j in jobs if j.fate == "run"])
        results: dict[int, JobReturn] = {}
        for job in jobs:
            if job.fate == "finished":
                log.info("\t#%d : %s: finished earlier (metrics.json), skipped", job.num, job.label)
                results[job.num] = finished_return(job, self.config)
                continue
            if options.fail_fast and any(r.status == JobStatus.FAILED for r in results.values()):
                break
            log.info("\t#%d : %s", job.num, job.label)
            sweep_config = job_config(self.config, self.hydra_context, job.overrides, job.num)
            ret = run_job(hydra_context=self.hydra_context, task_function=self.task_function, config=sweep_config,
                          job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
            note_outcome(ret)
            results[job.num] = ret
        summarize(jobs, results, sweep_dir)
        return [results[j.num] for j in jobs if j.num in results]


class _SubmititMixin:
    """What the submitit launchers (local and SLURM) add: planning, dry run, skipping finished and queued
    jobs, failing jobs that exit non-zero, fail-fast and submit-and-leave."""

    _EXECUTOR: str

    def __call__(self, *args: Any) -> JobReturn:
        """In the job: run it; a failure is written to error.txt and raised, so the job ends FAILED."""
        ret = super().__call__(*args)
        note_outcome(ret)
        if ret.status == JobStatus.FAILED:
            raise JobFailed(error_line(ret._return_value)) from None
        return ret

    def executor(self):
        """submitit's executor with this launcher's parameters (as hydra-submitit-launcher builds it)."""
        import submitit
        from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

        init = {"folder": self.params["submitit_folder"]}
        if "max_num_timeout" in self.params:
            init[f"{self._EXECUTOR}_max_num_timeout"] = self.params["max_num_timeout"]
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"{self._EXECUTOR}_{k}": v for k, v in self.params.items()
                                      if k not in ("submitit_folder", "max_num_timeout")})
        return executor

    def sbatch_script(self, n: int) -> str:
        """The sbatch script a SLURM array of n jobs is submitted with."""
        from submitit.slurm.slurm import SlurmExecutor

        inner = self.executor()._executor
        array = SlurmExecutor(inner.folder, inner.max_num_timeout)
        array.update_parameters(**inner.parameters)
        if n > 1:
            array.parameters["map_count"] = n
        return array._make_submission_file_text(inner._submitit_command_str, "<uid>")

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        slurm = self._EXECUTOR == "slurm"
        options = sweep_options(self.config, slurm)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        jobs = plan(self.config, self.hydra_context, job_overrides, initial_job_idx,
                    queued=queued_on_slurm(sweep_dir) if slurm else None)
        check_plan(jobs)
        to_run = [j for j in jobs if j.fate == "run"]
        if options.dry_run:
            text = describe_plan(jobs, str(sweep_dir))
            if slurm and to_run:
                text += (f"\nSLURM: {'one array of ' if len(to_run) > 1 else ''}{len(to_run)} job(s), at most "
                         f"{self.params.get('array_parallelism')} at a time; the sbatch script:\n"
                         + self.sbatch_script(len(to_run)))
            print(text)
            return []
        if not options.wait and options.fail_fast:
            print("sweep.fail_fast does not apply: sweep.wait=false leaves the jobs running without this command",
                  file=sys.stderr)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        submitted = self.submit(to_run) if to_run else {}
        record(sweep_dir, to_run, {n: j.job_id for n, j in submitted.items()} if slurm else None)
        if not options.wait:
            print(leave_message(jobs, submitted, sweep_dir))
            return []
        watched = {**submitted, **{j.num: self.attach(j) for j in jobs if j.fate == "queued"}}
        results = {j.num: finished_return(j, self.config) for j in jobs if j.fate == "finished"}
        results.update(self.wait(jobs, watched, options.fail_fast))
        summarize(jobs, results, str(sweep_dir))
        return [results[j.num] for j in jobs if j.num in results]

    def submit(self, jobs: list[PlannedJob]) -> dict[int, Any]:
        """Submit the jobs (one array); returns job number -> submitit Job."""
        from hydra.core.singleton import Singleton

        for job in jobs:
            log.info("\t#%d : %s", job.num, job.label)
        params = [(job.overrides, "hydra.sweep.dir", job.num, f"job_id_for_{job.num}", Singleton.get_state())
                  for job in jobs]
        submitted = self.executor().map_array(self, *zip(*params))
        return {job.num: s for job, s in zip(jobs, submitted)}

    def attach(self, job: PlannedJob):
        """A submitit Job for a job an earlier command submitted and SLURM still runs."""
        from submitit.slurm.slurm import SlurmJob

        log.info("\t#%d : %s: still queued as %s, waiting for it", job.num, job.label, job.slurm_id)
        folder = str(self.params["submitit_folder"])
        return SlurmJob(folder=folder, job_id=job.slurm_id)

    def wait(self, jobs: list[PlannedJob], watched: dict[int, Any], fail_fast: bool) -> dict[int, JobReturn]:
        """Results as jobs end; with fail_fast the first failure cancels the others."""
        by_num, results = {j.num: j for j in jobs}, {}
        pending = dict(watched)
        while pending:
            ended = [num for num, handle in pending.items() if handle.done()]
            live = self.still_on_slurm([pending[num] for num in ended])
            for num in ended:
                handle = pending.get(num)
                if handle is None:  # cancelled by fail_fast above
                    break
                if handle.job_id in live:  # a result from an attempt SLURM requeued: wait for the last one
                    continue
                del pending[num]
                results[num] = self.result(by_num[num], handle)
                if fail_fast and results[num].status == JobStatus.FAILED and pending:
                    print(f"sweep.fail_fast: job {num} failed; cancelling {len(pending)} other job(s)", file=sys.stderr)
                    for other in pending.values():
                        other.cancel(check=False)
                    pending.clear()
            time.sleep(1.0 if pending else 0)
        return results

    def still_on_slurm(self, handles: list) -> set[str]:
        """Ids of these jobs that SLURM still holds (pending, running, requeued); none for local jobs."""
        return set()

    @staticmethod
    def result(job: PlannedJob, handle) -> JobReturn:
        """The job's JobReturn; a failure's line from its error.txt, else what submitit knows."""
        try:
            return handle.results()[0]
        except Exception as err:  # submitit's FailedJobError / UncompletedJobError: the traceback is in its logs
            saved = Path(job.dir) / ERROR_FILE
            line = saved.read_text().strip() if saved.is_file() else f"{handle.state}: {first_line(err)}"
            return failed_return(job, line)


class LocalLauncher(_SubmititMixin, SubmititLocalLauncher):
    """hydra/launcher=submitit_local: the jobs as parallel local processes through submitit."""


class SlurmLauncher(_SubmititMixin, SubmititSlurmLauncher):
    """hydra/launcher=submitit_slurm: the sweep as a SLURM job array through submitit."""

    def still_on_slurm(self, handles: list) -> set[str]:
        """A requeued job (preemption, time limit) can leave its interrupted attempt's result behind - when
        SLURM's requeue kills the `scontrol requeue` that submitit's signal handler runs, that result is an
        error - while the next attempt waits or runs: only a job SLURM no longer holds has ended."""
        ids = [h.job_id for h in handles]
        return {i for i, state in slurm_states(ids).items() if state in QUEUED} if ids else set()


def leave_message(jobs: list[PlannedJob], submitted: dict[int, Any], sweep_dir: Path) -> str:
    ids = sorted({s.job_id.split("_")[0] for s in submitted.values()})
    lines = [f"submitted {len(submitted)} job(s) to SLURM" + (f" (job {', '.join(ids)})" if ids else "")
             + "; they run without this command"]
    for job in jobs:
        if job.num in submitted:
            lines.append(f"  job {job.num}: {submitted[job.num].job_id}  {job.label}")
        elif job.fate != "run":
            lines.append(f"  job {job.num}: {'still queued as ' + job.slurm_id if job.slurm_id else 'finished earlier'}"
                         f"  {job.label}")
    lines.append(f"their state, and the report once they are done: python -m src.report {shlex.quote(str(sweep_dir))}")
    return "\n".join(lines)


# ---------------------------------------------------------------- SLURM states


def slurm_states(ids: list[str]) -> dict[str, str]:
    """SLURM job id -> state (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, ...): squeue for the live ones
    (array tasks listed one by one), sacct for the ended ones; unknown ids are left out."""
    import subprocess

    if not ids:
        return {}
    states: dict[str, str] = {}
    arrays = sorted({i.split("_")[0] for i in ids})
    out = subprocess.run(["squeue", "-h", "-r", "-j", ",".join(arrays), "-o", "%i|%T"], capture_output=True,
                         text=True)
    for line in out.stdout.splitlines():
        job, _, state = line.partition("|")
        states[job.strip()] = state.strip()
    rest = [i for i in ids if i not in states]
    if rest:
        out = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", ",".join(rest)],
                             capture_output=True, text=True)
        for line in out.stdout.splitlines():
            job, _, state = line.partition("|")
            if job in rest:
                states[job] = state.split()[0] if state else "UNKNOWN"
    return states


def queued_on_slurm(sweep_dir: Path) -> dict[int, str]:
    """Jobs of this sweep that an earlier command submitted and SLURM has not ended: number -> SLURM id."""
    ids = {num: entry["slurm_id"] for num, entry in read_registry(sweep_dir).items() if entry.get("slurm_id")}
    states = slurm_states(list(ids.values()))
    return {num: sid for num, sid in ids.items() if states.get(sid) in QUEUED}
