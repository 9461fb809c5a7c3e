"""A random Stable Diffusion v1.4 in its real architecture and formats, built offline: the UNet
(model_channels 320, channel_mult 1-2-4-4, context_dim 768; 860M parameters), the VAE (84M), a CLIP ViT-L/14
text encoder (123M) with CLIP's real tokenizer, SD v1.4's PNDM scheduler config; written as a diffusers folder
and as one original-layout checkpoint like sd-v1-4.ckpt. Its images are noise; it proves that loading,
training and drawing work at full size and measures their time and memory."""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from src.standins.sd_single_file import write_single_file

# CompVis/stable-diffusion-v1-4's component configs (the arguments that differ from diffusers' defaults).
UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, cross_attention_dim=768,
            attention_head_dim=8, block_out_channels=(320, 640, 1280, 1280),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
VAE = dict(sample_size=512, in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
           block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
           up_block_types=("UpDecoderBlock2D",) * 4)
TEXT = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
            projection_dim=768, hidden_act="quick_gelu", max_position_embeddings=77)
SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                 set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1)


def build_sd_v1(seed: int = 0):
    """A StableDiffusionPipeline with SD v1.4's architecture and random weights (no safety checker)."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from src.standins.clip_tokenizer import write_clip_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = CLIPTokenizer.from_pretrained(write_clip_tokenizer(tmp))
    torch.manual_seed(seed)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                        **TEXT))
    return StableDiffusionPipeline(vae=AutoencoderKL(**VAE), text_encoder=text, tokenizer=tokenizer,
                                   unet=UNet2DConditionModel(**UNET), scheduler=PNDMScheduler(**SCHEDULER),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def write_sd_v1(folder: str | Path, *, single_file: str | Path | None = None, seed: int = 0) -> Path:
    """The random SD v1.4 saved with save_pretrained into `folder` (safetensors), and with `single_file` also
    as one original-layout .ckpt / .safetensors; returns the folder."""
    folder = Path(folder)
    build_sd_v1(seed).save_pretrained(folder, safe_serialization=True)
    if single_file is not None:
        write_single_file(folder, single_file)
    return folder
