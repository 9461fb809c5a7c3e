from pathlib import Path

import pytest

from src.config import compose_config
from src.data.digits import load_digit_split
from src.errors import DataError
from src.images import save_png
from src.run import run

COURSE_CLASSIFIER = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "course" / "Classifier.pth"


def evaluate_cfg(tmp_path, cache_dir, tiny_overrides, folder, *extra):
    keep = [o for o in tiny_overrides if o.startswith(("data.", "task.classifier."))]
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
    from src.tasks.digit_judging import resolve_data_root

    folder = tmp_path / "generated"
    cfg = evaluate_cfg(tmp_path, cache_dir, tiny_overrides, folder, f"task.classifier.course_mnistm={COURSE_CLASSIFIER}")
    write_real_as_generated(resolve_data_root(cfg), folder)
    metrics = run(cfg)
    assert metrics["mnistm/n"] == 20 and metrics["svhn/n"] == 20
    assert metrics["mean_acc"] == pytest.approx((metrics["mnistm/acc"] + metrics["svhn/acc"]) / 2)
    # The course LeNet scores the embedded MNIST-M-style digits far above chance (86% on the full val set).
    assert metrics["mnistm/acc"] >= 0.5
    assert "mnistm/classifier_val_acc" not in metrics and (tmp_path / "out" / "metrics.json").is_file()


def test_evaluate_missing_folder_names_it(tmp_path, cache_dir, tiny_overrides):
    cfg = evaluate_cfg(tmp_path, cache_dir, tiny_overrides, tmp_path / "nowhere")
    with pytest.raises(DataError, match="task.folder=.*nowhere.*no such folder"):
        run(cfg)
