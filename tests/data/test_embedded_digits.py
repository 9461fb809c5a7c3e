"""The embedded digits: deterministic, in the course layout, balanced, written atomically."""

import csv
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from src.data import embedded_digits
from src.data.digits import load_digit_split
from src.data.embedded_digits import ensure_embedded_digits, generate_digits
from src.errors import ConfigError, DataError

N_TRAIN, N_VAL = 40, 20


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small generation shared by the read-only tests."""
    return generate_digits(tmp_path_factory.mktemp("gen") / "digits", seed=0, n_train=N_TRAIN, n_val=N_VAL)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _rows(csv_path: Path) -> list[list[str]]:
    with open(csv_path, newline="") as f:
        return list(csv.reader(f))


def test_same_seed_is_byte_identical_and_another_seed_differs(root: Path, tmp_path: Path) -> None:
    again = generate_digits(tmp_path / "again", seed=0, n_train=N_TRAIN, n_val=N_VAL)
    other = generate_digits(tmp_path / "other", seed=1, n_train=N_TRAIN, n_val=N_VAL)
    assert _files(again) == _files(root)
    assert _files(other).keys() == _files(root).keys()
    assert _files(other) != _files(root)


@pytest.mark.parametrize("domain", ["mnistm", "svhn"])
def test_layout_header_counts_and_balance(root: Path, domain: str) -> None:
    assert sorted(p.name for p in (root / domain).iterdir()) == ["data", "train.csv", "val.csv"]
    names = []
    for split, n in (("train", N_TRAIN), ("val", N_VAL)):
        header, *rows = _rows(root / domain / f"{split}.csv")
        assert header == ["image_name", "label"]
        assert len(rows) == n
        labels = [int(label) for _, label in rows]
        assert Counter(labels) == {k: n // 10 for k in range(10)}
        assert labels != sorted(labels) and labels != [i % 10 for i in range(n)]  # shuffled
        names += [name for name, _ in rows]
    assert len(set(names)) == N_TRAIN + N_VAL  # train and val never share a file
    assert sorted(names) == sorted(p.name for p in (root / domain / "data").iterdir())
    with Image.open(root / domain / "data" / names[0]) as image:
        assert (image.format, image.mode, image.size) == ("PNG", "RGB", (28, 28))


def test_loader_reads_generated_folder(root: Path) -> None:
    x, y = load_digit_split(root / "svhn", "val")
    assert x.shape == (N_VAL, 3, 28, 28) and y.shape == (N_VAL,)
    assert x.float().std() > 10  # not blank


def test_train_and_val_draw_on_disjoint_real_mnist_digits() -> None:
    train, val = embedded_digits.digit_pool("train"), embedded_digits.digit_pool("val")
    assert [len(p) for p in val] == [100] * 10 and [len(p) for p in train] == [400] * 10
    assert all(p.shape[1:] == (28, 28) and p.dtype == np.float32 for p in train + val)
    for k in range(10):  # no val digit is also a train digit
        flat_train = {d.tobytes() for d in train[k]}
        assert not any(d.tobytes() in flat_train for d in val[k])
    # MNIST's layout: white strokes on black, the ink's centre of mass near the middle of 28x28
    mean = np.mean(np.concatenate(val), axis=0)
    rows, cols = np.indices(mean.shape)
    assert abs((rows * mean).sum() / mean.sum() - 13.5) < 1.5 and abs((cols * mean).sum() / mean.sum() - 13.5) < 1.5
    assert mean[:2].max() < 0.05 and mean[-2:].max() < 0.05 and mean.max() > 0.3


def test_the_course_classifier_reads_the_embedded_mnistm_val_set(tmp_path: Path) -> None:
    """Data v2 is MNIST-M-like as the course's own classifier sees it: >= 95% of the default val set."""
    from src.data.digits import load_digit_split
    from src.eval.classifiers import classify, load_course_classifier
    root = generate_digits(tmp_path / "digits", seed=0, n_train=10, n_val=1000)
    x, y = load_digit_split(root / "mnistm", "val")
    lenet = load_course_classifier(Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "course" / "Classifier.pth")
    assert (classify(lenet, x) == y).float().mean().item() >= 0.95


def test_failure_midway_leaves_no_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    render, calls = embedded_digits.render_digit, []

    def failing_render(*args: object) -> np.ndarray:
        calls.append(1)
        if len(calls) > N_TRAIN + 5:  # well into the first domain's val split
            raise RuntimeError("interrupted")
        return render(*args)

    monkeypatch.setattr(embedded_digits, "render_digit", failing_render)
    with pytest.raises(RuntimeError, match="interrupted"):
        generate_digits(tmp_path / "digits", n_train=N_TRAIN, n_val=N_VAL)
    assert list(tmp_path.iterdir()) == []  # neither root nor the partial sibling


def test_existing_root_and_bad_counts_are_refused(root: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="already exists"):
        generate_digits(root, n_train=N_TRAIN, n_val=N_VAL)
    with pytest.raises(ConfigError, match="n_val=0"):
        generate_digits(tmp_path / "digits", n_train=N_TRAIN, n_val=0)


def test_ensure_generates_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="src.cache"):  # the one cache helper says what it built
        path = ensure_embedded_digits(tmp_path, seed=3, n_train=N_TRAIN, n_val=N_VAL)
    assert path == tmp_path / f"digits-v2-seed3-train{N_TRAIN}-val{N_VAL}"
    assert (path / "mnistm" / "val.csv").is_file()
    built = [r.getMessage() for r in caplog.records if r.name == "src.cache"]
    assert len(built) == 1 and "built embedded digits" in built[0]

    def fail(*args: object, **kwargs: object) -> Path:
        raise AssertionError("regenerated an existing folder")

    monkeypatch.setattr(embedded_digits, "generate_digits", fail)
    assert ensure_embedded_digits(tmp_path, seed=3, n_train=N_TRAIN, n_val=N_VAL) == path
