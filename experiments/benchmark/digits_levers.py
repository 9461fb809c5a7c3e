"""The speed levers of task=digits, measured in one process, interleaved, best of --repeats; prints a table.

    python experiments/benchmark/digits_levers.py [--sample-batch 400] [--train-batch 64] [--repeats 4]

Sampling: one guided denoiser call (the UNet at 2 x batch under classifier-free guidance) eager fp32,
torch.compile fp32, and, where the CPU has AVX512-BF16 or AMX, bf16 autocast eager and compiled. Training:
one optimizer step (forward, backward, AdamW) eager and compiled, fp32 and (same condition) bf16 autocast.
Compile time (the first call) is reported apart. The model is conf/model/digits_unet.yaml's net.
"""
from __future__ import annotations

import argparse
import contextlib
import platform
import time

import torch

from src.config import compose_config
from src.runtime import cpu_has_bf16, tune_allocator


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sample-batch", type=int, default=400)
    p.add_argument("--train-batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=4)
    args = p.parse_args()
    tuned = tune_allocator()
    from hydra.utils import instantiate

    cfg = compose_config(["task=digits", "paths.output_dir=/tmp/bench"])
    torch.manual_seed(0)
    net = instantiate(cfg.model.net)
    schedule = instantiate(cfg.scheduler)
    bf16 = cpu_has_bf16()
    amp = lambda on: torch.autocast("cpu", dtype=torch.bfloat16) if on else contextlib.nullcontext()  # noqa: E731

    # ---- sampling: one guided call = the UNet on 2 x batch (conditional and null rows)
    b = 2 * args.sample_batch
    x, t = torch.randn(b, 3, 28, 28), torch.randint(0, schedule.num_steps, (b,))
    c = torch.stack([torch.randint(0, 10, (b,)), torch.randint(0, 2, (b,))], 1)
    net.eval()
    compiled = torch.compile(net)
    sample_variants = {"eager fp32": (net, False), "compiled fp32": (compiled, False)}
    if bf16:
        sample_variants |= {"eager bf16": (net, True), "compiled bf16": (compiled, True)}
    first = {}
    with torch.no_grad():
        for name, (model, on) in sample_variants.items():
            with amp(on):
                first[f"sample {name}"] = timed(lambda: model(x, t, c))
        best = {name: float("inf") for name in sample_variants}
        for _ in range(args.repeats):  # interleaved: drift in the machine's speed hits every variant alike
            for name, (model, on) in sample_variants.items():
                with amp(on):
                    best[name] = min(best[name], timed(lambda: model(x, t, c)))
    rows = [(f"guided denoiser call, {args.sample_batch} images ({b} UNet rows): {name}", s, best["eager fp32"] / s)
            for name, s in best.items()]

    # ---- training: one step of the module's loss, backward and AdamW
    module = instantiate(cfg.model)(schedule=schedule)
    module.train()
    batch = (torch.rand(args.train_batch, 3, 28, 28) * 2 - 1, torch.randint(0, 10, (args.train_batch,)),
             torch.randint(0, 2, (args.train_batch,)))
    opt = torch.optim.AdamW(module.net.parameters(), lr=1e-4)
    train_compiled = torch.compile(module.net)

    def step(model, on):
        with amp(on):
            loss = module._loss(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    train_variants = {"eager fp32": (module.net, False), "compiled fp32": (train_compiled, False),
                      "eager bf16": (module.net, True)}
    if bf16:
        train_variants["compiled bf16"] = (train_compiled, True)
    for name, (model, on) in train_variants.items():
        first[f"train {name}"] = timed(lambda: step(model, on))
    best = {name: float("inf") for name in train_variants}
    for _ in range(args.repeats):
        for name, (model, on) in train_variants.items():
            best[name] = min(best[name], timed(lambda: step(model, on)))
    rows += [(f"training step, batch {args.train_batch}: {name}", s, best["eager fp32"] / s) for name, s in best.items()]

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}, tuned malloc: {tuned}, AVX512-BF16/AMX: {bf16}; net "
          f"{list(cfg.model.net.block_out_channels)}\n")
    print("| measurement | best of %d (s) | speed-up vs eager fp32 |\n|---|---:|---:|" % args.repeats)
    for name, s, up in rows:
        print(f"| {name} | {s:.3f} | {up:.2f}x |")
    print("\n| first call (compile included) | s |\n|---|---:|")
    for name, s in first.items():
        print(f"| {name} | {s:.1f} |")


if __name__ == "__main__":
    main()
