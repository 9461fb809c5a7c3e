"""Stable Diffusion from a diffusers folder or an original single-file checkpoint, strictly offline."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from src.errors import CheckpointError, ConfigError, first_line

SINGLE_FILE_SUFFIXES = (".ckpt", ".safetensors")


def load_sd_pipeline(weights: str | Path, *, original_config: Optional[str | Path] = None,
                     config: Optional[str | Path] = None, image_size: Optional[int] = None,
                     dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
    """A StableDiffusionPipeline (no safety checker) from `weights`: a folder written by save_pretrained, or a
    single .ckpt/.safetensors file (e.g. the course's sd-v1-4.ckpt) read with `from_single_file` using the
    local `original_config` yaml (v1-inference.yaml) and, for the tokenizer and component configs, `config`
    (a local diffusers-layout folder; without it the Hugging Face cache must hold the model's configs).
    `image_size`: the resolution to train and draw at (see pipeline_image_size); None keeps the model's.
    Missing or wrong paths raise a one-line ConfigError / CheckpointError."""
    from diffusers import StableDiffusionPipeline
    from diffusers.loaders.single_file_utils import SingleFileComponentError

    if weights is None:
        raise ConfigError("model.weights=None: expected a diffusers folder (model_index.json) or a "
                          f"{'/'.join(SINGLE_FILE_SUFFIXES)} checkpoint such as sd-v1-4.ckpt (or model=sd_tiny)")
    path = Path(weights).expanduser()
    if not path.exists():
        raise ConfigError(f"model.weights={str(path)!r}: no such file or folder; expected a diffusers folder "
                          f"(model_index.json) or a {'/'.join(SINGLE_FILE_SUFFIXES)} checkpoint")
    common = dict(dtype=dtype, safety_checker=None, requires_safety_checker=False, local_files_only=True)
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise CheckpointError(f"{path}: not a diffusers pipeline folder (no model_index.json)")
        try:
            pipe = StableDiffusionPipeline.from_pretrained(path, **common)
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as err:
            raise CheckpointError(f"{path}: cannot load a StableDiffusionPipeline ({first_line(err)})") from err
    else:
        if path.suffix not in SINGLE_FILE_SUFFIXES:
            raise ConfigError(f"model.weights={str(path)!r}: expected a folder or a file ending in "
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
                                  f"({first_line(err)}); expected model.config=<a local diffusers-layout folder with "
                                  "the component configs and tokenizer>") from err
    if pipe.tokenizer.model_max_length > 10_000:  # a tokenizer built from scratch; SD needs CLIP's 77
        pipe.tokenizer.model_max_length = 77
    pipe.set_progress_bar_config(disable=True)
    if image_size is not None:
        set_image_size(pipe, image_size)
    return pipe.to(device)


def set_image_size(pipe, image_size: int) -> None:
    """Make `image_size` the pipeline's default resolution: diffusers draws at UNet sample_size x the VAE's
    scale factor when no height/width is given."""
    if image_size % pipe.vae_scale_factor:
        raise ConfigError(f"model.image_size={image_size}: expected a multiple of the VAE's scale factor "
                          f"{pipe.vae_scale_factor}")
    pipe.unet.register_to_config(sample_size=image_size // pipe.vae_scale_factor)


def pipeline_image_size(pipe) -> int:
    """The resolution the pipeline trains and draws at: UNet sample_size x the VAE's scale factor (512 for SD v1)."""
    return int(pipe.unet.config.sample_size) * pipe.vae_scale_factor
