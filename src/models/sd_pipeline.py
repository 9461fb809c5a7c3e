"""Stable Diffusion from a diffusers folder, a Hub id or an original single-file checkpoint."""
from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path
from typing import Mapping, Optional

import torch

from src.errors import CheckpointError, ConfigError, first_line
from src.models.hub import hub_snapshot, load_hub_model, looks_like_hub_id

log = logging.getLogger(__name__)
SINGLE_FILE_SUFFIXES = (".ckpt", ".safetensors")


SD_V1_REPO = "CompVis/stable-diffusion-v1-4"
# What a single file needs from its diffusers-layout config repo: model_index.json, each component's config,
# the tokenizer's files (no weights).
CONFIG_FILES = ["*.json", "*/*.json", "*/*.txt"]


def load_sd_pipeline(weights: Optional[str | Path], *, cache_dir: Optional[str | Path] = None,
                     original_config: Optional[str | Path] = None, config: Optional[str | Path] = SD_V1_REPO,
                     image_size: Optional[int] = None, embedded: Optional[Mapping] = None,
                     dtype: torch.dtype = torch.float32,
                     device: str | torch.device = "cpu"):
    """A StableDiffusionPipeline (no safety checker) from `weights`: a folder written by save_pretrained, a
    Hub id in that layout (CompVis/stable-diffusion-v1-4; cached, else downloaded on first use), or a single
    .ckpt/.safetensors file (e.g. the course's sd-v1-4.ckpt) read with `from_single_file` using
    `original_config` (v1-inference.yaml; null: inferred from the weights) and, for the tokenizer and the
    component configs, `config` (a diffusers-layout folder or Hub id: SD v1.4's by default, so diffusers does
    not pick another v1 repo). None: difflab's own tiny SD (src.models.embedded_sd; `embedded`: vae_steps,
    steps, seed), trained once into `cache_dir`. `image_size`: the resolution to train and draw at (see
    pipeline_image_size); None keeps the model's (512 for SD v1, 32 for difflab's tiny SD). Missing or wrong
    paths raise a one-line ConfigError / CheckpointError."""
    from diffusers import StableDiffusionPipeline

    if weights is None:
        from src.models.embedded_sd import embedded_sd

        if cache_dir is None:
            raise ConfigError("model.cache_dir=None: difflab's tiny SD (model.weights=null) is built into it")
        log.info("model.weights=null: difflab's own tiny Stable Diffusion (32x32, the embedded scenes), not SD "
                 f"v1.4; pass model.weights=<a diffusers folder, a Hub id such as {SD_V1_REPO} or sd-v1-4.ckpt>")
        weights = embedded_sd(cache_dir, **dict(embedded or {}))
    common = dict(dtype=dtype, safety_checker=None, requires_safety_checker=False)
    path = Path(weights).expanduser()
    if not path.exists():
        if not looks_like_hub_id(str(weights)):
            raise ConfigError(f"model.weights={str(path)!r}: no such file or folder; expected a diffusers folder "
                              f"(model_index.json), a Hub id or a {'/'.join(SINGLE_FILE_SUFFIXES)} checkpoint")
        pipe = load_hub_model(
            str(weights), lambda local: StableDiffusionPipeline.from_pretrained(str(weights), local_files_only=local,
                                                                                **common),
            key="model.weights", instead="a diffusers folder or a .ckpt/.safetensors file")
    elif path.is_dir():
        if not (path / "model_index.json").is_file():
            raise CheckpointError(f"{path}: not a diffusers pipeline folder (no model_index.json)")
        try:
            pipe = StableDiffusionPipeline.from_pretrained(path, local_files_only=True, **common)
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as err:
            raise CheckpointError(f"{path}: cannot load a StableDiffusionPipeline ({first_line(err)})") from err
    else:
        pipe = _from_single_file(path, original_config, config, common)
    if pipe.tokenizer.model_max_length > 10_000:  # a tokenizer built from scratch; SD needs CLIP's 77
        pipe.tokenizer.model_max_length = 77
    pipe.set_progress_bar_config(disable=True)
    if image_size is not None:
        set_image_size(pipe, image_size)
    return pipe.to(device)


def encode_prompts(tokenizer, text_encoder, prompts: list[str]) -> torch.Tensor:
    """The text encoder's last hidden states [B, model_max_length, D], padded to model_max_length as
    StableDiffusionPipeline pads its prompts."""
    ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids.to(text_encoder.device)
    return text_encoder(ids)[0]


def _from_single_file(path: Path, original_config, config, common: dict):
    """from_single_file with the local original_config and the component configs of `config` (a local folder,
    else a Hub id: cached, or its configs and tokenizer downloaded on first use)."""
    from diffusers import StableDiffusionPipeline
    from diffusers.loaders.single_file_utils import SingleFileComponentError

    if path.suffix not in SINGLE_FILE_SUFFIXES:
        raise ConfigError(f"model.weights={str(path)!r}: expected a folder or a file ending in "
                          f"{' or '.join(SINGLE_FILE_SUFFIXES)}")
    extra = {}
    if original_config is not None:
        original_config = Path(original_config).expanduser()
        if not original_config.is_file():
            raise ConfigError(f"model.original_config={str(original_config)!r}: no such file; expected the "
                              "checkpoint's yaml (v1-inference.yaml for SD v1), or null to infer it")
        extra["original_config"] = str(original_config)
    if config is None:
        raise ConfigError(f"model.config=None: a single file needs the component configs and tokenizer; expected "
                          f"a diffusers-layout folder or a Hub id such as {SD_V1_REPO}")
    folder = Path(config).expanduser()
    if not folder.exists() and not looks_like_hub_id(str(config)):
        raise ConfigError(f"model.config={str(folder)!r}: no such folder; expected a diffusers-layout folder "
                          f"or a Hub id such as {SD_V1_REPO}")
    if not _looks_like_a_checkpoint(path):
        raise CheckpointError(f"{path}: not a single-file checkpoint (neither a torch.save zip or pickle nor a "
                              "safetensors file); expected Stable Diffusion weights such as the course's sd-v1-4.ckpt")
    if not folder.exists():
        folder = hub_snapshot(str(config), CONFIG_FILES, key="model.config",
                              instead="a diffusers-layout folder with the component configs and tokenizer")
    try:
        return StableDiffusionPipeline.from_single_file(str(path), config=str(folder), local_files_only=True,
                                                        **common, **extra)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError, SingleFileComponentError) as err:
        raise CheckpointError(f"{path}: cannot load as a single-file Stable Diffusion checkpoint with the component "
                              f"configs of model.config={str(config)!r} ({first_line(err)})") from err


def _looks_like_a_checkpoint(path: Path) -> bool:
    """What the first bytes say: a torch.save zip (or legacy pickle) .ckpt, or a safetensors header."""
    with path.open("rb") as f:
        head = f.read(8)
        if path.suffix == ".ckpt":
            return zipfile.is_zipfile(path) or head[:1] == b"\x80"
        if len(head) < 8 or not 2 <= (size := int.from_bytes(head, "little")) <= 100_000_000:
            return False
        try:
            return isinstance(json.loads(f.read(size)), dict)
        except ValueError:
            return False


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
