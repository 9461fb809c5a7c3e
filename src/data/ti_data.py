"""The course's textual-inversion inputs (`textual_inversion/input.json` + one image folder per concept), the
training dataset of a concept, and an embedded default made offline from scikit-image photos."""
from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from src.errors import ConfigError, DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_KEYS = ("token_name", "prompt", "prompt_4_clip_eval", "baseline")


@dataclass
class Concept:
    """One entry of input.json: its id (the folder name), token, prompts, CLIP prompts, baselines, images."""

    id: str
    token: str
    src_image: str
    prompts: list[str]
    clip_prompts: list[str]
    baselines: list[tuple[float, float]]  # [image_score, text_score] per prompt
    images: list[Path]
    initializer: Optional[str] = None  # our optional key `initializer_token`; the course's file has none


def _concept(root: Path, cid: str, entry: dict, path: Path) -> Concept:
    if not isinstance(entry, dict) or any(k not in entry for k in _KEYS):
        raise DataError(f"{path}: concept {cid!r} must have keys {', '.join(_KEYS)}")
    prompts, clip_prompts, baselines = entry["prompt"], entry["prompt_4_clip_eval"], entry["baseline"]
    if not (len(prompts) == len(clip_prompts) == len(baselines)) or not prompts:
        raise DataError(f"{path}: concept {cid!r} has {len(prompts)} prompts, {len(clip_prompts)} "
                        f"prompt_4_clip_eval and {len(baselines)} baselines; expected equal, non-zero counts")
    if any(not isinstance(b, (list, tuple)) or len(b) != 2 for b in baselines):
        raise DataError(f"{path}: concept {cid!r} baseline={baselines!r}; expected [image_score, text_score] pairs")
    folder = root / cid
    if not folder.is_dir():
        raise DataError(f"{folder}: missing image folder of concept {cid!r}")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) for concept {cid!r}")
    return Concept(id=cid, token=entry["token_name"], src_image=str(entry.get("src_image", cid)),
                   prompts=list(prompts), clip_prompts=list(clip_prompts),
                   baselines=[(float(b[0]), float(b[1])) for b in baselines], images=images,
                   initializer=entry.get("initializer_token"))


def load_concepts(root: str | Path) -> list[Concept]:
    """Concepts of `<root>/input.json`, in the file's order; one-line DataErrors naming the file."""
    root = Path(root).expanduser()
    path = root / "input.json"
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected the course's textual_inversion/input.json")
    try:
        spec = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(spec, dict) or not spec:
        raise DataError(f"{path}: expected an object of concept id -> entry")
    return [_concept(root, str(cid), entry, path) for cid, entry in spec.items()]


def load_ti_concepts(root: Optional[str], *, cache_dir: str | Path, seed: int = 0, size: int = 128,
                     wanted: Sequence = ()) -> list[Concept]:
    """The concepts of <root>/input.json, or for None of the embedded default (built once into
    <cache_dir>/ti/embedded_s<seed>_<size>); only the ids in `wanted` (task.concepts) unless it is empty."""
    if root is None:
        from src.cache import build_once

        folder = build_once(Path(cache_dir) / "ti" / f"embedded_s{seed}_{size}",
                            lambda tmp: write_embedded_ti(tmp, size=size, seed=seed), what="the embedded TI concepts")
    else:
        folder = Path(root).expanduser()
        if not folder.is_dir():
            raise DataError(f"data.root={str(folder)!r}: no such folder; expected <hw2_data>/textual_inversion")
    concepts = load_concepts(folder)
    wanted = [str(c) for c in wanted]
    unknown = sorted(set(wanted) - {c.id for c in concepts})
    if unknown:
        raise ConfigError(f"task.concepts={wanted}: {unknown} not in input.json (ids {[c.id for c in concepts]})")
    return [c for c in concepts if not wanted or c.id in wanted]


def template_kind(templates: str, concept: Concept) -> str:
    """`templates` (object | style), or for auto: style when the concept's prompts say 'style of', else object."""
    if templates != "auto":
        return templates
    return "style" if any("style of" in p.lower() for p in concept.prompts) else "object"


