"""difflab's own tiny text-to-image model: a Stable Diffusion v1 pipeline folder (AutoencoderKL, a
UNet2DConditionModel with cross-attention, a CLIPTextModel + CLIPTokenizer, a DDIM scheduler) trained once per
cache on the embedded scenes at 32x32, so that task=ti's defaults draw images that follow their prompts' colours.

model=sd with model.weights=null builds it once (embedded_sd). It draws the colours its prompts name (96.9% by
figure_colour), thin strokes for digits and solid figures for shapes, but not legible digits (20% by the figure
judge); enough for textual inversion to learn a colour and style (tests/tasks/test_ti_outcome.py).

Three stages, each from scratch: the VAE (4x down: 32x32x3 <-> 8x8x8, reconstruction + a small KL, as SD's
first stage without its GAN), the figure judge (a DigitNet on real scenes: which of the 16 figures an image
shows), then the UNet and the text encoder trained jointly on the VAE's latents (SD's noise schedule,
epsilon-prediction, Min-SNR weighting, the caption dropped one time in ten for classifier-free guidance).
Captions are drawn afresh at every step from each scene's attributes (embedded_scenes.caption inside the
CLIP's photo frames), so a caption may leave the colour or the background out. The text encoder is its own,
not the grader's CLIP (src.models.embedded_clip), as SD's ViT-L/14 is not the course grader's ViT-B/32.

`judge_t2i` scores a pipeline by outcome: prompts naming a figure and a colour, the figure judge's accuracy on
digits and shapes, and `figure_colour`'s on colours.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from src.data.embedded_scenes import (BACKGROUNDS, COLOURS, FIGURES, SHAPES, STYLES, caption as scene_caption,
                                      figure_colour, figure_phrase)

log = logging.getLogger(__name__)

# The folder name's version: bump when the same arguments would build another model.
SD_VERSION = 1
IMAGE_SIZE = 32
ARCH = dict(
    vae=dict(block_out_channels=(16, 32, 64), layers_per_block=1, norm_num_groups=8, latent_channels=8),
    # attention_head_dim is diffusers' (legacy) name for the number of heads
    unet=dict(block_out_channels=(48, 96), layers_per_block=1, norm_num_groups=16, cross_attention_dim=128,
              attention_head_dim=4, down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
              up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), addition_embed_type="text",
              addition_embed_type_num_heads=4),
    text=dict(hidden_size=128, intermediate_size=512, num_hidden_layers=3, num_attention_heads=4),
)
MAX_TOKENS = 32  # the tokenizer's model_max_length: every prompt here fits
# Photo frames around a scene's description, with the words of textual inversion's templates so that those
# are known tokens meaning "nothing about the figure": frames of a whole phrase ("a red star"), and frames that
# bring their own article (the phrase's is dropped: "a photo of the cool red star").
FRAMES = ("{}", "a photo of {}", "a rendering of {}", "a cropped photo of {}", "the photo of {}",
          "a dark photo of {}", "a bright photo of {}", "a close-up photo of {}", "a good photo of {}",
          "a small photo of {}", "a large photo of {}", "a picture of {}", "a painting of {}", "art of {}")
ARTICLE_FRAMES = ("a photo of the {}", "a photo of a clean {}", "a photo of a dirty {}", "a photo of my {}",
                  "a photo of the cool {}", "a photo of one {}", "a photo of a nice {}", "a photo of a weird {}",
                  "a rendering of the {}", "a cropped photo of the {}")


def scene_prompt(figures: list[tuple[int, int, int]], background: int, rng: np.random.Generator) -> str:
    """A training caption for a scene: its description (embedded_scenes.caption) inside a random frame."""
    text = scene_caption(figures, background, rng)[0]
    k = int(rng.integers(len(FRAMES) + len(ARTICLE_FRAMES)))
    if k < len(FRAMES):
        return FRAMES[k].format(text)
    return ARTICLE_FRAMES[k - len(FRAMES)].format(text.split(" ", 1)[1])


def _corpus(rng: np.random.Generator, n: int = 3000) -> list[str]:
    frame_words = " ".join(FRAMES + ARTICLE_FRAMES).replace("{}", "").split()
    words = " ".join([*FIGURES, *COLOURS, *BACKGROUNDS, *STYLES, *frame_words, "next to on the a an of"])
    out = [words] * 20
    for _ in range(n):
        k = 1 + int(rng.random() < 0.3)
        figures = [(int(rng.integers(len(FIGURES))), int(rng.integers(len(COLOURS))), int(rng.integers(2)))
                   for _ in range(k)]
        out.append(scene_prompt(figures, int(rng.integers(len(BACKGROUNDS))), rng))
    return out


def downsample(images: np.ndarray, size: int = IMAGE_SIZE) -> Tensor:
    """uint8 [N, 64, 64, 3] -> float [N, 3, size, size] in [-1, 1] (area average)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    return F.adaptive_avg_pool2d(x, size) if x.shape[-1] != size else x


