"""A Stable Diffusion diffusers folder written back as one checkpoint in the original CompVis layout
(model.diffusion_model.*, first_stage_model.*, cond_stage_model.transformer.*), as sd-v1-4.ckpt is: what
from_single_file reads, for the stand-ins of any size."""
from __future__ import annotations

import re
from pathlib import Path

import torch

# diffusers -> original (CompVis LDM) key names, the inverse of diffusers' single-file conversion, for any
# number of blocks and layers per block.
_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
           ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))
_UNET_TOP = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}


def _unet_key_to_ldm(key: str, layers: int, attn_up: list[bool]) -> str:
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


def write_single_file(diffusers_folder: str | Path, path: str | Path) -> Path:
    """The SD of `diffusers_folder` (tiny or full size) as one original-layout checkpoint (model.diffusion_model.*,
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
