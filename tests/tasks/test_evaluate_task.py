from pathlib import Path

import pytest

from src.config import compose_config
from src.data.digits import load_digit_split
from src.data.embedded_digits import resolve_data_root
from src.errors import DataError
from src.images import save_png
from src.run import run

COURSE_CLASSIFIER = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "course" / "Classifier.pth"


def evaluate_cfg(tmp_path, cache_dir, tiny_overrides, folder, *extra):
    keep = [o for o in tiny_overrides if o.startswith(("data.embedded.", "judge."))]
    return compose_config(["task=evaluate", f"task.folder={folder}", *keep, f"paths.cache_dir={cache_dir}",
                           f"paths.output_dir={tmp_path / 'out'}", *extra])


def write_real_as_generated(data_root: Path, folder: Path, per_digit: int = 2) -> None:
    """Real val images in the course output layout: the judges should score them well."""
    for domain in ("mnistm", "svhn"):
        images, labels = load_digit_split(data_root / domain, "val")
        (folder / domain).mkdir(parents=True)
        for d in range(10):
            for i, k in enumerate((labels == d).nonzero().flatten()[:per_digit].tolist()):
                save_png(images[k], folder / domain / f"{d}_{i:03d}.png")


def test_evaluate_scores_a_folder_with_the_course_mnistm_classifier(tmp_path, cache_dir, tiny_overrides):
    if not COURSE_CLASSIFIER.is_file():
        pytest.skip(f"course fixture not present: {COURSE_CLASSIFIER}")
    folder = tmp_path / "generated"
    cfg = evaluate_cfg(tmp_path, cache_dir, tiny_overrides, folder, f"judge.mnistm_weights={COURSE_CLASSIFIER}")
    write_real_as_generated(resolve_data_root(cfg.data.root, cache_dir, **cfg.data.embedded), folder)
    metrics = run(cfg)
    assert metrics["mnistm/n"] == 20 and metrics["svhn/n"] == 20
    assert metrics["mean_acc"] == pytest.approx((metrics["mnistm/acc"] + metrics["svhn/acc"]) / 2)
    # The course LeNet reads the embedded MNIST-M (data v2: real MNIST digits) as MNIST-M: 97.7% of its val set.
    assert metrics["mnistm/acc"] >= 0.8
    assert "mnistm/classifier_val_acc" not in metrics and (tmp_path / "out" / "metrics.json").is_file()


def test_evaluate_missing_folder_names_it(tmp_path, cache_dir, tiny_overrides):
    cfg = evaluate_cfg(tmp_path, cache_dir, tiny_overrides, tmp_path / "nowhere")
    with pytest.raises(DataError, match="task.folder=.*nowhere.*no such folder"):
        run(cfg)


@pytest.mark.parametrize("task", [["task=digits"], ["task=evaluate", "task.folder=/tmp"]])
def test_both_digit_tasks_select_the_judge_group(task):
    from hydra.utils import instantiate

    from src.config import validate

    cfg = compose_config([*task, "judge=digit_classifiers", "judge.epochs=3", "judge.mnistm_weights=/c/Classifier.pth",
                          "paths.output_dir=/tmp/x"])
    validate(cfg)
    assert (cfg.judge.epochs, cfg.judge.mnistm_weights) == (3, "/c/Classifier.pth") and "classifier" not in cfg.task
    assert instantiate(cfg.judge).func.__name__ == "load_judges"  # data root, cache, domains, seed at run time


def test_bad_judge_value_names_the_key():
    from src.config import validate
    from src.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^judge.min_val_acc=1.5: expected a value in \[0, 1\]$"):
        validate(compose_config(["task=digits", "judge.min_val_acc=1.5", "paths.output_dir=/tmp/x"]))


def test_evaluate_without_a_folder_is_a_one_line_error():
    from src.config import validate
    from src.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^task.folder: no value; expected task.folder=<value>"):
        validate(compose_config(["task=evaluate", "paths.output_dir=/tmp/x"]))
