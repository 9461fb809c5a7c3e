"""Sweep state and report: `python -m src.report <sweep dir> [--metrics k1,k2]`.

Prints each job's state: done, failed (with its error line), pending or running (SLURM, from squeue/sacct),
from the sweep's files (<sweep>/.difflab/jobs.json, <job>/.hydra/overrides.yaml, <job>/metrics.json,
<job>/error.txt). When no job is pending or running it writes, into the sweep dir, `report.md` and
`report.csv` (every job's overrides and metrics), `report_<param>.png` (the main metric against each swept
parameter) and, when the sweep repeats its settings over seeds (seed=0,1,2), the mean and standard deviation
of each metric per setting in report.md and report_seeds.csv, and error bars in the plots. An Optuna
sweep's trials get optuna_trials.md and optuna_best.png.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from src.errors import DataError
from src.runtime import atomic_write
from src.sweeps.optuna_report import write_optuna_report

LIVE = {"PENDING": "pending", "REQUEUED": "pending", "CONFIGURING": "running", "RUNNING": "running",
        "COMPLETING": "running", "RESIZING": "running", "SUSPENDED": "running"}


@dataclass
class Job:
    name: str
    overrides: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)
    main_metric: str | None = None
    state: str = "failed"  # done | failed | pending | running
    error: str = ""
    slurm_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.state == "done"


def _overrides(items: list[str]) -> dict[str, str]:
    return dict(str(item).split("=", 1) for item in items if "=" in str(item))


def read_sweep(sweep: Path, *, ask_slurm: bool = True) -> list[Job]:
    """Every job of the sweep, in job-number order: the jobs its launcher recorded and every
    `<sweep>/<job>/.hydra` folder, with their states (SLURM's for jobs without results when ask_slurm)."""
    from src.sweeps.launchers import ERROR_FILE, read_registry, slurm_states

    if not sweep.is_dir():
        raise DataError(f"{sweep}: no such folder; expected a Hydra sweep dir (multirun/<task>/<name>)")
    registry = read_registry(sweep)
    names = {str(n) for n in registry} | {p.parent.name for p in sweep.glob("*/.hydra")}
    jobs = []
    for name in sorted(names, key=lambda n: (len(n), n)):
        entry, folder = registry.get(int(name)) if name.isdigit() else None, sweep / name
        hydra_dir = folder / ".hydra"
        if (hydra_dir / "overrides.yaml").is_file():
            overrides = _overrides(yaml.safe_load((hydra_dir / "overrides.yaml").read_text()) or [])
        else:
            overrides = _overrides((entry or {}).get("overrides", []))
        config = yaml.safe_load((hydra_dir / "config.yaml").read_text()) if (hydra_dir / "config.yaml").is_file() else {}
        job = Job(name, overrides, main_metric=(config.get("task") or {}).get("main_metric"),
                  slurm_id=(entry or {}).get("slurm_id"))
        if (folder / "metrics.json").is_file():
            job.metrics, job.state = json.loads((folder / "metrics.json").read_text()), "done"
        elif (folder / ERROR_FILE).is_file():
            job.error = (folder / ERROR_FILE).read_text().strip()
        jobs.append(job)
    if not jobs:
        raise DataError(f"{sweep}: no job folders with .hydra/overrides.yaml; expected a Hydra sweep dir")
    unfinished = [j for j in jobs if not j.ok and j.slurm_id]
    states = slurm_states([j.slurm_id for j in unfinished]) if ask_slurm and unfinished else {}
    for job in unfinished:
        state = states.get(job.slurm_id, "")
        if state in LIVE:
            job.state, job.error = LIVE[state], ""
        elif not job.error:
            job.error = f"SLURM {state or 'has no record of'} {job.slurm_id}, no metrics.json"
    for job in jobs:
        if job.state == "failed" and not job.error:
            job.error = "no metrics.json"
    return jobs


def swept_params(jobs: list[Job]) -> list[str]:
    """Override keys whose value differs between jobs, in first-seen order."""
    keys = list(dict.fromkeys(k for j in jobs for k in j.overrides))
    return [k for k in keys if len({j.overrides.get(k) for j in jobs}) > 1]


def status_table(jobs: list[Job]) -> str:
    """One line per job: number, state, the swept overrides, and a failure's error."""
    params = swept_params(jobs)
    lines = []
    for j in jobs:
        label = " ".join(f"{p}={j.overrides[p]}" for p in params if p in j.overrides) or "(no swept values)"
        extra = f"  {j.slurm_id}" if j.slurm_id and j.state in ("pending", "running") else ""
        lines.append(f"{j.name:>4}  {j.state:<8} {label}{extra}" + (f"\n      {j.error}" if j.state == "failed" else ""))
    counts = {s: sum(j.state == s for j in jobs) for s in ("done", "failed", "pending", "running")}
    lines.append(f"{len(jobs)} job(s): " + ", ".join(f"{n} {s}" for s, n in counts.items() if n or s == "done"))
    return "\n".join(lines)


# ---------------------------------------------------------------- seeds


def seed_groups(jobs: list[Job]) -> dict[tuple, list[Job]]:
    """Finished jobs grouped by their swept overrides other than the seed (a sweep over seeds), else {}."""
    params = swept_params(jobs)
    if "seed" not in params:
        return {}
    others = [p for p in params if p != "seed"]
    groups: dict[tuple, list[Job]] = {}
    for j in jobs:
        if j.ok:
            groups.setdefault(tuple(j.overrides.get(p, "") for p in others), []).append(j)
    return groups


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def seed_rows(jobs: list[Job], metrics: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the over-seeds table: the other swept values, n, seeds, mean and std of each metric."""
    others = [p for p in swept_params(jobs) if p != "seed"]
    header = [*others, "n", "seeds", *(f"{m} {s}" for m in metrics for s in ("mean", "std"))]
    rows = []
    for key, group in seed_groups(jobs).items():
        row = [*key, str(len(group)), " ".join(j.overrides.get("seed", "") for j in group)]
        for m in metrics:
            values = [j.metrics[m] for j in group if m in j.metrics]
            row += [f"{v:.6g}" for v in mean_std(values)] if values else ["", ""]
        rows.append(row)
    return header, rows


# ---------------------------------------------------------------- files


def write_tables(jobs: list[Job], sweep: Path, columns: list[str]) -> None:
    """report.csv (all overrides and metrics), report.md (swept params, status, chosen metrics; the means
    over seeds), report_seeds.csv when the sweep has seeds."""
    params = swept_params(jobs)
    all_over = list(dict.fromkeys(k for j in jobs for k in j.overrides))
    all_metrics = sorted({k for j in jobs for k in j.metrics})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["job", "status", *all_over, *all_metrics, "error"])
    for j in jobs:
        w.writerow([j.name, "ok" if j.ok else "failed", *(j.overrides.get(k, "") for k in all_over),
                    *(j.metrics.get(k, "") for k in all_metrics), j.error])
    atomic_write(sweep / "report.csv", lambda p: p.write_text(buf.getvalue()))
    lines = [f"# Sweep {sweep}", "", f"{sum(j.ok for j in jobs)} of {len(jobs)} jobs finished.", "",
             "| job | status | " + " | ".join(params + columns) + " |",
             "|---|---|" + "---|" * len(params) + "---:|" * len(columns)]
    for j in jobs:
        values = [f"{j.metrics[c]:.4g}" if c in j.metrics else "" for c in columns]
        lines.append(f"| {j.name} | {'ok' if j.ok else '**failed**'} | "
                     + " | ".join([j.overrides.get(p, "") for p in params] + values) + " |")
    if seed_groups(jobs):
        header, rows = seed_rows(jobs, columns)
        lines += ["", "## Over seeds", "", "Mean and sample standard deviation of the finished jobs of each setting.",
                  "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        header, rows = seed_rows(jobs, all_metrics)
        seeds = io.StringIO()
        csv.writer(seeds).writerows([header, *rows])
        atomic_write(sweep / "report_seeds.csv", lambda p: p.write_text(seeds.getvalue()))
    atomic_write(sweep / "report.md", lambda p: p.write_text("\n".join(lines) + "\n"))


def plot_params(jobs: list[Job], sweep: Path, metric: str) -> list[Path]:
    """One PNG per swept parameter (the seed aside): `metric` against it, one line per setting of the other
    swept parameters, the mean over seeds with a standard-deviation error bar when seeds are swept; numeric x
    when every value is a number; failed jobs marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = [p for p in swept_params(jobs) if p != "seed"]
    paths = []
    for param in params:
        others = [p for p in params if p != param]
        values = list(dict.fromkeys(j.overrides.get(param, "") for j in jobs))
        try:
            position = {v: float(v) for v in values}
        except ValueError:
            position = {v: float(i) for i, v in enumerate(values)}
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        series: dict[tuple, dict[str, list[float]]] = {}
        for j in jobs:
            if metric in j.metrics:
                key = tuple(j.overrides.get(p, "") for p in others)
                series.setdefault(key, {}).setdefault(j.overrides.get(param, ""), []).append(j.metrics[metric])
        for key, points in series.items():
            xs = sorted(points, key=position.get)
            stats = [mean_std(points[x]) for x in xs]
            label = ", ".join(f"{p}={v}" for p, v in zip(others, key)) or "finished"
            ax.errorbar([position[x] for x in xs], [m for m, _ in stats], yerr=[s for _, s in stats], fmt="o-",
                        capsize=3, label=label + (" (mean ± std over seeds)" if "seed" in swept_params(jobs) else ""))
        failed = [position[j.overrides.get(param, "")] for j in jobs if not j.ok]
        if failed:
            ax.plot(failed, [ax.get_ylim()[0]] * len(failed), "rx", markersize=10, label="failed")
        if any(position[v] != _number(v) for v in values):
            ax.set_xticks([position[v] for v in values], values, rotation=30, ha="right")
        ax.set_xlabel(param), ax.set_ylabel(metric), ax.grid(alpha=0.3), ax.legend(fontsize=7)
        path = sweep / f"report_{param.replace('/', '_')}.png"
        atomic_write(path, lambda p: fig.savefig(p, dpi=150, bbox_inches="tight"))
        plt.close(fig)
        paths.append(path)
    return paths


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m src.report", description=__doc__.splitlines()[0])
    p.add_argument("sweep", type=Path, help="a Hydra sweep dir, e.g. multirun/digits/guidance.scale=0,1,3,5")
    p.add_argument("--metrics", default="", help="comma-separated metric keys for report.md (default: the main metric)")
    args = p.parse_args(argv)
    try:
        jobs = read_sweep(args.sweep)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(status_table(jobs))
    live = sum(j.state in ("pending", "running") for j in jobs)
    if live:
        print(f"{live} job(s) still pending or running: the report is written when they have ended")
        return 0
    main_metric = next((j.main_metric for j in jobs if j.main_metric), None)
    columns = [c for c in args.metrics.split(",") if c] or ([main_metric] if main_metric else [])
    write_tables(jobs, args.sweep, columns)
    plots = plot_params(jobs, args.sweep, columns[0]) if columns else []
    plots += write_optuna_report(args.sweep)  # [] unless the sweep is an Optuna study
    print(f"wrote {args.sweep / 'report.md'}, report.csv and {len(plots)} more file(s): "
          + ", ".join(p.name for p in plots))
    return 0


if __name__ == "__main__":
    sys.exit(main())
