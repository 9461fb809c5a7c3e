"""The course-layout digits loader and DigitsDataset, on small folders written here."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from src.data.digits import DOMAINS, DigitsDataset, load_digit_split
from src.errors import ConfigError, DataError


def _write_domain(domain_dir: Path, labels: dict[str, list[int]], offset: int = 0) -> None:
    """A course domain folder: one solid-colour PNG per row, pixel value offset + 10 * row."""
    (domain_dir / "data").mkdir(parents=True)
    index = 0
    for split, split_labels in labels.items():
        lines = ["image_name,label"]
        for label in split_labels:
            name = f"{index:05d}.png"
            pixels = np.full((28, 28, 3), offset + 10 * index, dtype=np.uint8)
            Image.fromarray(pixels).save(domain_dir / "data" / name)
            lines.append(f"{name},{label}")
            index += 1
        (domain_dir / f"{split}.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    _write_domain(tmp_path / "mnistm", {"train": [3, 1, 4], "val": [1, 5]})
    _write_domain(tmp_path / "svhn", {"train": [9, 2], "val": [6]}, offset=100)
    return tmp_path


def test_load_split_shapes_values_labels(root: Path) -> None:
    x, y = load_digit_split(root / "mnistm", "train")
    assert x.shape == (3, 3, 28, 28) and x.dtype == torch.uint8
    assert y.dtype == torch.int64 and y.tolist() == [3, 1, 4]
    assert x[:, :, 5, 7].tolist() == [[0] * 3, [10] * 3, [20] * 3]
    x, y = load_digit_split(root / "mnistm", "val")
    assert x[:, 0, 0, 0].tolist() == [30, 40] and y.tolist() == [1, 5]


def test_missing_image_names_csv_line_and_file(root: Path) -> None:
    (root / "mnistm" / "data" / "00001.png").unlink()
    with pytest.raises(DataError) as error:
        load_digit_split(root / "mnistm", "train")
    message = str(error.value)
    assert "train.csv" in message and "line 3" in message and "00001.png" in message
    assert "\n" not in message


def test_missing_csv_and_folder_name_the_layout(root: Path) -> None:
    (root / "svhn" / "val.csv").unlink()
    with pytest.raises(DataError, match=r"val\.csv.*\{mnistm,svhn\}"):
        load_digit_split(root / "svhn", "val")
    with pytest.raises(DataError, match=r"nowhere.*\{mnistm,svhn\}"):
        load_digit_split(root / "nowhere", "train")


@pytest.mark.parametrize("label", ["10", "-1", "x", ""])
def test_bad_label(root: Path, label: str) -> None:
    (root / "mnistm" / "val.csv").write_text(f"image_name,label\n00003.png,1\n00004.png,{label}\n")
    with pytest.raises(DataError, match=r"val\.csv, line 3: label .*0-9"):
        load_digit_split(root / "mnistm", "val")


def test_bad_header(root: Path) -> None:
    (root / "mnistm" / "val.csv").write_text("file,class\n00003.png,1\n")
    with pytest.raises(DataError, match="header.*image_name,label"):
        load_digit_split(root / "mnistm", "val")


def test_unreadable_image(root: Path) -> None:
    (root / "mnistm" / "data" / "00004.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"00004\.png: unreadable image"):
        load_digit_split(root / "mnistm", "val")


def test_other_sizes_and_modes_become_rgb_28x28(root: Path) -> None:
    data = root / "mnistm" / "data"
    Image.new("L", (32, 32), 77).save(data / "00003.png")
    Image.new("RGBA", (56, 40), (10, 20, 30, 255)).save(data / "00004.png")
    x, _ = load_digit_split(root / "mnistm", "val")
    assert x.shape == (2, 3, 28, 28)
    assert x[0, :, 14, 14].tolist() == [77, 77, 77] and x[1, :, 14, 14].tolist() == [10, 20, 30]


def test_dataset_items(root: Path) -> None:
    dataset = DigitsDataset(root, "train")
    assert len(dataset) == 5 and DOMAINS == ("mnistm", "svhn")
    x, digit, domain = dataset[0]
    assert x.shape == (3, 28, 28) and x.dtype == torch.float32
    assert digit.dtype == torch.int64 and domain.dtype == torch.int64
    assert (x == -1).all()  # pixel 0
    items = [dataset[i] for i in range(len(dataset))]
    assert [int(d) for _, d, _ in items] == [3, 1, 4, 9, 2]
    assert [int(d) for _, _, d in items] == [0, 0, 0, 1, 1]
    xs = torch.stack([x for x, _, _ in items])
    assert xs.min() >= -1 and xs.max() <= 1
    assert torch.allclose(xs[4, 0, 0, 0], torch.tensor(110 / 127.5 - 1))


def test_dataset_domain_subset_keeps_domain_ids(root: Path) -> None:
    dataset = DigitsDataset(root, "val", domains=["svhn"])
    assert len(dataset) == 1 and int(dataset[0][2]) == 1
    with pytest.raises(ConfigError, match="usps"):
        DigitsDataset(root, "val", domains=["usps"])
