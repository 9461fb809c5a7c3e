"""Shared fixtures: the real config composed and shrunk to a seconds-long CPU run."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from src.config import compose_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

# A two-level UNet, a few diffusion steps, two images per digit, a small embedded data set.
TINY = [
    "data.embedded.n_train=60", "data.embedded.n_val=40", "data.batch_size=16",
    "model.net.block_out_channels=[16,32]", "model.net.attention_levels=[false,true]",
    "model.net.norm_num_groups=8", "model.warmup_steps=2",
    "scheduler.steps=50", "sampler.num_steps=4", "sampler.per_class=2", "sampler.process_frames=3",
    "trainer.max_steps=4", "trainer.val_check_interval=2", "trainer.limit_val_batches=1",
    "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1",
    "task.classifier.epochs=1", "task.classifier.min_val_acc=0", "logger=none",
]


# task=faces with a two-level 16x16 face UNet trained 4 steps, 4 noise files, DDIM of 4 steps.
TINY_FACES = [
    "data.embedded.n_noise=4", "data.embedded.gt_steps=4", "scheduler.steps=50", "sampler.num_steps=4",
    "task.interp_alphas=[0.0,0.5,1.0]", "trainer.enable_progress_bar=false", "model.image_size=16",
    "model.net.channel=16", "model.net.channel_multiplier=[1,2]", "model.net.attn_strides=[2]",
    "model.net.norm_groups=8", "model.train.steps=4", "model.train.batch_size=16", "model.train.warmup_steps=2",
]


@pytest.fixture(scope="session")
def tiny_overrides() -> list[str]:
    return list(TINY)


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
    return compose_config(["task=digits", *TINY, f"paths.cache_dir={cache_dir}", f"paths.output_dir={tmp_path}"])


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    """A random tiny CLIP (hidden 32, 32x32 images) with a BPE tokenizer trained offline, saved with
    save_pretrained: load it with model.path."""
    from src.models.random_clip import write_random_clip

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
