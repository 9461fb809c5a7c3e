"""The course's textual-inversion inputs (`textual_inversion/input.json` + one image folder per concept), the
training dataset of a concept, and an embedded default drawn like the embedded scenes."""
from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
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


def load_ti_concepts(root: Optional[str], *, cache_dir: str | Path, seed: int = 0, size: int = 64,
                     wanted: Sequence = ()) -> list[Concept]:
    """The concepts of <root>/input.json, or for None of the embedded default (built once into
    <cache_dir>/ti/embedded_s<seed>_<size>); only the ids in `wanted` (task.concepts) unless it is empty."""
    if root is None:
        from src.cache import build_once

        folder = build_once(Path(cache_dir) / "ti" / f"scenes_v1_s{seed}_{size}",
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


def with_initializers(concepts: list[Concept], words: list[str]) -> list[Concept]:
    """The concepts with each prompt's token replaced by its initializer word (the token before training)."""
    return [replace(c, prompts=[p.replace(c.token, w) for p in c.prompts]) for c, w in zip(concepts, words)]


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


# The embedded concepts: figures of one colour and style that difflab's embedded SD draws (it knows the words
# "orange", "outlined", "star") but has no single word for, on varying backgrounds (never stripes, which the
# second prompt asks for). The initializer word alone draws the figure in any colour and style.
EMBEDDED_CONCEPTS = (
    dict(figure="star", colour="orange", style="outlined", token="<new1>", src_image="outlined orange star"),
    dict(figure="diamond", colour="green", style="filled", token="<new2>", src_image="green diamond"),
)
# [image_score, text_score] per prompt, as the course's: what the initializer word's images (the token before
# training) score, plus 5 points each, rounded up, so that a pass means the token learned its concept. Measured
# with the default builds of difflab's tiny SD and tiny CLIP (`python -m src.run task=ti
# task.initializer_scores=true`, 2 AVX-512 cores, 2026-12-07): initializer/c0/p{0,1} 51.5/8.4 and 43.6/8.4,
# initializer/c1/p{0,1} 70.3/18.0 and 64.3/16.3; the trained tokens read 70.9/18.2, 69.4/18.0, 85.4/23.8, 85.6/24.0.
EMBEDDED_BASELINES = (((57, 14), (49, 14)), ((76, 23), (70, 22)))


def write_embedded_ti(root: str | Path, size: int = 64, seed: int = 0) -> Path:
    """The embedded default in the course's layout (src.data.embedded_scenes' figures at 64x64, resized to
    `size`): five reference images per EMBEDDED_CONCEPTS entry in <root>/<id>/ and input.json with the
    course's keys (+ initializer_token: the figure's word). Returns `root`."""
    from src.data.embedded_digits import digit_pool
    from src.data.embedded_scenes import BACKGROUNDS, COLOURS, FIGURES, STYLES, article, render_one

    root, rng = Path(root), np.random.default_rng(seed)
    strokes = digit_pool("train")
    backgrounds = [BACKGROUNDS.index(b) for b in ("black", "gray", "dots", "checks")]
    spec = {}
    for cid, (c, baselines) in enumerate(zip(EMBEDDED_CONCEPTS, EMBEDDED_BASELINES)):
        for k in range(5):
            image = render_one(FIGURES.index(c["figure"]), list(COLOURS).index(c["colour"]), STYLES.index(c["style"]),
                               backgrounds[k % len(backgrounds)], rng, strokes)
            img = Image.fromarray(image)
            img = img if size == image.shape[0] else img.resize((size, size), Image.BICUBIC)
            path = root / str(cid) / f"{k}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            img.save(path)
        token, name, a = c["token"], c["src_image"], article(c["src_image"])
        spec[str(cid)] = {
            "src_image": name, "token_name": token, "initializer_token": c["figure"],
            "prompt": [f"A photo of a {token}.", f"A {token} on stripes."],
            "prompt_4_clip_eval": [f"A photo of {a} {name}.", f"{a.title()} {name} on stripes."],
            "baseline": [list(b) for b in baselines]}
    (root / "input.json").write_text(json.dumps(spec, indent=2) + "\n")
    return root
