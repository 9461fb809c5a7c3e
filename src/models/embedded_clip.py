"""difflab's own tiny CLIP: a transformers CLIPModel + CLIPProcessor trained contrastively, once per cache, on
the embedded digits (both domains, captions naming the digit and sometimes the domain) and the embedded scenes
(captions naming figures, colours, styles and backgrounds). task=clip uses it with model.weights=null; it is
meant to become the default of task=clip and of task=ti's scorer where no real CLIP is named (issue 15), the
course's ViT-B/32 one switch away (+experiment=course).

Captions are drawn afresh at every step from each image's attributes, so a caption may leave things out
("a photo of seven" fits every seven, "a house number seven" only SVHN's). The loss is CLIP's symmetric
cross-entropy with every caption that fits an image counted as its positive (uniform targets over them):
with ten digits in a batch of hundreds, treating same-class pairs as negatives would fight the objective.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from src.data.clip_data import DIGIT_NAMES
from src.data.embedded_scenes import (BACKGROUNDS, COLOURS, FIGURES, STYLES, caption as scene_caption,
                                      ensure_scenes, load_scenes)

log = logging.getLogger(__name__)

# The folder name's version: bump when the same arguments would train another model.
CLIP_VERSION = 2
ARCH = dict(text=dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4),
            vision=dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                        image_size=32, patch_size=8),
            projection_dim=64)
# Caption frames: plain descriptions of a photo; the zero-shot prompt sets (conf/prompt) are not copied here.
FRAMES = ("{}", "a photo of {}", "a picture of {}", "an image of {}", "a close-up of {}", "a blurry photo of {}",
          "a bright picture of {}", "a dark image of {}", "a small photo of {}", "a cropped image of {}",
          "a pixelated photo of {}", "a rendering of {}", "a drawing of {}", "art of {}", "there is {}")
DOMAIN_PHRASES = {"mnistm": ("a handwritten {} on a photo", "an mnist-m {}", "a handwritten {}"),
                  "svhn": ("a house number {}", "a street view {}", "a printed {}")}
# Attribute columns of an image: kind (0 digit photo, 1 scene), digit, domain, background, n_figures, then
# figure, colour, style of each of two figures; -1 where absent.
N_ATTRS = 11


def digit_caption(digit: int, domain: int, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """(caption, mention mask [N_ATTRS]) for a digit photo: the digit always, the domain one time in three."""
    name = DIGIT_NAMES[digit]
    mention = np.zeros(N_ATTRS, bool)
    mention[:2] = True
    if rng.random() < 1 / 3:
        phrases = DOMAIN_PHRASES[("mnistm", "svhn")[domain]]
        what = phrases[rng.integers(len(phrases))].format(name)
        mention[2] = True
    else:
        what = (name, f"the digit {name}", f"the number {name}", f"a {name}", f"digit {name}")[rng.integers(5)]
    return _framed(what, rng), mention


def scene_caption_mask(attrs: np.ndarray, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """(caption, mention mask) for a scene whose attribute row is `attrs` (see N_ATTRS)."""
    n = int(attrs[4])
    figures = [tuple(int(v) for v in attrs[5 + 3 * k: 8 + 3 * k]) for k in range(n)]
    text, named_colour, named_background = scene_caption(figures, int(attrs[3]), rng)
    mention = np.zeros(N_ATTRS, bool)
    mention[0], mention[3], mention[4] = True, named_background, True
    for k, (_, _, style) in enumerate(figures):
        mention[5 + 3 * k] = True
        mention[6 + 3 * k] = named_colour[k]
        mention[7 + 3 * k] = STYLES[style] == "outlined"  # a filled shape is not said to be
    return _framed(text, rng), mention


def _framed(what: str, rng: np.random.Generator) -> str:
    text = FRAMES[rng.integers(len(FRAMES))].format(what)
    return text + "." if rng.random() < 0.5 else text


def fits(attrs: Tensor, values: Tensor, mention: Tensor) -> Tensor:
    """[B, B] bool: caption j fits image i when every attribute caption j names equals image i's."""
    same = attrs[:, None, :] == values[None, :, :]
    return (same | ~mention[None, :, :]).all(-1)


