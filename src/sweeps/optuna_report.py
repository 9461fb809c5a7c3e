"""The report of an Optuna sweep (src.report calls it): <sweep dir>/optuna_trials.md, every trial with its
state, value and parameters, the best marked, and optuna_best.png, the best value so far against trial number
with each trial's value as a dot. Read from the study in <sweep dir>/optuna.db, else from optuna_trials.csv."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from src.runtime import atomic_write
from src.sweeps.optuna_study import CSV_FILE, DB_FILE, best_number, storage_url, trial_rows


@dataclass
class Trial:
    number: int
    state: str
    value: Optional[float]
    best: bool
    params: dict[str, str]
    error: str


def write_optuna_report(sweep: Path) -> list[Path]:
    """optuna_trials.md and optuna_best.png in `sweep` (atomically); [] when it holds no Optuna study."""
    found = read_trials(Path(sweep))
    if found is None:
        return []
    trials, direction, metric = found
    return [write_table(trials, direction, metric, Path(sweep)), plot_best(trials, direction, metric, Path(sweep))]


def read_trials(sweep: Path) -> Optional[tuple[list[Trial], str, str]]:
    """The study's trials, direction and metric: from optuna.db when it holds one study, else
    optuna_trials.csv."""
    if (sweep / DB_FILE).is_file():
        import optuna

        url = storage_url(None, sweep)
        names = optuna.study.get_all_study_names(url)
        if len(names) == 1:
            study = optuna.load_study(study_name=names[0], storage=url)
            rows = trial_rows(study.get_trials(deepcopy=False), best_number(study), sweep)
            metric = study.user_attrs.get("main_metric", "value")
            return [as_trial(r) for r in rows], study.direction.name.lower(), metric
    if (sweep / CSV_FILE).is_file():
        with (sweep / CSV_FILE).open(newline="") as f:
            trials = [as_trial(r) for r in csv.DictReader(f)]
        return trials, csv_direction(trials), "value"
    return None


def as_trial(row: dict) -> Trial:
    fixed = {"number", "state", "value", "best", "error", "job_dir"}
    value = row["value"]
    return Trial(int(row["number"]), row["state"], None if value in ("", None) else float(value), row["best"] == "*",
                 {k: str(v) for k, v in row.items() if k not in fixed}, row["error"] or "")


def csv_direction(trials: list[Trial]) -> str:
    """The CSV has no direction: the best trial's value is the smallest when the study minimises."""
    values = [t.value for t in trials if t.value is not None]
    best = next((t.value for t in trials if t.best), None)
    return "minimize" if values and best == min(values) and best != max(values) else "maximize"


def write_table(trials: list[Trial], direction: str, metric: str, sweep: Path) -> Path:
    names = list(dict.fromkeys(k for t in trials for k in t.params))
    complete = [t for t in trials if t.state == "COMPLETE"]
    best = next((t for t in trials if t.best), None)
    states = {s: sum(t.state == s for t in trials) for s in dict.fromkeys(t.state for t in trials)}
    lines = [f"# Optuna study {sweep}", "",
             f"{len(trials)} trials ({', '.join(f'{n} {s.lower()}' for s, n in states.items())}); {direction} {metric}"
             + (f"; best {best.value:.6g} at trial {best.number} (**bold**)." if best else "; no trial completed."),
             "", f"| trial | state | {metric} | " + " | ".join(names) + " | error |",
             "|---:|---|---:|" + "---|" * len(names) + "---|"]
    for t in trials:
        value = "" if t.value is None else f"{t.value:.6g}"
        mark = (lambda s: f"**{s}**") if t.best else (lambda s: s)
        lines.append(f"| {mark(t.number)} | {t.state} | {mark(value) if value else ''} | "
                     + " | ".join(t.params.get(k, "") for k in names) + f" | {t.error.replace('|', '/')} |")
    if complete and len(complete) < len(trials):
        lines += ["", "Failed trials count towards n_trials; trials cut off by an interruption ran again."]
    path = sweep / "optuna_trials.md"
    return atomic_write(path, lambda p: p.write_text("\n".join(lines) + "\n"))


def plot_best(trials: list[Trial], direction: str, metric: str, sweep: Path) -> Path:
    """Each completed trial's value (dots), the best so far (steps), failed trials (red x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    pick = min if direction == "minimize" else max
    done = [(t.number, t.value) for t in trials if t.value is not None]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    if done:
        xs, ys = zip(*done)
        best = [pick(ys[: i + 1]) for i in range(len(ys))]
        ax.plot(xs, ys, "o", alpha=0.6, label="trial value")
        ax.step(xs, best, where="post", color="C1", label=f"best so far ({direction})")
    failed = [t.number for t in trials if t.state == "FAIL"]
    if failed:
        ax.plot(failed, [ax.get_ylim()[0]] * len(failed), "rx", label="failed")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial"), ax.set_ylabel(metric), ax.grid(alpha=0.3), ax.legend(fontsize=8)
    path = sweep / "optuna_best.png"
    atomic_write(path, lambda p: fig.savefig(p, dpi=150, bbox_inches="tight"))
    plt.close(fig)
    return path