def initializer_tokens(concepts: list[Concept], kinds: list[str], tokens: Optional[Sequence]) -> list[str]:
    """One initializer word per concept: `tokens` (task.initializer_tokens) if given, else input.json's
    `initializer_token`, else "object" / "painting" by template kind."""
    if tokens is not None:
        if len(tokens) < len(concepts):
            raise ConfigError(f"task.initializer_tokens={list(tokens)}: expected one token per concept")
        return [str(t) for t in tokens[:len(concepts)]]
    return [c.initializer or {"object": "object", "style": "painting"}[k] for c, k in zip(concepts, kinds)]


def load_image(path: Path, size: int) -> torch.Tensor:
    """RGB image -> [3, size, size] in [-1, 1] (centre crop to a square, bicubic resize)."""
    try:
        img = Image.open(path).convert("RGB")
    except OSError as err:
        raise DataError(f"{path}: cannot read the image ({err})") from err
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    arr = np.asarray(img.resize((size, size), Image.BICUBIC), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(2, 0, 1)


class ConceptDataset(Dataset):
    """A concept's images (random horizontal flips), each with a random template filled with `placeholder`;
    `repeats` passes over the images make one epoch."""

    def __init__(self, images: list[Path], templates: tuple[str, ...], placeholder: str, size: int,
                 repeats: int = 100, flip_p: float = 0.5):
        self.pixels = [load_image(p, size) for p in images]
        self.templates, self.placeholder, self.repeats, self.flip_p = templates, placeholder, repeats, flip_p

    def __len__(self) -> int:
        return len(self.pixels) * self.repeats

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        x = self.pixels[i % len(self.pixels)]
        if random.random() < self.flip_p:
            x = x.flip(-1)
        return x, random.choice(self.templates).format(self.placeholder)


def _painterly(img: np.ndarray, levels: int = 5) -> np.ndarray:
    """A flat-colour 'painting' look: smoothed, posterised, with dark edges."""
    from skimage import color, filters

    smooth = filters.gaussian(img, sigma=2, channel_axis=-1)
    poster = np.round(smooth * (levels - 1)) / (levels - 1)
    edges = filters.sobel(color.rgb2gray(smooth))
    out = poster * (1 - np.clip(edges * 4, 0, 1))[..., None] * np.array([1.0, 0.9, 0.75])
    return np.clip(out, 0, 1)


def write_embedded_ti(root: str | Path, size: int = 128, seed: int = 0) -> Path:
    """The embedded default in the course's layout: concept 0 = crops of scikit-image's chelsea the cat,
    concept 1 = a painterly style over other photos; input.json with the course's keys. Returns `root`."""
    from skimage import data, transform

    root, rng = Path(root), np.random.default_rng(seed)
    cat = data.chelsea() / 255.0
    for k in range(5):  # random square crops around the cat
        s = int(rng.integers(230, 300))
        y, x = int(rng.integers(0, cat.shape[0] - s + 1)), int(rng.integers(0, cat.shape[1] - s + 1))
        _save(transform.resize(cat[y:y + s, x:x + s], (size, size), anti_aliasing=True), root / "0" / f"{k}.png")
    for k, name in enumerate(("astronaut", "coffee", "rocket", "immunohistochemistry", "chelsea")):
        img = getattr(data, name)() / 255.0
        s = min(img.shape[:2])
        img = transform.resize(img[:s, :s], (size, size), anti_aliasing=True)
        _save(_painterly(img), root / "1" / f"{k}.png")
    spec = {
        "0": {"src_image": "cat", "token_name": "<new1>", "initializer_token": "cat",
              "prompt": ["A <new1> sitting on a park bench.", "A <new1> posing proudly on a hill top."],
              "prompt_4_clip_eval": ["A cat sitting on a park bench.", "A cat posing proudly on a hill top."],
              "baseline": [[79, 34], [74, 35]]},
        "1": {"src_image": "painterly", "token_name": "<new2>", "initializer_token": "painting",
              "prompt": ["The streets of Paris in the style of <new2>.", "Manhattan skyline in the style of <new2>."],
              "prompt_4_clip_eval": ["The streets of Paris in the style of a painting.",
                                     "Manhattan skyline in the style of a painting."],
              "baseline": [[70, 30], [70, 30]]},
    }
    (root / "input.json").write_text(json.dumps(spec, indent=2) + "\n")
    return root


def _save(img: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8)).save(path)