def _figures_of(scenes, i: int) -> list[tuple[int, int, int]]:
    return [tuple(int(v) for v in scenes.figures[i, k]) for k in range(int(scenes.n_figures[i]))]


# ----------------------------------------------------------------------------- stage 1: the VAE


def train_vae(images: Tensor, *, steps: int, batch_size: int = 64, lr: float = 2e-3, kl_weight: float = 1e-6,
              seed: int = 0, init_logvar: float = -8.0):
    """An AutoencoderKL (ARCH['vae']) trained on images [N, 3, 32, 32] in [-1, 1]: L1 + MSE reconstruction of
    a posterior sample + kl_weight x KL. Returns it (eval) with config.scaling_factor = 1 / std of the latents."""
    from src.standins.tiny_sd import build_vae

    torch.manual_seed(seed)
    v = ARCH["vae"]
    vae = build_vae(IMAGE_SIZE, v)
    # The posterior starts narrow (std e^-4): a decoder fed latents with unit noise from the first step learns
    # blur; SD's trained VAE has a narrow posterior too, and the small KL keeps it from collapsing further.
    with torch.no_grad():
        vae.quant_conv.bias[v["latent_channels"]:] = init_logvar
    optimizer = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    schedule = _schedule(optimizer, steps)
    g = torch.Generator().manual_seed(seed)
    vae.train()
    for step in range(steps):
        x = images[torch.randint(len(images), (batch_size,), generator=g)]
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=g)).sample
        loss = F.l1_loss(recon, x) + F.mse_loss(recon, x) + kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if (step + 1) % 200 == 0 or step + 1 == steps:
            log.info("vae step %d/%d: loss %.4f", step + 1, steps, loss.item())
    vae.eval()
    with torch.no_grad():
        latents = encode(vae, images[:2000], scale=1.0)
    vae.register_to_config(scaling_factor=float(1 / latents.std()))
    return vae


@torch.no_grad()
def encode(vae, images: Tensor, scale: float | None = None, batch_size: int = 500) -> Tensor:
    """Posterior means x scaling factor: the latents the UNet is trained on [N, C, 8, 8]."""
    scale = vae.config.scaling_factor if scale is None else scale
    return torch.cat([vae.encode(x).latent_dist.mean for x in images.split(batch_size)]) * scale


# ----------------------------------------------------------------------------- the figure judge


