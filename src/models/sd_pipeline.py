"""Stable Diffusion from a diffusers folder or an original single-file checkpoint, strictly offline."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from src.errors import CheckpointError, ConfigError

SINGLE_FILE_SUFFIXES = (".ckpt", ".safetensors")


def _first_line(err: Exception) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:200] if lines else type(err).__name__


def load_sd_pipeline(path: str | Path, *, original_config: Optional[str | Path] = None,
                     config: Optional[str | Path] = None, dtype: torch.dtype = torch.float32,
                     device: str | torch.device = "cpu"):
    """A StableDiffusionPipeline (no safety checker) from `path`: a folder written by save_pretrained, or a
    single .ckpt/.safetensors file (e.g. the course's sd-v1-4.ckpt) read with `from_single_file` using the
    local `original_config` yaml (v1-inference.yaml) and, for the tokenizer and component configs, `config`
    (a local diffusers-layout folder; without it the Hugging Face cache must hold the model's configs).
    Missing or wrong paths raise a one-line ConfigError / CheckpointError."""
    from diffusers import StableDiffusionPipeline
    from diffusers.loaders.single_file_utils import SingleFileComponentError

    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError(f"model.path={str(path)!r}: no such file or folder; expected a diffusers folder "
                          f"(model_index.json) or a {'/'.join(SINGLE_FILE_SUFFIXES)} checkpoint")
    common = dict(dtype=dtype, safety_checker=None, requires_safety_checker=False, local_files_only=True)
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise CheckpointError(f"{path}: not a diffusers pipeline folder (no model_index.json)")
        try:
            pipe = StableDiffusionPipeline.from_pretrained(path, **common)
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as err:
            raise CheckpointError(f"{path}: cannot load a StableDiffusionPipeline ({_first_line(err)})") from err
    else:
        if path.suffix not in SINGLE_FILE_SUFFIXES:
            raise ConfigError(f"model.path={str(path)!r}: expected a folder or a file ending in "
                              f"{' or '.join(SINGLE_FILE_SUFFIXES)}")
        extra = {}
        for key, value in (("original_config", original_config), ("config", config)):
            if value is not None:
                value = Path(value).expanduser()
                if not value.exists():
                    raise ConfigError(f"model.{key}={str(value)!r}: no such file or folder")
                extra[key] = str(value)
        try:
            pipe = StableDiffusionPipeline.from_single_file(str(path), **common, **extra)
        except (OSError, ValueError, KeyError, RuntimeError, TypeError, SingleFileComponentError) as err:
            raise CheckpointError(f"{path}: cannot load as a single-file Stable Diffusion checkpoint "
                                  f"({_first_line(err)}); expected model.config=<a local diffusers-layout folder with the "
                                  "component configs and tokenizer>") from err
    if pipe.tokenizer.model_max_length > 10_000:  # a tokenizer built from scratch; SD needs CLIP's 77
        pipe.tokenizer.model_max_length = 77
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)
