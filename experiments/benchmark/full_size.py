"""Time and memory of the real architectures at their real sizes, random weights (src/standins), on this machine.

    python experiments/benchmark/full_size.py            # prints a markdown table; about 15 min on 2 CPU cores

Each measurement runs in a process of its own, so its peak resident memory (ru_maxrss) is its own: building
and saving Stable Diffusion v1.4 (diffusers folder), one textual-inversion training step at 512x512 with and
without gradient checkpointing, in fp32 and in bf16-mixed (trainer=gpu's precision: the frozen UNet and VAE
held in bf16, as diffusers' textual_inversion example does), one guided SD inference step at 512x512, CLIP ViT-B/32 images per second, one
step of the course's 113.7M-parameter face UNet at 256x256, and the memory of the frozen UNet and VAE
weights as textual inversion holds them in fp32 and under bf16-mixed. Timed steps follow a warm-up step.
"""
from __future__ import annotations

import multiprocessing as mp
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def build_sd(folder: str) -> dict:
    from src.standins.sd_v1 import write_sd_v1

    t0 = time.perf_counter()
    write_sd_v1(folder)
    return {"seconds": time.perf_counter() - t0}


def ti_step(folder: str, checkpointing: bool, precision: str = "32-true", steps: int = 2) -> dict:
    import torch

    from src.models.sd_pipeline import load_sd_pipeline
    from src.models.textual_inversion import TextualInversionModule, expand_placeholder, frozen_dtype

    half = frozen_dtype(precision)  # bf16-mixed: frozen UNet and VAE held in bf16, the step under autocast
    module = TextualInversionModule(load_sd_pipeline(folder), "<new1>", "cat", gradient_checkpointing=checkpointing,
                                    frozen_dtype=half)
    module.train()
    batch = (torch.rand(1, 3, 512, 512) * 2 - 1, [f"a photo of a {expand_placeholder('<new1>', '<new1>', 1)}"])
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=half or torch.bfloat16, enabled=half is not None):
            loss = module.training_step(batch, 0)
        loss.backward()
        times.append(time.perf_counter() - t0)
    return {"seconds": min(times[1:])}


def frozen(folder: str, precision: str) -> dict:
    """The bytes of the frozen UNet's and VAE's weights once the TI module holds them (the time column)."""
    from src.models.sd_pipeline import load_sd_pipeline
    from src.models.textual_inversion import TextualInversionModule, frozen_dtype

    module = TextualInversionModule(load_sd_pipeline(folder), "<new1>", "cat", frozen_dtype=frozen_dtype(precision))
    nbytes = sum(p.numel() * p.element_size() for m in (module.unet, module.vae) for p in m.parameters())
    return {"gib": nbytes / 2**30}


def sd_step(folder: str) -> dict:
    import torch

    from src.models.sd_pipeline import load_sd_pipeline

    pipe = load_sd_pipeline(folder)
    times = {}
    for n in (1, 3):  # the difference of 3 and 1 steps: the UNet steps without text encoding and VAE decoding
        t0 = time.perf_counter()
        pipe("a photo of a cat", num_inference_steps=n, guidance_scale=7.5, generator=torch.Generator().manual_seed(0))
        times[n] = time.perf_counter() - t0
    return {"seconds": (times[3] - times[1]) / 2}


def clip_rate(n_images: int = 64, batch: int = 32) -> dict:
    import torch

    from src.models.clip import load_clip
    from src.standins.random_clip import write_random_clip

    with tempfile.TemporaryDirectory() as tmp:
        model, _ = load_clip(str(write_random_clip(Path(tmp), size="vit-b-32")))
    x = torch.rand(batch, 3, 224, 224)
    with torch.no_grad():
        model.get_image_features(pixel_values=x)  # warm-up
        t0 = time.perf_counter()
        for _ in range(n_images // batch):
            model.get_image_features(pixel_values=x)
    return {"images_per_s": n_images / (time.perf_counter() - t0)}


def face_step() -> dict:
    import torch

    from src.models.face_unet import FaceUNet
    from src.standins.course_face import course_face_weights

    net = course_face_weights(FaceUNet()).eval()
    x, t = torch.randn(1, 3, 256, 256), torch.tensor([500])
    times = []
    with torch.no_grad():
        for _ in range(3):
            t0 = time.perf_counter()
            net(x, t)
            times.append(time.perf_counter() - t0)
    return {"seconds": min(times[1:])}


def _child(fn, args, queue) -> None:
    result = fn(*args)
    result["peak_gib"] = peak_gib()
    queue.put(result)


def measure(fn, *args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    import torch

    # Without AVX-512 (BF16) the CPU runs bf16 convolutions in a slow fallback: one bf16 TI step did not end in
    # 10 minutes on a 2-core AVX2 EPYC, so the bf16 rows are measured only where bf16 is native.
    native_bf16 = torch.backends.cpu.get_cpu_capability().startswith("AVX512")
    with tempfile.TemporaryDirectory() as tmp:
        folder = str(Path(tmp) / "sd-v1-4")
        rows = [("build + save SD v1.4 (1.07B parameters, diffusers folder)", measure(build_sd, folder), "s"),
                ("textual inversion step, 512x512, batch 1", measure(ti_step, folder, False), "s/step"),
                ("  the same with gradient checkpointing", measure(ti_step, folder, True), "s/step"),
                *([("  the same, bf16-mixed (frozen UNet and VAE in bf16)",
                    measure(ti_step, folder, False, "bf16-mixed"), "s/step"),
                   ("  bf16-mixed and gradient checkpointing", measure(ti_step, folder, True, "bf16-mixed"), "s/step")]
                  if native_bf16 else []),
                ("frozen UNet + VAE weights as textual inversion holds them, fp32", measure(frozen, folder, "32-true"),
                 "GiB"),
                ("  the same, bf16-mixed (trainer=gpu)", measure(frozen, folder, "bf16-mixed"), "GiB"),
                ("SD inference step, 512x512, guided (UNet batch 2)", measure(sd_step, folder), "s/step"),
                ("CLIP ViT-B/32 image encoder, batch 32", measure(clip_rate), "images/s"),
                ("course face UNet (113.7M), 256x256, batch 1", measure(face_step), "s/step")]
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}\n")
    print("| measurement | time | peak resident memory |\n|---|---:|---:|")
    for name, result, unit in rows:
        value = result.get("seconds", result.get("images_per_s", result.get("gib")))
        # the weights are memory-mapped from safetensors: a process that never reads them has a low peak
        peak = "-" if "gib" in result else f"{result['peak_gib']:.1f} GiB"
        print(f"| {name} | {value:.2f} {unit} | {peak} |")
    if not native_bf16:
        print("| textual inversion step, bf16-mixed | not measured: no AVX-512 on this CPU (slow bf16 fallback) | |")


if __name__ == "__main__":
    main()
