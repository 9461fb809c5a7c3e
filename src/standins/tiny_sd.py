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
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(SD_CORPUS, vocab_size=400)
    vae = build_vae(image_size, TINY_SD["vae"])
    return assemble_sd(vae, tokenizer, TINY_SD["unet"], TINY_SD["text"], max_positions=77)


def build_vae(image_size: int, vae: dict):
    """A fresh AutoencoderKL for RGB `image_size` images, one down (up) block per entry of block_out_channels."""
    from diffusers import AutoencoderKL

    n = len(vae["block_out_channels"])
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
                         up_block_types=("UpDecoderBlock2D",) * n, sample_size=image_size, **vae)


def assemble_sd(vae, tokenizer, unet: dict, text: dict, max_positions: int):
    """A StableDiffusionPipeline around `vae` and `tokenizer`: a fresh UNet2DConditionModel (`unet` arguments,
    sized to the VAE's latents) and CLIPTextModel (`text` arguments), SD v1's DDIM scheduler, no safety
    checker. Draws the UNet's, then the text encoder's initial weights from torch's global RNG."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    down = 2 ** (len(vae.config.block_out_channels) - 1)
    unet = UNet2DConditionModel(sample_size=vae.config.sample_size // down, in_channels=vae.config.latent_channels,
                                out_channels=vae.config.latent_channels, **unet)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), max_position_embeddings=max_positions, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **text))
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
