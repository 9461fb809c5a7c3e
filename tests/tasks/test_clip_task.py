import csv
import json

import pytest

from src.config import compose_config, validate
from src.errors import CheckpointError, ConfigError
from src.models.clip import load_clip
from src.run import run

NAMES = {"0": "apple", "1": "bee", "2": "cat", "3": "dog"}
FILES = [f"{c}_{n}.png" for c in range(4) for n in range(3)]


@pytest.fixture(scope="module")
def course_root(tmp_path_factory, write_clip_course):
    return write_clip_course(tmp_path_factory.mktemp("hw2") / "clip_zeroshot", NAMES, FILES)


def clip_cfg(tmp_path, cache_dir, *extra):
    return compose_config(["task=clip", "logger=none", "task.num_workers=0", "task.batch_size=5",
                           f"paths.cache_dir={cache_dir}", f"paths.output_dir={tmp_path}", *extra])


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_course_layout_run_writes_predictions_figures_and_metrics(tmp_path, cache_dir, tiny_clip, course_root):
    cfg = clip_cfg(tmp_path, cache_dir, f"model.weights={tiny_clip}", f"data.root={course_root}", "task.num_cases=3")
    metrics = run(cfg)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == pytest.approx(metrics)
    rows = read_rows(tmp_path / "predictions.csv")
    assert list(rows[0]) == ["file", "true", "pred", "top5", "correct"]
    assert sorted(r["file"] for r in rows) == sorted(f"val/{f}" for f in FILES)
    for r in rows:
        assert r["true"] == NAMES[r["file"][4]]
        top = r["top5"].split("|")
        assert len(top) == 4 and set(top) == set(NAMES.values()) and top[0] == r["pred"]
        assert r["correct"] == str(int(r["pred"] == r["true"]))
    hits = [r["correct"] == "1" for r in rows]
    assert metrics["top1"] == pytest.approx(sum(hits) / 12) and metrics["top5"] == 1.0 and metrics["n"] == 12
    for name in NAMES.values():
        mine = [h for h, r in zip(hits, rows) if r["true"] == name]
        assert metrics[f"acc/{name}"] == pytest.approx(sum(mine) / 3)
    assert (tmp_path / "figures" / "confusion.png").stat().st_size > 1000
    for kind, any_case in (("correct", any(hits)), ("incorrect", not all(hits))):
        assert (tmp_path / "figures" / f"{kind}.png").is_file() == any_case


def test_embedded_digits_with_the_prompt_ensemble(tmp_path, cache_dir, tiny_clip, tiny_overrides):
    embedded = [o for o in tiny_overrides if o.startswith("data.embedded.")]
    cfg = clip_cfg(tmp_path, cache_dir, f"model.weights={tiny_clip}", "prompt=ensemble", *embedded)
    assert cfg.data.root is None and len(cfg.prompt.templates) >= 10
    metrics = run(cfg)
    rows = read_rows(tmp_path / "predictions.csv")
    assert metrics["n"] == len(rows) == 2 * cfg.data.embedded.n_val
    assert {r["true"] for r in rows} == {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                                         "nine"}
    assert 0.0 <= metrics["top1"] <= metrics["top5"] <= 1.0


def test_task_picks_its_groups_and_user_overrides_win():
    cfg = compose_config(["task=clip", "paths.output_dir=/tmp/x"])
    assert (cfg.task.main_metric, cfg.prompt.name) == ("top1", "single")
    assert cfg.model.weights is None and cfg.model.embedded.steps == 1500  # difflab's own tiny CLIP
    assert compose_config(["task=clip", "+experiment=course", "paths.output_dir=/tmp/x"]).model.weights == \
        "openai/clip-vit-base-patch32"
    assert list(cfg.prompt.templates) == ["A photo of {}."]
    cfg = compose_config(["task=clip", "prompt=ensemble", "task.batch_size=8", "paths.output_dir=/tmp/x"])
    assert cfg.prompt.name == "ensemble" and cfg.task.batch_size == 8


def test_a_template_without_a_slot_is_a_config_error():
    cfg = compose_config(["task=clip", "prompt.templates=[a photo]", "paths.output_dir=/tmp/x"])
    with pytest.raises(ConfigError, match=r"prompt.templates\[0\]='a photo': expected a string with one \{\}"):
        validate(cfg)


def test_missing_model_is_one_line_saying_what_to_pass(tmp_path, cache_dir, course_root):
    cfg = clip_cfg(tmp_path, cache_dir, "model.weights=difflab-tests/no-such-clip", f"data.root={course_root}")
    expected = r"HF_HUB_OFFLINE=1 forbids downloading it; pass model.weights=<a CLIP folder saved with save_pretrained>"
    with pytest.raises(CheckpointError, match=expected) as err:
        run(cfg)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="model.weights=None: expected a CLIP folder saved with save_pretrained"):
        load_clip(None)  # no cache to build difflab's own CLIP in


def test_model_weights_and_scorer_weights_go_through_the_one_loader(tmp_path, cache_dir, course_root):
    """A folder without config.json: the same one-line error from model=clip and from the TI grader's scorer."""
    from src.eval.ti_grader import load_scorer

    with pytest.raises(CheckpointError) as by_model:
        run(clip_cfg(tmp_path, cache_dir, f"model.weights={tmp_path}", f"data.root={course_root}"))
    with pytest.raises(CheckpointError) as by_scorer:
        load_scorer(str(tmp_path), cache_dir=cache_dir)
    assert str(by_model.value).startswith(f"model.weights={str(tmp_path)!r}: no config.json there")
    assert str(by_scorer.value) == str(by_model.value).replace("model.weights=", "scorer.weights=", 1)


def test_bad_task_value_names_the_key(tmp_path, cache_dir):
    with pytest.raises(ConfigError, match=r"task.num_cases=-1: expected an integer >= 0"):
        run(clip_cfg(tmp_path, cache_dir, "task.num_cases=-1"))
    with pytest.raises(ConfigError, match=r"data.layout='flat': expected one of auto, course, folders"):
        run(clip_cfg(tmp_path, cache_dir, "data.layout=flat"))


def test_figures_go_to_wandb(tmp_path, cache_dir, tiny_clip, course_root, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = clip_cfg(tmp_path, cache_dir, f"model.weights={tiny_clip}", f"data.root={course_root}", "logger=wandb")
    run(cfg)
    (wandb_run,) = (tmp_path / "wandb").glob("offline-run-*")
    images = wandb_run / "files" / "media" / "images"
    logged = sorted(p.relative_to(images).as_posix().rsplit("_", 2)[0] for p in images.rglob("*.png"))
    assert "confusion" in logged and set(logged) <= {"confusion", "cases/correct", "cases/incorrect"}
    assert any(key.startswith("cases/") for key in logged)  # 12 images: correct or incorrect ones exist
    assert list(wandb_run.glob("*.wandb"))
