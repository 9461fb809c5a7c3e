"""Tests for grader-style scoring of generated digit folders."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from src.errors import DataError
from src.eval.classifiers import LeNet
from src.eval.digit_scores import classify, digit_fid, read_generated, score_digit_folder


def _code_image(code: int, size: int = 28) -> np.ndarray:
    """An RGB image whose top-left red pixel encodes `code` (a digit) as 20 * code + 10."""
    img = np.full((size, size, 3), 128, dtype=np.uint8)
    img[0, 0, 0] = 20 * code + 10
    return img


class PixelCodeNet(nn.Module):
    """Predicts the digit written into the top-left red pixel; features = mean colour, so FID is known."""

    def forward(self, x: Tensor) -> Tensor:
        value = ((x[:, 0, 0, 0] + 1) / 2 * 255).round()  # [B] back to 0..255
        return F.one_hot(((value - 10) / 20).round().long().clamp(0, 9), 10).float()  # [B, 10]

    def features(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3))  # [B, 3]


def _write_folder(root: Path, domain: str, labels: list[int], codes: list[int]) -> None:
    (root / domain).mkdir(parents=True, exist_ok=True)
    for i, (label, code) in enumerate(zip(labels, codes)):
        Image.fromarray(_code_image(code)).save(root / domain / f"{label}_{i:03d}.png")


def test_read_generated_labels_and_pixels(tmp_path: Path) -> None:
    labels = [3, 0, 9, 5, 5]
    _write_folder(tmp_path, "mnistm", labels, labels)
    images, read_labels = read_generated(tmp_path, "mnistm")
    assert images.dtype == torch.uint8 and images.shape == (5, 3, 28, 28)
    # sorted by name: 0_001, 3_000, 5_003, 5_004, 9_002
    assert read_labels.tolist() == [0, 3, 5, 5, 9]
    assert images[:, 0, 0, 0].tolist() == [10, 70, 110, 110, 190]


def test_read_generated_resizes_and_converts(tmp_path: Path) -> None:
    (tmp_path / "svhn").mkdir()
    Image.fromarray(np.full((32, 32), 200, dtype=np.uint8), mode="L").save(tmp_path / "svhn" / "4_000.png")
    images, labels = read_generated(tmp_path, "svhn")
    assert images.shape == (1, 3, 28, 28) and labels.tolist() == [4]
    assert int(images.min()) == 200 and int(images.max()) == 200


def test_read_generated_bad_name_and_missing_folder(tmp_path: Path) -> None:
    _write_folder(tmp_path, "mnistm", [1], [1])
    Image.fromarray(_code_image(1)).save(tmp_path / "mnistm" / "x_001.png")
    with pytest.raises(DataError, match="x_001.png"):
        read_generated(tmp_path, "mnistm")
    with pytest.raises(DataError, match="svhn"):
        read_generated(tmp_path, "svhn")


def test_classify_matches_encoded_digits() -> None:
    images = torch.from_numpy(np.stack([_code_image(d) for d in range(10)])).permute(0, 3, 1, 2)
    preds = classify(PixelCodeNet(), images, batch_size=3)
    assert preds.dtype == torch.int64 and preds.tolist() == list(range(10))


def test_score_digit_folder_exact_accuracy(tmp_path: Path) -> None:
    labels = list(range(10))
    wrong = [(d + 1) % 10 for d in labels]
    _write_folder(tmp_path, "mnistm", labels, labels[:7] + wrong[7:])  # digits 7, 8, 9 misread
    _write_folder(tmp_path, "svhn", labels, labels)
    net = PixelCodeNet()
    metrics = score_digit_folder(tmp_path, {"mnistm": net, "svhn": net})
    assert metrics["mnistm/acc"] == pytest.approx(0.7)
    assert metrics["svhn/acc"] == pytest.approx(1.0)
    assert metrics["mean_acc"] == pytest.approx(0.85)
    assert metrics["mnistm/n"] == 10 and metrics["svhn/n"] == 10
    assert metrics["mnistm/acc_digit6"] == 1.0 and metrics["mnistm/acc_digit7"] == 0.0
    assert "mnistm/fid" not in metrics


def test_score_digit_folder_with_fid(tmp_path: Path) -> None:
    _write_folder(tmp_path, "mnistm", list(range(10)), list(range(10)))
    real, _ = read_generated(tmp_path, "mnistm")
    metrics = score_digit_folder(tmp_path, {"mnistm": PixelCodeNet()}, real_val={"mnistm": real})
    assert metrics["mnistm/fid"] == pytest.approx(0.0, abs=1e-6)
    assert set(metrics) >= {"mnistm/acc", "mean_acc", "mnistm/fid"} and "svhn/acc" not in metrics


def test_digit_fid_identical_zero_and_different_positive() -> None:
    g = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (60, 3, 28, 28), dtype=torch.uint8, generator=g)
    darker = (real // 2).to(torch.uint8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        lenet = LeNet()
    for model in (PixelCodeNet(), lenet):
        assert digit_fid(model, real, real) == pytest.approx(0.0, abs=1e-3)
        assert digit_fid(model, real, darker) > 1e-2
