"""Shared fixtures: the real config composed and shrunk to a seconds-long CPU run."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from src.config import compose_config
from helpers.overrides import TINY_DIGITS, TINY_FACES

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

@pytest.fixture(scope="session")
def tiny_overrides() -> list[str]:
    return list(TINY_DIGITS)


@pytest.fixture(scope="session")
def tiny_faces_overrides() -> list[str]:
    return list(TINY_FACES)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One cache (embedded data, classifiers) shared by the whole test session."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def tiny_digits_cfg(tmp_path, cache_dir):
    """task=digits shrunk to seconds, writing into tmp_path."""
    return compose_config(["task=digits", *TINY_DIGITS, f"paths.cache_dir={cache_dir}", f"paths.output_dir={tmp_path}"])


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    """A random tiny CLIP (hidden 32, 32x32 images) with a BPE tokenizer trained offline, saved with
    save_pretrained: load it with model.weights=<folder>."""
    from src.standins.random_clip import write_random_clip

    return write_random_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def write_clip_course():
    """write(root, id2label, files): the course's clip_zeroshot layout, <root>/id2label.json and a random
    12x16 PNG <root>/val/<name> per file name."""
    import json

    import numpy as np
    from PIL import Image

    def write(root: Path, id2label: dict, files: list[str]) -> Path:
        (root / "val").mkdir(parents=True, exist_ok=True)
        (root / "id2label.json").write_text(json.dumps(id2label))
        for i, name in enumerate(files):
            pixels = np.random.default_rng(i).integers(0, 255, (12, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "val" / name)
        return root

    return write
