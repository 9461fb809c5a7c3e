"""Offline sweep report: `python -m src.report <sweep dir> [--metrics k1,k2]`.

Reads every job folder of a Hydra multirun (`<n>/.hydra/overrides.yaml`, `<n>/metrics.json`) and writes
`report.md` and `report.csv` (every job's overrides and metrics; jobs without metrics.json marked failed)
and `report_<param>.png` (the main metric against each swept parameter, failed jobs marked) into it.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from src.errors import DataError
from src.runtime import atomic_write


@dataclass
class Job:
    name: str
    overrides: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)
    main_metric: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.metrics)


def read_sweep(sweep: Path) -> list[Job]:
    """Every `<sweep>/<job>/.hydra` folder as a Job, in job-number order."""
    if not sweep.is_dir():
        raise DataError(f"{sweep}: no such folder; expected a Hydra sweep dir (multirun/<task>/<time>)")
    jobs = []
    for hydra_dir in sorted(sweep.glob("*/.hydra"), key=lambda p: (len(p.parent.name), p.parent.name)):
        items = yaml.safe_load((hydra_dir / "overrides.yaml").read_text()) or []
        overrides = dict(item.split("=", 1) for item in items if "=" in item)
        config = yaml.safe_load((hydra_dir / "config.yaml").read_text()) if (hydra_dir / "config.yaml").is_file() else {}
        metrics_file = hydra_dir.parent / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        main = (config.get("task") or {}).get("main_metric")
        jobs.append(Job(hydra_dir.parent.name, overrides, metrics, main))
    if not jobs:
        raise DataError(f"{sweep}: no job folders with .hydra/overrides.yaml; expected a Hydra sweep dir")
    return jobs


def swept_params(jobs: list[Job]) -> list[str]:
    """Override keys whose value differs between jobs, in first-seen order."""
    keys = list(dict.fromkeys(k for j in jobs for k in j.overrides))
    return [k for k in keys if len({j.overrides.get(k) for j in jobs}) > 1]


def write_tables(jobs: list[Job], sweep: Path, columns: list[str]) -> None:
    """report.csv (all overrides and metrics) and report.md (swept params, status, chosen metrics)."""
    params = swept_params(jobs)
    all_over = list(dict.fromkeys(k for j in jobs for k in j.overrides))
    all_metrics = sorted({k for j in jobs for k in j.metrics})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["job", "status", *all_over, *all_metrics])
    for j in jobs:
        w.writerow([j.name, "ok" if j.ok else "failed", *(j.overrides.get(k, "") for k in all_over),
                    *(j.metrics.get(k, "") for k in all_metrics)])
    atomic_write(sweep / "report.csv", lambda p: p.write_text(buf.getvalue()))
    lines = [f"# Sweep {sweep}", "", f"{sum(j.ok for j in jobs)} of {len(jobs)} jobs finished.", "",
             "| job | status | " + " | ".join(params + columns) + " |",
             "|---|---|" + "---|" * len(params) + "---:|" * len(columns)]
    for j in jobs:
        values = [f"{j.metrics[c]:.4g}" if c in j.metrics else "" for c in columns]
        lines.append(f"| {j.name} | {'ok' if j.ok else '**failed**'} | "
                     + " | ".join([j.overrides.get(p, "") for p in params] + values) + " |")
    atomic_write(sweep / "report.md", lambda p: p.write_text("\n".join(lines) + "\n"))


def plot_params(jobs: list[Job], sweep: Path, metric: str) -> list[Path]:
    """One PNG per swept parameter: `metric` per job (numeric x when every value is a number)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for param in swept_params(jobs):
        values = [j.overrides.get(param, "") for j in jobs]
        try:
            xs = [float(v) for v in values]
        except ValueError:
            xs = list(range(len(values)))
        fig, ax = plt.subplots(figsize=(4.5, 3.2))
        ok = [(x, j.metrics[metric]) for x, j in zip(xs, jobs) if metric in j.metrics]
        if ok:
            ax.plot(*zip(*sorted(ok)), "o-", label="finished")
        failed = [x for x, j in zip(xs, jobs) if not j.ok]
        if failed:
            ax.plot(failed, [ax.get_ylim()[0]] * len(failed), "rx", markersize=10, label="failed")
        if xs == list(range(len(values))):
            ax.set_xticks(xs, values, rotation=30, ha="right")
        ax.set_xlabel(param), ax.set_ylabel(metric), ax.grid(alpha=0.3), ax.legend(fontsize=8)
        path = sweep / f"report_{param.replace('/', '_')}.png"
        atomic_write(path, lambda p: fig.savefig(p, dpi=150, bbox_inches="tight"))
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m src.report", description=__doc__.splitlines()[0])
    p.add_argument("sweep", type=Path, help="a Hydra sweep dir, e.g. multirun/digits/2026-11-28_12-00-00")
    p.add_argument("--metrics", default="", help="comma-separated metric keys for report.md (default: the main metric)")
    args = p.parse_args(argv)
    try:
        jobs = read_sweep(args.sweep)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    main_metric = next((j.main_metric for j in jobs if j.main_metric), None)
    columns = [c for c in args.metrics.split(",") if c] or ([main_metric] if main_metric else [])
    write_tables(jobs, args.sweep, columns)
    plots = plot_params(jobs, args.sweep, columns[0]) if columns else []
    print(f"wrote {args.sweep / 'report.md'}, report.csv and {len(plots)} plot(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
