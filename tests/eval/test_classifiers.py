"""Tests for the digit classifiers: the course LeNet checkpoint, DigitNet training and its cache."""

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import src.eval.classifiers as classifiers
from src.errors import CheckpointError
from src.eval.classifiers import (
    DigitNet, LeNet, cached_val_accuracies, classify, load_course_classifier, load_or_train_classifiers,
    train_classifier,
)

COURSE_CKPT = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "course" / "Classifier.pth"


def _gratings(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 [n, 3, 28, 28]: class = grating orientation (5) x period (2) in random colours.

    Colour carries no label (DigitNet trains with random channel order and inversion), texture does.
    """
    rng = np.random.default_rng(seed)
    labels = torch.arange(n) % 10
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float64)
    images = []
    for label in labels.tolist():
        angle, period = math.pi * (label % 5) / 5, (4.0, 9.0)[label // 5]
        phase = 2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / period + rng.uniform(0, 2 * math.pi)
        bg, fg = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        fg = np.where(np.abs(fg - bg) < 60, 255 - bg, fg)  # keep the grating visible
        weight = (np.sin(phase)[..., None] + 1) / 2  # [28, 28, 1]
        images.append((bg * (1 - weight) + fg * weight).round().astype(np.uint8))
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), labels


@pytest.mark.skipif(not COURSE_CKPT.is_file(), reason=f"course checkpoint not present at {COURSE_CKPT}")
def test_course_checkpoint_loads_strictly() -> None:
    model = load_course_classifier(COURSE_CKPT)
    assert isinstance(model, LeNet) and not model.training
    raw = torch.load(COURSE_CKPT, map_location="cpu", weights_only=True)["state_dict"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in raw.items())
    x = torch.zeros(2, 3, 28, 28)
    assert model(x).shape == (2, 10) and model.features(x).shape == (2, 64)


def test_course_loader_accepts_bare_state_dict(tmp_path: Path) -> None:
    torch.save(LeNet().state_dict(), tmp_path / "bare.pth")
    assert isinstance(load_course_classifier(tmp_path / "bare.pth"), LeNet)


def test_course_loader_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="missing.pth: no such file; expected the course's MNIST-M classifier"):
        load_course_classifier(tmp_path / "missing.pth")
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    with pytest.raises(CheckpointError, match="tensor.pth.*Tensor"):
        load_course_classifier(tmp_path / "tensor.pth")
    state = LeNet().state_dict()
    state.pop("fc3.bias")
    state["head.weight"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match=r"partial.pth: missing keys fc3.bias; unexpected keys head.weight; expected the course's LeNet"):
        load_course_classifier(tmp_path / "partial.pth")
    state = LeNet().state_dict()
    state["fc3.bias"] = 3  # loads under weights_only, but is no tensor
    torch.save(state, tmp_path / "int.pth")
    with pytest.raises(CheckpointError, match=r"int.pth: not tensors fc3.bias \(int\); expected the course's LeNet") as err:
        load_course_classifier(tmp_path / "int.pth")
    assert "\n" not in str(err.value)


def test_digitnet_shapes_and_size() -> None:
    model = DigitNet().eval()
    x = torch.zeros(4, 3, 28, 28)
    assert model(x).shape == (4, 10) and model.features(x).shape == (4, DigitNet.feature_dim)
    assert 100_000 <= sum(p.numel() for p in model.parameters()) <= 300_000


@pytest.fixture
def one_thread():
    """Tiny batches gain nothing from a second thread, and its spin-waits are slow on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_train_classifier_learns_and_is_deterministic(one_thread) -> None:
    train, val = _gratings(200, seed=0), _gratings(100, seed=1)
    rng_before = torch.random.get_rng_state()
    model, acc = train_classifier(train, val, epochs=5, batch_size=20, lr=3e-3, seed=0)
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # global RNG untouched
    assert acc >= 0.95 and not model.training
    assert acc == (classify(model, val[0]) == val[1]).float().mean().item()
    again, acc_again = train_classifier(train, val, epochs=5, batch_size=20, lr=3e-3, seed=0)
    assert acc_again == acc
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def _course_layout(root: Path, domain: str, n_train: int, n_val: int) -> None:
    """`<root>/<domain>/{data/*.png, train.csv, val.csv}` with columns image_name,label."""
    (root / domain / "data").mkdir(parents=True)
    for split, n, seed in (("train", n_train, 0), ("val", n_val, 1)):
        images, labels = _gratings(n, seed)
        rows = ["image_name,label"]
        for i, (img, label) in enumerate(zip(images, labels)):
            name = f"{split}_{i:05d}.png"
            Image.fromarray(img.permute(1, 2, 0).numpy()).save(root / domain / "data" / name)
            rows.append(f"{name},{int(label)}")
        (root / domain / f"{split}.csv").write_text("\n".join(rows) + "\n")


def test_load_or_train_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              caplog: pytest.LogCaptureFixture, one_thread) -> None:
    pytest.importorskip("src.data.digits", reason="src/data/digits.py (load_digit_split) not written yet")
    data_root, cache = tmp_path / "digits", tmp_path / "cache"
    for domain in ("mnistm", "svhn"):
        _course_layout(data_root, domain, n_train=40, n_val=20)
    calls = []
    real_train = classifiers.train_classifier

    def counting_train(*args, **kwargs):
        calls.append(kwargs["seed"])
        return real_train(*args, **kwargs)

    monkeypatch.setattr(classifiers, "train_classifier", counting_train)
    kw = dict(domains=("mnistm", "svhn"), epochs=1, batch_size=20, lr=3e-3, seed=0)
    with caplog.at_level(logging.WARNING, logger="src.eval.classifiers"):
        first = load_or_train_classifiers(data_root, cache, **kw, min_val_acc=1.01)
    assert len(calls) == 2 and set(first) == {"mnistm", "svhn"}
    assert "svhn classifier: val acc" in caplog.text and "below 1.01" in caplog.text
    files = sorted(p.name for p in (cache / "classifiers").glob("*/*"))
    assert files == ["mnistm.json", "mnistm.pt", "svhn.json", "svhn.pt"]

    second = load_or_train_classifiers(data_root, cache, **kw, min_val_acc=0.0)
    assert len(calls) == 2  # reused, not retrained
    assert all(torch.equal(a, b) for a, b in zip(first["svhn"].state_dict().values(),
                                                 second["svhn"].state_dict().values()))
    accs = cached_val_accuracies(data_root, cache, **kw)
    report = json.loads(next((cache / "classifiers").glob("*/mnistm.json")).read_text())
    assert accs["mnistm/classifier_val_acc"] == report["val_acc"] and report["n_train"] == 40

    load_or_train_classifiers(data_root, cache, **{**kw, "domains": ("svhn",), "seed": 1}, min_val_acc=0.0)
    assert len(calls) == 3  # other settings, other cache key
