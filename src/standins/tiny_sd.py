"""A tiny random Stable Diffusion in the diffusers layout, built offline from configs: UNet2DConditionModel,
AutoencoderKL, CLIPTextModel + a CLIPTokenizer trained with `tokenizers`, a DDIM scheduler, no safety checker.
Its images are noise-like: it exists so that every code path of task=ti runs without SD v1.4's weights."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from src.standins.random_clip import train_tokenizer

log = logging.getLogger(__name__)

# Words of the TI templates and the course's prompts, so that prompts tokenise into real subwords and the
# initializer tokens ("cat", "dog", "painting", ...) are single tokens.
_WORDS = ("a photo of the cat dog painting style art picture rendering cropped clean dirty dark bright "
          "cool close-up nice weird good small large one in by next to with on is sitting posing proudly "
          "object street streets city sky mountain park bench hill top background skyline paris manhattan")
SD_CORPUS = tuple([_WORDS] * 20 + [f"a photo of a {w}." for w in _WORDS.split()]
                  + [f"a painting in the style of {w}." for w in _WORDS.split()])

TINY_SD = dict(
    unet=dict(block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8, cross_attention_dim=32,
              attention_head_dim=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
              up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")),
    vae=dict(block_out_channels=(8, 16, 16), layers_per_block=1, norm_num_groups=8, latent_channels=4),
    text=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4),
)


def build_tiny_sd(image_size: int = 64, seed: int = 0):
    """A StableDiffusionPipeline of random tiny components (~0.3M parameters) for `image_size` images."""
    from diffusers import (AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    tokenizer = train_tokenizer(SD_CORPUS, vocab_size=400)
    v = TINY_SD["vae"]
    n_down = len(v["block_out_channels"])
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n_down,
                        up_block_types=("UpDecoderBlock2D",) * n_down, sample_size=image_size, **v)
    unet = UNet2DConditionModel(sample_size=image_size // 2 ** (n_down - 1), in_channels=v["latent_channels"],
                                out_channels=v["latent_channels"], **TINY_SD["unet"])
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **TINY_SD["text"]))
    # Stable Diffusion v1's noise schedule (scaled_linear 0.00085..0.012, 1000 steps).
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def write_tiny_sd(folder: str | Path, image_size: int = 64, seed: int = 0) -> Path:
    """Build the tiny SD and save it with save_pretrained (the diffusers folder layout); returns the folder."""
    folder = Path(folder)
    build_tiny_sd(image_size, seed).save_pretrained(folder, safe_serialization=True)
    return folder


def load_tiny_sd(cache_dir: str | Path, *, image_size: int = 64):
    """model=sd_tiny: the tiny SD for `image_size` images, built once into <cache_dir>/ti/sd_tiny_<size> and
    loaded like any diffusers folder."""
    from src.cache import build_once
    from src.models.sd_pipeline import load_sd_pipeline

    log.warning("model=sd_tiny: a RANDOM tiny Stable Diffusion built by the project, not SD v1.4")
    folder = build_once(Path(cache_dir) / "ti" / f"sd_tiny_{image_size}",
                        lambda tmp: write_tiny_sd(tmp, image_size=image_size), what="a random tiny Stable Diffusion")
    return load_sd_pipeline(str(folder), image_size=image_size)


# diffusers -> original (CompVis LDM) key names, the inverse of diffusers' single-file conversion, for any
# number of blocks and layers per block; used to write a tiny checkpoint in sd-v1-4.ckpt's layout.
_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
           ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))
_UNET_TOP = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}


def _unet_key_to_ldm(key: str, layers: int, attn_up: list[bool]) -> str:
    import re

    part = key.split(".")
    for hf, ldm in _UNET_TOP.items():
        if key.startswith(hf + "."):
            return ldm + key[len(hf):]
    rest = ".".join(part[4:])
    if part[0] == "down_blocks":
        b, kind, j = int(part[1]), part[2], int(part[3])
        if kind == "downsamplers":
            return f"input_blocks.{(b + 1) * (layers + 1)}.0.op.{'.'.join(part[5:])}"
        head = f"input_blocks.{b * (layers + 1) + j + 1}.{0 if kind == 'resnets' else 1}"
    elif part[0] == "up_blocks":
        b, kind, j = int(part[1]), part[2], int(part[3])
        if kind == "upsamplers":
            return f"output_blocks.{b * (layers + 1) + layers}.{2 if attn_up[b] else 1}.{'.'.join(part[4:])}"
        head = f"output_blocks.{b * (layers + 1) + j}.{0 if kind == 'resnets' else 1}"
    elif part[0] == "mid_block":
        kind, j = part[1], int(part[2])
        head = f"middle_block.{2 * j if kind == 'resnets' else 1}"
        rest = ".".join(part[3:])
    else:
        raise KeyError(key)
    if ".resnets." in key:
        for hf, ldm in _RESNET:
            rest = re.sub(rf"^{hf}\.", f"{ldm}.", rest)
    return f"{head}.{rest}"


def _vae_key_to_ldm(key: str, n_blocks: int) -> str:
    import re

    key = key.replace("mid_block.resnets.0", "mid.block_1").replace("mid_block.resnets.1", "mid.block_2")
    key = key.replace("mid_block.attentions.0", "mid.attn_1").replace("conv_shortcut", "nin_shortcut")
    key = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets\.", r"encoder.down.\1.block.", key)
    key = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", key)
    key = re.sub(r"decoder\.up_blocks\.(\d+)\.resnets\.",
                 lambda m: f"decoder.up.{n_blocks - 1 - int(m[1])}.block.", key)
    key = re.sub(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.",
                 lambda m: f"decoder.up.{n_blocks - 1 - int(m[1])}.upsample.", key)
    for hf, ldm in (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")):
        key = key.replace(f"attn_1.{hf}.", f"attn_1.{ldm}.")
    return key.replace("conv_norm_out", "norm_out")


def write_tiny_single_file(diffusers_folder: str | Path, path: str | Path) -> Path:
    """The tiny SD of `diffusers_folder` as one original-layout checkpoint (model.diffusion_model.*,
    first_stage_model.*, cond_stage_model.transformer.*), like sd-v1-4.ckpt; .safetensors or .ckpt by suffix."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(diffusers_folder, local_files_only=True)
    unet_cfg = pipe.unet.config
    attn_up = ["CrossAttn" in t for t in unet_cfg.up_block_types]
    state = {f"model.diffusion_model.{_unet_key_to_ldm(k, unet_cfg.layers_per_block, attn_up)}": v
             for k, v in pipe.unet.state_dict().items()}
    n_vae = len(pipe.vae.config.block_out_channels)
    for k, v in pipe.vae.state_dict().items():
        ldm = _vae_key_to_ldm(k, n_vae)
        state[f"first_stage_model.{ldm}"] = v[..., None, None] if ".attn_1." in ldm and v.ndim == 2 else v
    for k, v in pipe.text_encoder.state_dict().items():  # sd-v1-4.ckpt: cond_stage_model.transformer.text_model.*
        state[f"cond_stage_model.transformer.{k if k.startswith('text_model.') else 'text_model.' + k}"] = v
    state = {k: v.contiguous() for k, v in state.items()}
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, path)
    else:
        torch.save({"state_dict": state}, path)
    return path