def train_figure_judge(scenes, val_scenes, *, epochs: int = 3, seed: int = 0):
    """A DigitNet over the 16 figures (6 shapes, 10 digits) trained on the one-figure scenes at 32x32; returns
    (model, val accuracy on the one-figure val scenes)."""
    from src.eval.classifiers import train_classifier

    def split(s):
        one = s.n_figures == 1
        x = ((downsample(s.images[one]) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        return x, torch.from_numpy(s.figures[one, 0, 0])

    return train_classifier(split(scenes), split(val_scenes), epochs=epochs, batch_size=128, lr=3e-3, seed=seed,
                            num_classes=len(FIGURES))


# ----------------------------------------------------------------------------- stage 2: UNet + text encoder


def _schedule(optimizer, steps: int):
    """Linear warmup over 5% of the steps, then a cosine to a tenth of the rate (task=digits' warmup_cosine)."""
    from src.models.diffusion_module import warmup_cosine

    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, warmup=max(1, steps // 20), total=steps, final=0.1))


def build_pipeline(vae, tokenizer, seed: int = 0):
    """The StableDiffusionPipeline around `vae` and `tokenizer` with a fresh UNet and text encoder (ARCH)."""
    from src.standins.tiny_sd import assemble_sd

    torch.manual_seed(seed)
    return assemble_sd(vae, tokenizer, ARCH["unet"], ARCH["text"], max_positions=MAX_TOKENS)


def train_denoiser(pipe, latents: Tensor, scenes, *, steps: int, batch_size: int = 64, lr: float = 1e-3,
                   cond_drop: float = 0.1, min_snr_gamma: float = 5.0, ema_decay: float = 0.999, seed: int = 0,
                   log_every: int = 100, evaluate=None, evaluate_at=()) -> list:
    """Train pipe.unet and pipe.text_encoder jointly on scene latents [N, C, h, w], keeping an exponential
    moving average of their weights (task=digits' decay), which they hold at the end; returns the losses.
    `evaluate(step)` runs after each step of `evaluate_at` with the EMA weights swapped in (in eval mode)."""
    from src.models.diffusion_module import min_snr_weight
    from src.models.ema import EMA
    from src.models.sd_pipeline import encode_prompts

    rng = np.random.default_rng([seed, 1])
    g = torch.Generator().manual_seed(seed)
    alphas = pipe.scheduler.alphas_cumprod
    weight = min_snr_weight(alphas, min_snr_gamma)
    pair = torch.nn.ModuleList([pipe.unet, pipe.text_encoder])
    params, ema = list(pair.parameters()), EMA(pair, ema_decay)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    schedule = _schedule(optimizer, steps)
    pipe.unet.train()
    pipe.text_encoder.train()
    losses, start = [], time.perf_counter()
    for step in range(steps):
        idx = torch.randint(len(latents), (batch_size,), generator=g)
        prompts = ["" if rng.random() < cond_drop else
                   scene_prompt(_figures_of(scenes, i), int(scenes.background[i]), rng) for i in idx.tolist()]
        x0 = latents[idx]
        t = torch.randint(0, len(alphas), (batch_size,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        x_t = pipe.scheduler.add_noise(x0, noise, t)
        text = encode_prompts(pipe.tokenizer, pipe.text_encoder, prompts)
        pred = pipe.unet(x_t, t, encoder_hidden_states=text).sample
        loss = (weight[t] * (pred - noise).pow(2).mean((1, 2, 3))).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        ema.update(pair)
        losses.append(loss.item())
        if (step + 1) % log_every == 0 or step + 1 == steps:
            log.info("t2i step %d/%d: loss %.4f (%.0f s)", step + 1, steps, np.mean(losses[-log_every:]),
                     time.perf_counter() - start)
        if step + 1 in evaluate_at:
            live = {k: v.clone() for k, v in pair.state_dict().items()}
            pair.load_state_dict(ema.net.state_dict())
            pair.eval()
            evaluate(step + 1)
            pair.load_state_dict(live)
            pair.train()
    pair.load_state_dict(ema.net.state_dict())
    pair.eval()
    return losses


# ----------------------------------------------------------------------------- judging


@torch.no_grad()
def draw(pipe, prompts: list[str], *, seed: int = 0, steps: int = 25, guidance_scale: float = 4.0,
         batch_size: int = 80) -> np.ndarray:
    """uint8 [N, 32, 32, 3]: one image per prompt, seeded."""
    out = []
    for i in range(0, len(prompts), batch_size):
        g = torch.Generator().manual_seed(seed + i)
        images = pipe(prompts[i:i + batch_size], height=IMAGE_SIZE, width=IMAGE_SIZE, num_inference_steps=steps,
                      guidance_scale=guidance_scale, generator=g, output_type="np").images
        out.append((images * 255).round().clip(0, 255).astype(np.uint8))
    return np.concatenate(out)


def judge_t2i(pipe, judge, *, per_prompt: int = 2, seed: int = 0, steps: int = 25,
              guidance_scale: float = 4.0) -> dict[str, float]:
    """Prompts "a photo of a <colour> <figure>" for every figure and colour (per_prompt images each): the
    figure judge's accuracy on the digits and on the shapes, figure_colour's accuracy on all."""
    from src.eval.classifiers import classify

    cases = [(f, c) for f in range(len(FIGURES)) for c in range(len(COLOURS)) for _ in range(per_prompt)]
    prompts = [f"a photo of {figure_phrase(f, c, None)}" for f, c in cases]
    images = draw(pipe, prompts, seed=seed, steps=steps, guidance_scale=guidance_scale)
    figures = np.array([f for f, _ in cases])
    colours = np.array([c for _, c in cases])
    predicted = classify(judge, torch.from_numpy(images).permute(0, 3, 1, 2)).numpy()
    names = list(COLOURS)
    colour_ok = np.array([names.index(figure_colour(x)) == c for x, c in zip(images, colours)])
    digit = figures >= len(SHAPES)  # figure 6 + d is digit d
    return {"digit_acc": float((predicted == figures)[digit].mean()),
            "shape_acc": float((predicted == figures)[~digit].mean()),
            "colour_acc": float(colour_ok.mean())}


# ----------------------------------------------------------------------------- the build


def train_sd(folder: str | Path, *, cache_dir: str | Path, vae_steps: int = 1000, steps: int = 1800,
             batch_size: int = 64, seed: int = 0, judge: bool = True) -> Path:
    """Build difflab's tiny SD into `folder`: the VAE, then the UNet and text encoder on the embedded scenes'
    train split; saved with save_pretrained (a stock StableDiffusionPipeline folder) with difflab_build.json
    (arguments, stage times, and with `judge` the figure judge's judge_t2i scores of the result)."""
    from src.data.embedded_scenes import ensure_scenes, load_scenes
    from src.standins.random_clip import train_tokenizer

    start, folder = time.perf_counter(), Path(folder)
    root = ensure_scenes(Path(cache_dir).expanduser(), seed=seed)
    train = load_scenes(root, "train")
    images = downsample(train.images)
    log.info("training difflab's tiny Stable Diffusion on %d scenes: VAE %d steps, UNet + text %d steps of %d",
             len(train), vae_steps, steps, batch_size)
    vae = train_vae(images, steps=vae_steps, seed=seed)
    vae_seconds = time.perf_counter() - start
    latents = encode(vae, images)
    tokenizer = train_tokenizer(_corpus(np.random.default_rng(seed)), vocab_size=600)
    tokenizer.model_max_length = MAX_TOKENS
    pipe = build_pipeline(vae, tokenizer, seed=seed)
    losses = train_denoiser(pipe, latents, train, steps=steps, batch_size=batch_size, seed=seed)
    build = dict(version=SD_VERSION, image_size=IMAGE_SIZE, vae_steps=vae_steps, steps=steps,
                 batch_size=batch_size, seed=seed, vae_seconds=round(vae_seconds, 1),
                 train_seconds=round(time.perf_counter() - start, 1),
                 first_loss=float(np.mean(losses[:10])), last_loss=float(np.mean(losses[-50:])))
    if judge:
        figure_judge, judge_val = train_figure_judge(train, load_scenes(root, "val"), seed=seed)
        pipe.set_progress_bar_config(disable=True)
        build.update(judge_val_acc=judge_val, **judge_t2i(pipe, figure_judge, per_prompt=1, seed=seed))
        log.info("tiny SD judged: %s", {k: build[k] for k in ("digit_acc", "shape_acc", "colour_acc")})
    pipe.save_pretrained(folder, safe_serialization=True)
    (folder / "difflab_build.json").write_text(json.dumps(build, indent=2) + "\n")
    return folder


def embedded_sd(cache_dir: str | Path, *, vae_steps: int = 1000, steps: int = 1800, seed: int = 0,
                judge: bool = True) -> Path:
    """<cache_dir>/sd/difflab-sd-v<version>-seed<seed>-vae<vae_steps>-steps<steps>: difflab's tiny SD, built
    once (model=sd with model.weights=null); `judge` adds its scores to difflab_build.json."""
    from src.cache import build_once

    cache_dir = Path(cache_dir).expanduser()
    return build_once(cache_dir / "sd" / f"difflab-sd-v{SD_VERSION}-seed{seed}-vae{vae_steps}-steps{steps}",
                      lambda tmp: train_sd(tmp, cache_dir=cache_dir, vae_steps=vae_steps, steps=steps, seed=seed,
                                               judge=judge),
                      what=f"difflab's tiny Stable Diffusion ({vae_steps} + {steps} steps)")