def multi_positive_loss(logits: Tensor, positive: Tensor) -> Tensor:
    """CLIP's symmetric cross-entropy with uniform targets over each row's (column's) positives."""
    target = positive.float()
    image_to_text = -(target / target.sum(1, keepdim=True) * F.log_softmax(logits, 1)).sum(1).mean()
    text_to_image = -(target / target.sum(0, keepdim=True) * F.log_softmax(logits, 0)).sum(0).mean()
    return (image_to_text + text_to_image) / 2


def _corpus(rng: np.random.Generator, n: int = 4000) -> list[str]:
    """Captions for the tokenizer's BPE merges: the training captions' vocabulary."""
    words = " ".join([*FIGURES, *COLOURS, *BACKGROUNDS, *STYLES, "next to on the a an of digit number"])
    out = [words] * 20
    for k in range(n):
        out.append(digit_caption(int(rng.integers(10)), int(rng.integers(2)), rng)[0])
        attrs = np.full(N_ATTRS, -1)
        attrs[:5] = (1, -1, -1, rng.integers(len(BACKGROUNDS)), 1)
        attrs[5:8] = (rng.integers(len(FIGURES)), rng.integers(len(COLOURS)), rng.integers(len(STYLES)))
        out.append(scene_caption_mask(attrs, rng)[0])
    return out


def _cropped(images: np.ndarray, pixels) -> np.ndarray:
    """uint8 [N, h, w, 3] -> [N, H, W, 3] resized and cropped as the processor does (ClipPixels.crop_uint8)."""
    from PIL import Image

    return np.stack([pixels.crop_uint8(Image.fromarray(x)) for x in images])


