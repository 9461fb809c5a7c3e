"""Speed of the digits pipeline against bare baselines; prints a markdown table.

    python experiments/benchmark/digits_speed.py [--batch 100] [--steps 50] [--train-steps 30]

Rows: the DDIM loop against the same number of bare UNet forwards (its overhead), guided sampling of B
images against unguided sampling of 2B (same forward batch), training images/s under Lightning against
a plain PyTorch loop (same model, batch, optimizer), and the wall time of composing a config.
"""
from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from src.config import compose_config
from src.diffusion.guidance import ClassifierFreeGuidance
from src.diffusion.samplers import ddim_sample
from src.runtime import tune_allocator

ROOT = Path(__file__).resolve().parents[2]


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def sampling_rows(net, schedule, batch: int, steps: int) -> list[tuple[str, float, float]]:
    c = torch.randint(0, 10, (batch, 2)) % torch.tensor([10, 2])
    x = torch.randn(batch, 3, 28, 28)
    ts = torch.full((batch,), 500)
    bare = best_of(lambda: [net(x, ts, c) for _ in range(steps)], 2)
    unguided = lambda n: ddim_sample(ClassifierFreeGuidance(net, net.null_cond, 1.0), torch.randn(n, 3, 28, 28),  # noqa: E731
                                     schedule, num_steps=steps, cond=torch.cat([c] * (n // batch)))
    loop = best_of(lambda: unguided(batch), 2)
    guided = best_of(lambda: ddim_sample(ClassifierFreeGuidance(net, net.null_cond, 3.0), torch.randn(batch, 3, 28, 28),
                                         schedule, num_steps=steps, cond=c), 2)
    double = best_of(lambda: unguided(2 * batch), 2)
    return [
        (f"{steps} bare UNet forwards, batch {batch}", bare, 0.0),
        (f"DDIM {steps} steps, batch {batch} (loop overhead %)", loop, 100 * (loop / bare - 1)),
        (f"DDIM guided (w=3), {batch} images", guided, 0.0),
        (f"DDIM unguided, {2 * batch} images (guided vs this, %)", double, 100 * (guided / double - 1)),
    ]


def training_rows(cfg, steps: int) -> list[tuple[str, float, float]]:
    import lightning.pytorch as pl
    from hydra.utils import instantiate
    from torch.utils.data import DataLoader, TensorDataset

    def build_module():
        return instantiate(cfg.model)(schedule=instantiate(cfg.scheduler))

    b = cfg.data.batch_size
    data = TensorDataset(torch.rand(b * steps, 3, 28, 28) * 2 - 1, torch.randint(0, 10, (b * steps,)),
                         torch.randint(0, 2, (b * steps,)))
    loader = DataLoader(data, batch_size=b, shuffle=True, drop_last=True)
    torch.manual_seed(0)
    module = build_module()
    trainer = pl.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=1.0)
    t0 = time.perf_counter()
    trainer.fit(module, loader)
    lit = b * steps / (time.perf_counter() - t0)
    torch.manual_seed(0)
    module = build_module()
    opt = torch.optim.AdamW(module.net.parameters(), lr=cfg.model.lr)
    t0 = time.perf_counter()
    for batch in loader:
        loss = module._loss(module.net, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.net.parameters(), 1.0)
        opt.step()
        module.ema.update(module.net)
    plain = b * steps / (time.perf_counter() - t0)
    return [(f"plain PyTorch training, batch {b} (images/s)", plain, 0.0),
            (f"Lightning training, batch {b} (images/s; vs plain, %)", lit, 100 * (lit / plain - 1))]


def compose_row() -> tuple[str, float, float]:
    cmd = [sys.executable, "-m", "src.run", "task=digits", "--cfg", "job"]
    wall = best_of(lambda: subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True))
    return ("python -m src.run task=digits --cfg job (s)", wall, 0.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--train-steps", type=int, default=30)
    args = p.parse_args()
    tuned = tune_allocator()
    cfg = compose_config(["task=digits", "paths.output_dir=/tmp/bench"])
    from hydra.utils import instantiate

    torch.manual_seed(0)
    net, schedule = instantiate(cfg.model.net).eval(), instantiate(cfg.scheduler)
    with torch.no_grad():
        rows = sampling_rows(net, schedule, args.batch, args.steps)
    rows += training_rows(cfg, args.train_steps)
    rows.append(compose_row())
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"tuned malloc: {tuned}; model {cfg.model.net.block_out_channels}\n")
    print("| measurement | value (s or images/s) | relative |\n|---|---:|---:|")
    for name, value, rel in rows:
        print(f"| {name} | {value:.2f} | {rel:+.1f}% |" if rel else f"| {name} | {value:.2f} | |")


if __name__ == "__main__":
    main()
