"""Labelled image sets for CLIP zero-shot classification, and CLIP's image preprocessing for DataLoader
workers: decode + resize + crop per image (uint8), rescale + normalise per batch in the collate.

Three layouts: the course's `<root>/id2label.json` + `<root>/val/{classid}_{n}.png`, any folder with one
subfolder of images per class (class name = subfolder name, as torchvision's ImageFolder), and the
embedded digits' val images (class names "zero" ... "nine").
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from src.errors import CheckpointError, ConfigError, DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
COURSE_LAYOUT = "<root>/id2label.json and <root>/val/{classid}_{n}.png"
LAYOUTS = ("auto", "course", "folders")  # data.layout; the schema (src/config/clip.py) lists the same
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass(frozen=True)
class ImageSet:
    """Image files and their labels (indices into class_names); `root` is what file names are shown
    relative to."""

    root: Path
    files: tuple[Path, ...]
    labels: tuple[int, ...]
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.files)

    def relative(self, index: int) -> str:
        """The file of item `index` relative to root (as written in predictions.csv)."""
        return self.files[index].relative_to(self.root).as_posix()


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _read_id2label(path: Path) -> dict[int, str]:
    """id2label.json -> {class id: name}; ids must be integers written as strings."""
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected the course layout {COURSE_LAYOUT}")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err}); expected {{\"<class id>\": \"<name>\", ...}}") from err
    if not isinstance(raw, dict) or not raw:
        raise DataError(f"{path}: expected a non-empty JSON object {{\"<class id>\": \"<name>\", ...}}")
    bad = [k for k, v in raw.items() if not (str(k).strip().isdigit() and isinstance(v, str) and v.strip())]
    if bad:
        raise DataError(f"{path}: entry {bad[0]!r}: {raw[bad[0]]!r}; expected an integer id mapped to a class name")
    return {int(k): v.strip() for k, v in raw.items()}


def read_course_set(root: Path) -> ImageSet:
    """The course's clip_zeroshot folder: label = the class id before `_` in each val file name."""
    root = Path(root)
    id2label = _read_id2label(root / "id2label.json")
    ids = sorted(id2label)
    position = {cid: k for k, cid in enumerate(ids)}
    val = root / "val"
    if not val.is_dir():
        raise DataError(f"{val}: no such folder; expected the course layout {COURSE_LAYOUT}")
    files, labels = [], []
    for path in sorted(p for p in val.iterdir() if _is_image(p)):
        prefix, sep, _ = path.stem.partition("_")
        if not (sep and prefix.isdigit()):
            raise DataError(f"{path}: file name is not {{classid}}_{{n}}.png")
        if int(prefix) not in position:
            raise DataError(f"{path}: class id {int(prefix)} is not in {root / 'id2label.json'} "
                            f"(ids {ids[0]}..{ids[-1]})")
        files.append(path)
        labels.append(position[int(prefix)])
    if not files:
        raise DataError(f"{val}: no images; expected {{classid}}_{{n}}.png files")
    return ImageSet(root, tuple(files), tuple(labels), tuple(id2label[c] for c in ids))


def read_folder_set(root: Path) -> ImageSet:
    """One subfolder of images per class (searched recursively), classes in sorted order."""
    root = Path(root)
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root}: no class folders; expected {COURSE_LAYOUT} or <root>/<class name>/<images>")
    files, labels = [], []
    for k, folder in enumerate(classes):
        images = sorted(p for p in folder.rglob("*") if _is_image(p))
        if not images:
            raise DataError(f"{folder}: no images (extensions {', '.join(IMAGE_EXTENSIONS)}); "
                            "expected at least one per class folder")
        files += images
        labels += [k] * len(images)
    return ImageSet(root, tuple(files), tuple(labels), tuple(p.name for p in classes))


def read_image_set(root: Path, layout: str = "auto") -> ImageSet:
    """`layout` auto: the course layout if <root>/id2label.json exists, else one folder per class."""
    if layout not in LAYOUTS:
        raise ConfigError(f"data.layout={layout!r}: expected one of {', '.join(LAYOUTS)}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"data.root={str(root)!r}: no such folder; expected {COURSE_LAYOUT} "
                        "or one subfolder of images per class")
    if layout == "course" or (layout == "auto" and (root / "id2label.json").is_file()):
        return read_course_set(root)
    if layout == "auto" and (root / "clip_zeroshot" / "id2label.json").is_file():
        raise DataError(f"data.root={str(root)!r}: has clip_zeroshot/ inside; expected "
                        f"data.root={root / 'clip_zeroshot'}")
    return read_folder_set(root)


def read_embedded_digits(cache_dir: Path, *, seed: int, n_train: int, n_val: int,
                         domains: Sequence[str]) -> ImageSet:
    """The embedded digits' val images of `domains` (generated once into cache_dir), labelled zero..nine."""
    from src.data.digits import DOMAINS, _read_rows
    from src.data.embedded_digits import ensure_embedded_digits

    if not domains or any(d not in DOMAINS for d in domains):
        raise ConfigError(f"data.embedded.domains={list(domains)}: expected a non-empty subset of {list(DOMAINS)}")
    root = ensure_embedded_digits(Path(cache_dir), seed=seed, n_train=n_train, n_val=n_val)
    files, labels = [], []
    for domain in domains:
        for _, name, label in _read_rows(root / domain / "val.csv"):
            files.append(root / domain / "data" / name)
            labels.append(label)
    return ImageSet(root, tuple(files), tuple(labels), DIGIT_NAMES)


