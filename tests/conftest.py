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


@pytest.fixture(scope="session")
def tiny_overrides() -> list[str]:
    return list(TINY)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One cache (embedded data, classifiers) shared by the whole test session."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def tiny_digits_cfg(tmp_path, cache_dir):
    """task=digits shrunk to seconds, writing into tmp_path."""
    return compose_config(["task=digits", *TINY, f"paths.cache_dir={cache_dir}", f"paths.output_dir={tmp_path}"])