def _digits(cache_dir: Path, split: str, pixels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The embedded digits (task=digits' default set) of both domains: images, labels, domain indices."""
    from src.data.digits import DOMAINS, load_digit_split
    from src.data.embedded_digits import ensure_embedded_digits

    root = ensure_embedded_digits(cache_dir, seed=0, n_train=5000, n_val=1000)
    parts = [load_digit_split(root / domain, split) for domain in DOMAINS]
    images = np.concatenate([_cropped(x.permute(0, 2, 3, 1).numpy(), pixels) for x, _ in parts])
    labels = np.concatenate([y.numpy() for _, y in parts])
    domains = np.concatenate([np.full(len(y), d) for d, (_, y) in enumerate(parts)])
    return images, labels, domains


def _training_set(cache_dir: Path, pixels, seed: int) -> tuple[np.ndarray, Tensor]:
    """uint8 images [N, H, W, 3] (as the processor crops them) and attributes [N, N_ATTRS]: the embedded
    digits' train split of both domains, then the embedded scenes' train split."""
    x, y, domain = _digits(cache_dir, "train", pixels)
    images, attrs = [x], []
    a = np.full((len(y), N_ATTRS), -1, np.int64)
    a[:, 0], a[:, 1], a[:, 2] = 0, y, domain
    attrs.append(a)
    scenes = load_scenes(ensure_scenes(cache_dir, seed=seed), "train")
    images.append(_cropped(scenes.images, pixels))
    a = np.full((len(scenes), N_ATTRS), -1, np.int64)
    a[:, 0], a[:, 3], a[:, 4] = 1, scenes.background, scenes.n_figures
    a[:, 5:] = scenes.figures.reshape(len(scenes), -1)
    attrs.append(a)
    return np.concatenate(images), torch.from_numpy(np.concatenate(attrs))


def digits_top1(model, tokenizer, images: np.ndarray, labels: np.ndarray, pixels,
                template: str = "A photo of {}.") -> float:
    """Zero-shot top-1 on digit images (uint8 [N, H, W, 3]) with one prompt template, as task=clip scores."""
    from src.models.clip_zeroshot import build_text_classifier, text_encoder, zero_shot_logits

    classifier = build_text_classifier(text_encoder(model, tokenizer, torch.device("cpu")), DIGIT_NAMES, [template])
    with torch.inference_mode():
        features = torch.cat([model.get_image_features(pixel_values=pixels.normalize(images[i:i + 500])).pooler_output
                              for i in range(0, len(images), 500)])
    predictions = zero_shot_logits(features, classifier).argmax(1).numpy()
    return float((predictions == labels).mean())


def train_clip(folder: str | Path, *, cache_dir: str | Path, steps: int = 1500, batch_size: int = 256,
               lr: float = 3e-3, digit_share: float = 0.75, seed: int = 0,
               logit_scale_init: float = 100.0) -> Path:
    """Train the tiny CLIP and save it (CLIPModel + CLIPProcessor, save_pretrained) with difflab_build.json
    (its arguments, time and zero-shot top-1 on the embedded digits' val set) into `folder`.

    The logit scale starts at its ceiling, 100 (CLIP starts at 1/0.07 and learns it): at 1/0.07 the towers
    sit at chance for ~300 steps, and on the embedded digits' val set 1,000 steps read 74.3% at 1/0.07, 85.9%
    at 1/0.03 and 88.1% at 100; 1,500 steps at 100 read 91.6% (one-thread trials, 2026-12-07)."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from src.data.clip_data import ClipPixels
    from src.standins.random_clip import train_tokenizer

    start = time.perf_counter()
    folder, cache_dir = Path(folder), Path(cache_dir).expanduser()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(_corpus(rng), vocab_size=1000, folder=folder / "bpe")
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    config = CLIPConfig(text_config=dict(vocab_size=len(tokenizer), max_position_embeddings=77, **ids,
                                         **ARCH["text"]),
                        vision_config=ARCH["vision"], projection_dim=ARCH["projection_dim"],
                        logit_scale_init_value=math.log(logit_scale_init))
    model = CLIPModel(config)
    size = ARCH["vision"]["image_size"]
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": size},
                                                                 crop_size={"height": size, "width": size}),
                              tokenizer=tokenizer)
    pixels = ClipPixels(processor.image_processor)  # the processor's pixel_values, bit for bit
    images, attrs = _training_set(cache_dir, pixels, seed)
    val_images, val_labels, _ = _digits(cache_dir, "val", pixels)
    n_digits = int((attrs[:, 0] == 0).sum())
    log.info("training difflab's tiny CLIP (%.1fM parameters) on %d digit photos + %d scenes, %d steps",
             sum(p.numel() for p in model.parameters()) / 1e6, n_digits, len(attrs) - n_digits, steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    model.train()
    losses = []
    for step in range(steps):
        n = int(round(batch_size * digit_share))  # digit photos, then scenes
        idx = torch.cat([torch.randint(n_digits, (n,)), torch.randint(n_digits, len(attrs), (batch_size - n,))])
        batch_attrs = attrs[idx]
        texts, masks = zip(*(digit_caption(int(a[1]), int(a[2]), rng) if a[0] == 0
                             else scene_caption_mask(a.numpy(), rng) for a in batch_attrs))
        pixel_values = pixels.normalize(images[idx.numpy()])  # [B, 3, H, W]
        tokens = tokenizer(list(texts), padding=True, return_tensors="pt")
        out = model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask, pixel_values=pixel_values)
        positive = fits(batch_attrs, batch_attrs, torch.from_numpy(np.stack(masks)))  # [B images, B captions]
        loss = multi_positive_loss(out.logits_per_image, positive)
        losses.append(loss.item())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if (step + 1) % 250 == 0 or step + 1 == steps:
            model.eval()
            top1 = digits_top1(model, tokenizer, val_images, val_labels, pixels)
            model.train()
            log.info("clip step %d/%d: loss %.3f, zero-shot top-1 on the digits' val set %.3f (%.0f s)", step + 1,
                     steps, loss.item(), top1, time.perf_counter() - start)
    model.eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    build = dict(version=CLIP_VERSION, steps=steps, batch_size=batch_size, lr=lr, digit_share=digit_share,
                 seed=seed, logit_scale_init=logit_scale_init,
                 train_seconds=round(time.perf_counter() - start, 1), digits_val_top1=top1,
                 first_loss=float(np.mean(losses[:10])), last_loss=float(np.mean(losses[-10:])))
    (folder / "difflab_build.json").write_text(json.dumps(build, indent=2) + "\n")
    return folder


def embedded_clip(cache_dir: str | Path, *, steps: int = 1500, seed: int = 0) -> Path:
    """<cache_dir>/clip/difflab-clip-v<version>-seed<seed>-steps<steps>: difflab's tiny CLIP, trained once."""
    from src.cache import build_once

    cache_dir = Path(cache_dir).expanduser()
    return build_once(cache_dir / "clip" / f"difflab-clip-v{CLIP_VERSION}-seed{seed}-steps{steps}",
                      lambda tmp: train_clip(tmp, cache_dir=cache_dir, steps=steps, seed=seed),
                      what=f"difflab's tiny CLIP ({steps} steps)")