def load_image_set(root: str | None, layout: str, *, cache_dir: str | Path, embedded: dict) -> ImageSet:
    """data.root in the course layout or one folder per class; None: the embedded digits' val images
    (`embedded`: seed, n_train, n_val, domains), generated once into cache_dir."""
    if root is None:
        return read_embedded_digits(Path(cache_dir), seed=embedded["seed"], n_train=embedded["n_train"],
                                    n_val=embedded["n_val"], domains=list(embedded["domains"]))
    return read_image_set(Path(root), layout)


def open_rgb(path: Path) -> Image.Image:
    """An image file as RGB, transparency composited onto white (as CLIPImageProcessor does)."""
    try:
        with Image.open(path) as image:
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: unreadable image ({err})") from err
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        image = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image).convert("RGB")
    return image.convert("RGB")


class ClipPixels:
    """CLIPImageProcessor's steps (PIL backend: resize, center crop, rescale, normalise) for a DataLoader:
    `crop_uint8` per image in the dataset, `collate` per batch in the same worker. Gives the processor's
    pixel_values bit for bit (tests/data/test_clip_data.py) at about half its cost."""

    def __init__(self, image_processor) -> None:
        p = image_processor
        self.resize_to = {k: v for k, v in dict(p.size).items() if v is not None} if p.do_resize else None
        if self.resize_to is not None and set(self.resize_to) not in ({"shortest_edge"}, {"height", "width"}):
            raise CheckpointError(f"image processor size={self.resize_to}: expected shortest_edge, or height "
                                  "and width (CLIP's preprocessing)")
        self.resample = int(p.resample) if p.resample is not None else Image.BICUBIC
        self.crop = (int(p.crop_size["height"]), int(p.crop_size["width"])) if p.do_center_crop else None
        # Rescale + normalise as a table of the 256 uint8 values per channel, computed as transformers
        # does (float64 product cast to float32, then float32 (x - mean) / std): one gather per pixel.
        x = (np.arange(256, dtype=np.float64) * (p.rescale_factor if p.do_rescale else 1.0)).astype(np.float32)
        mean = np.asarray(p.image_mean if p.do_normalize else [0.0] * 3, dtype=np.float32)[:, None]
        std = np.asarray(p.image_std if p.do_normalize else [1.0] * 3, dtype=np.float32)[:, None]
        self.table = ((x[None, :] - mean) / std).astype(np.float32)  # [3, 256]

    def _size(self, w: int, h: int) -> tuple[int, int]:
        """(width, height) after the resize step (transformers' get_resize_output_image_size)."""
        if "shortest_edge" in self.resize_to:
            s = int(self.resize_to["shortest_edge"])
            return (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
        return int(self.resize_to["width"]), int(self.resize_to["height"])

    def crop_uint8(self, image: Image.Image) -> np.ndarray:
        """RGB PIL image -> uint8 [H, W, 3], resized and center-cropped (zero padding if too small)."""
        if self.resize_to is not None:
            size = self._size(*image.size)
            if size != image.size:
                image = image.resize(size, resample=self.resample)
        if self.crop is not None:
            (ch, cw), (w, h) = self.crop, image.size
            top, left = (h - ch) // 2, (w - cw) // 2
            image = image.crop((left, top, left + cw, top + ch))
        return np.asarray(image, dtype=np.uint8)

    def normalize(self, images: Sequence[np.ndarray]) -> Tensor:
        """uint8 [H, W, 3] images of one size -> float32 pixel_values [B, 3, H, W]."""
        h, w, _ = images[0].shape
        out = np.empty((len(images), 3, h, w), dtype=np.float32)
        for b, image in enumerate(images):
            for c in range(3):
                np.take(self.table[c], image[..., c], out=out[b, c], mode="clip")
        return torch.from_numpy(out)

    def collate(self, items: Sequence[tuple[np.ndarray, int, int]]) -> tuple[Tensor, Tensor, Tensor]:
        """DataLoader collate_fn: pixel_values float32 [B, 3, H, W], labels [B], dataset indices [B]."""
        images, labels, indices = zip(*items)
        return self.normalize(images), torch.tensor(labels), torch.tensor(indices)


class ImageSetDataset(Dataset):
    """Items (uint8 [H, W, 3] from ClipPixels.crop_uint8, label, index); batch them with ClipPixels.collate."""

    def __init__(self, images: ImageSet, pixels: ClipPixels) -> None:
        self.images, self.pixels = images, pixels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int, int]:
        image = open_rgb(self.images.files[index])
        return self.pixels.crop_uint8(image), self.images.labels[index], index


def image_loader(images: ImageSet, image_processor, batch_size: int, num_workers: int = 0,
                 pin_memory: bool = False) -> DataLoader:
    """Batches (pixel_values float32 [B, 3, H, W], labels [B], indices [B]) in order, preprocessed as
    `image_processor` would, in the workers."""
    pixels = ClipPixels(image_processor)
    return DataLoader(ImageSetDataset(images, pixels), batch_size=batch_size, shuffle=False,
                      num_workers=num_workers, collate_fn=pixels.collate, pin_memory=pin_memory)
