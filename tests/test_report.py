import csv
import json

import yaml

from src.report import main, read_sweep, swept_params


def make_sweep(root, results):
    """A Hydra-like sweep dir: one job per (eta, mse or None for a failed job)."""
    for n, (eta, mse) in enumerate(results):
        hydra = root / str(n) / ".hydra"
        hydra.mkdir(parents=True)
        (hydra / "overrides.yaml").write_text(yaml.safe_dump(["task=faces", f"sampler.eta={eta}"]))
        (hydra / "config.yaml").write_text(yaml.safe_dump({"task": {"name": "faces", "main_metric": "mse"}}))
        if mse is not None:
            (root / str(n) / "metrics.json").write_text(json.dumps({"mse": mse, "sampler/eta": eta}))
    return root


def test_report_tables_and_plot_mark_failed_jobs(tmp_path):
    sweep = make_sweep(tmp_path / "sweep", [(0.0, 0.0), (0.5, 1800.0), (1.0, None)])
    assert swept_params(read_sweep(sweep)) == ["sampler.eta"]
    assert main([str(sweep)]) == 0
    rows = list(csv.DictReader((sweep / "report.csv").open()))
    assert [(r["job"], r["status"], r["sampler.eta"], r["mse"]) for r in rows] == [
        ("0", "ok", "0.0", "0.0"), ("1", "ok", "0.5", "1800.0"), ("2", "failed", "1.0", "")]
    md = (sweep / "report.md").read_text()
    assert "2 of 3 jobs finished." in md and "| 2 | **failed** | 1.0 |  |" in md and "| 1 | ok | 0.5 | 1800 |" in md
    assert (sweep / "report_sampler.eta.png").stat().st_size > 1000


def test_report_on_a_missing_folder_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "nope: no such folder" in err and "\n" not in err
