"""Images/s of task=clip's zero-shot pipeline against a plain transformers loop; prints a markdown table.

    python experiments/benchmark/clip_speed.py [--images 256] [--batch 64] [--repeats 2] [--weights <CLIP folder or Hub id>]

Both classify the same embedded-digit val images (28x28 PNGs, upscaled to the model's 224x224) with the
same model and batch size, from the files on disk to predicted labels:
- plain: per batch, open the PNGs, `processor(images=[PIL ...])`, `get_image_features` under no_grad,
  normalise, multiply by the text classifier, argmax;
- ours: task=clip's code: a DataLoader whose workers decode, resize and crop to uint8 and normalise per
  batch (a lookup table), `encode_images` under inference_mode, `zero_shot_logits`, argmax.
With no --weights the model is a randomly initialised CLIP of ViT-B/32's shapes (CLIPConfig's
defaults, 151M parameters): speed does not depend on the weights. Variants run alternately and the best
of --repeats passes is kept, since other work on the machine slows single passes.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from src.data.clip_data import ImageSet, image_loader, read_embedded_digits
from src.models.clip import load_clip
from src.models.clip_zeroshot import build_text_classifier, encode_images, text_encoder, zero_shot_logits
from src.runtime import tune_allocator


def random_vit_b32():
    """A random CLIPModel of ViT-B/32's shapes with CLIP's default image processor and a trained tokenizer."""
    from transformers import CLIPImageProcessor, CLIPModel, CLIPProcessor

    from src.standins.random_clip import random_clip_config, train_tokenizer

    tokenizer = train_tokenizer()
    torch.manual_seed(0)
    model = CLIPModel(random_clip_config(tokenizer, "vit-b-32")).eval()
    return model, CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer)


def plain_loop(model, processor, files: list[Path], classifier: torch.Tensor, batch: int) -> torch.Tensor:
    """The transformers way: the processor on a list of PIL images per batch, then get_image_features."""
    preds = []
    for i in range(0, len(files), batch):
        images = [Image.open(f).convert("RGB") for f in files[i:i + batch]]
        inputs = processor(images=images, return_tensors="pt")
        with torch.no_grad():
            f = model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
        preds.append((F.normalize(f, dim=-1) @ classifier).argmax(dim=1))
    return torch.cat(preds)


def ours(model, processor, images: ImageSet, classifier: torch.Tensor, batch: int, workers: int) -> torch.Tensor:
    """task=clip's path (src/tasks/clip.py) from files to predictions."""
    loader = image_loader(images, processor.image_processor, batch, workers)
    features, _, _ = encode_images(model, loader, torch.device("cpu"))
    return zero_shot_logits(features, classifier).argmax(dim=1)


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def preprocessing_ms(processor, images: ImageSet, batch: int, repeats: int = 3) -> tuple[float, float]:
    """ms per image from files to pixel_values, without the model: the processor vs our dataset + collate."""
    from src.data.clip_data import ClipPixels, open_rgb

    files, pixels = list(images.files), ClipPixels(processor.image_processor)
    plain = lambda: [processor(images=[Image.open(f).convert("RGB") for f in files[i:i + batch]],  # noqa: E731
                               return_tensors="pt") for i in range(0, len(files), batch)]
    mine = lambda: [pixels.collate([(pixels.crop_uint8(open_rgb(f)), 0, 0) for f in files[i:i + batch]])  # noqa: E731
                    for i in range(0, len(files), batch)]
    best = [min(timed(fn)[0] for _ in range(repeats)) for fn in (plain, mine)]
    return 1e3 * best[0] / len(files), 1e3 * best[1] / len(files)


def timed(fn) -> tuple[float, torch.Tensor]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def pick_images(cache_dir: Path, n: int) -> ImageSet:
    """n embedded-digit val images spread over both domains and all digits."""
    digits = read_embedded_digits(cache_dir, seed=0, n_train=5000, n_val=1000, domains=["mnistm", "svhn"])
    pick = list(range(0, len(digits), max(1, len(digits) // n)))[:n]
    return ImageSet(digits.root, tuple(digits.files[i] for i in pick), tuple(digits.labels[i] for i in pick),
                    digits.class_names)


def best_times(variants: dict, repeats: int) -> tuple[dict[str, float], bool]:
    """Best wall time of each variant over `repeats` alternating passes; whether all predict the same."""
    best, preds = {k: float("inf") for k in variants}, {}
    for _ in range(repeats):
        for key, fn in variants.items():
            seconds, preds[key] = timed(fn)
            best[key] = min(best[key], seconds)
    first = next(iter(preds.values()))
    return best, all(torch.equal(p, first) for p in preds.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--weights", default=None, help="a CLIP folder saved with save_pretrained, else a Hub id in the "
                    "local Hugging Face cache (as model.weights)")
    ap.add_argument("--cache-dir", default=os.environ.get("DIFFLAB_CACHE", str(Path.home() / ".cache/difflab")))
    args = ap.parse_args()
    tune_allocator()  # as src.run does
    real = args.weights
    model, processor = load_clip(real) if real else random_vit_b32()
    images, b = pick_images(Path(args.cache_dir), args.images), args.batch
    encode = text_encoder(model, processor.tokenizer, torch.device("cpu"))
    t_text, classifier = timed(lambda: build_text_classifier(encode, images.class_names, ["A photo of {}."]))
    pre_plain, pre_ours = preprocessing_ms(processor, images, b)
    plain_loop(model, processor, list(images.files[:b]), classifier, b)  # warm-up
    variants = {"plain": lambda: plain_loop(model, processor, list(images.files), classifier, b)}
    for w in args.workers:
        variants[w] = lambda w=w: ours(model, processor, images, classifier, b, w)
    best, agree = best_times(variants, args.repeats)

    n, weights = len(images), real or "random ViT-B/32-shaped CLIPModel (151M)"
    print(f"\n{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} torch "
          f"threads, load average {os.getloadavg()[0]:.2f}; model: {weights}; {n} embedded-digit PNGs "
          f"(28x28 -> 224x224), batch {b}, best of {args.repeats}; same predictions: {agree}; text classifier "
          f"built once in {t_text:.2f} s\n")
    print("| pipeline | images/s | vs plain |\n|---|---:|---:|")
    print(f"| plain transformers loop (processor on PIL list, get_image_features, no_grad) | "
          f"{n / best['plain']:.1f} | |")
    for w in args.workers:
        print(f"| ours: DataLoader, num_workers={w} + batched encode + classifier | {n / best[w]:.1f} | "
              f"{100 * (best['plain'] / best[w] - 1):+.1f}% |")
    print(f"| preprocessing only (files -> pixel_values): processor | {1e3 / pre_plain:.0f} "
          f"({pre_plain:.2f} ms/image) | |")
    print(f"| preprocessing only: ours, dataset + collate (same pixel_values bit for bit) | {1e3 / pre_ours:.0f} "
          f"({pre_ours:.2f} ms/image) | {100 * (pre_plain / pre_ours - 1):+.1f}% |")


if __name__ == "__main__":
    main()
