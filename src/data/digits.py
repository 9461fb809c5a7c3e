"""The course's digits folders (`hw2_data/digits/{mnistm,svhn}`) as tensors and a Dataset."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from src.data.resumable import ResumableLoader
from src.errors import ConfigError, DataError, first_line
from src.images import fresh_dir, replace_dir, save_png

DOMAINS = ("mnistm", "svhn")
IMAGE_SIZE = 28
LAYOUT = "<root>/{mnistm,svhn}/{data/,train.csv,val.csv}"
HEADER = ["image_name", "label"]


def _read_rows(csv_path: Path) -> list[tuple[int, str, int]]:
    """The (line number, image name, label) rows of a course CSV, checked."""
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: no such file; expected the course layout {LAYOUT}")
    with open(csv_path, newline="") as f:
        lines = list(csv.reader(f))
    if not lines or [cell.strip() for cell in lines[0]] != HEADER:
        found = ",".join(lines[0]) if lines else "an empty file"
        raise DataError(f"{csv_path}: header is {found!r}; expected 'image_name,label'")
    rows = []
    for line_no, cells in enumerate(lines[1:], start=2):
        if not cells:
            continue
        if len(cells) != 2:
            raise DataError(f"{csv_path}, line {line_no}: {len(cells)} fields; expected image_name,label")
        name, label = cells[0].strip(), cells[1].strip()
        if not (label.isdigit() and 0 <= int(label) <= 9):
            raise DataError(f"{csv_path}, line {line_no}: label {label!r}; expected an integer 0-9")
        rows.append((line_no, name, int(label)))
    return rows


def read_digit_image(path: Path) -> np.ndarray:
    """One image as RGB 28x28, resized bilinearly as the grader does: uint8 [28, 28, 3]."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if image.size != (IMAGE_SIZE, IMAGE_SIZE):
                image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
            return np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: unreadable image ({first_line(e)}); expected a PNG") from e


def load_digit_split(domain_dir: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Read `<domain_dir>/<split>.csv` and its images: uint8 [N, 3, 28, 28], int64 labels [N]."""
    domain_dir = Path(domain_dir)
    if not domain_dir.is_dir():
        raise DataError(f"{domain_dir}: no such folder; expected the course layout {LAYOUT}")
    csv_path = domain_dir / f"{split}.csv"
    rows = _read_rows(csv_path)
    images = np.empty((len(rows), IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)  # [N, H, W, 3]
    for i, (line_no, name, _) in enumerate(rows):
        path = domain_dir / "data" / name
        if not path.is_file():
            raise DataError(f"{csv_path}, line {line_no}: image {path} does not exist")
        images[i] = read_digit_image(path)
    labels = torch.tensor([label for _, _, label in rows], dtype=torch.int64)  # [N]
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels  # [N, 3, 28, 28]


class DigitsDataset(Dataset):
    """One split of the digits of some domains, held in memory; items are (x, digit, domain)."""

    def __init__(self, root: Path, split: str, domains: Sequence[str] = DOMAINS) -> None:
        unknown = [d for d in domains if d not in DOMAINS]
        if unknown or not domains:
            raise ConfigError(f"domains={list(domains)}: expected a non-empty subset of {list(DOMAINS)}")
        images, digits, domain_ids = [], [], []
        for domain in domains:
            x, y = load_digit_split(Path(root) / domain, split)
            images.append(x)
            digits.append(y)
            domain_ids.append(torch.full_like(y, DOMAINS.index(domain)))
        self.domains = tuple(domains)
        self.images = torch.cat(images)  # [N, 3, 28, 28] uint8
        self.digits = torch.cat(digits)  # [N] int64
        self.domain_ids = torch.cat(domain_ids)  # [N] int64, index into DOMAINS

    def __len__(self) -> int:
        return len(self.digits)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x float32 [3, 28, 28] in [-1, 1], the digit and the domain id (int64 scalars)."""
        x = self.images[index].float() / 127.5 - 1.0
        return x, self.digits[index], self.domain_ids[index]


def digit_loaders(root: Path, *, domains: Sequence[str], batch_size: int, num_workers: int,
                  seed: int) -> tuple[ResumableLoader, DataLoader]:
    """Training batches (shuffled by a generator seeded with `seed`, resumable mid-epoch, last partial batch
    dropped) and val batches in file order, of (x [B, 3, 28, 28], digit [B], domain [B])."""
    train = DigitsDataset(root, "train", domains=domains)
    val = DigitsDataset(root, "val", domains=domains)
    kw = dict(batch_size=batch_size, num_workers=num_workers, persistent_workers=num_workers > 0)
    return (ResumableLoader(train, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(seed), **kw),
            DataLoader(val, shuffle=False, **kw))


def write_generated(images: torch.Tensor, domains: Sequence[str], folder: Path) -> Path:
    """uint8 images [D, 10, K, C, H, W] -> the course's output layout <folder>/<domain>/<digit>_<k:03d>.png,
    written beside it and swapped in whole."""
    folder = Path(folder)
    tmp = fresh_dir(folder.with_name(f".{folder.name}.tmp"))
    for d, domain in enumerate(domains):
        (tmp / domain).mkdir()
        for digit in range(images.shape[1]):
            for k in range(images.shape[2]):
                save_png(images[d, digit, k], tmp / domain / f"{digit}_{k:03d}.png")
    replace_dir(tmp, folder)
    return folder
