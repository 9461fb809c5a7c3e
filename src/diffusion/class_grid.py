"""The per-class sample grid of a (digit, domain)-conditioned model, with the frames of a denoising process."""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn

from src.diffusion.samplers import num_sampling_steps
from src.diffusion.schedules import NoiseSchedule
from src.progress import Progress


def frame_steps(num_steps: int, frames: int) -> list[int]:
    """Step indices whose x_t is kept: evenly spaced, the last step (x_0) included; x_T is frame 0."""
    return sorted({round(k * (num_steps - 1) / (frames - 1)) for k in range(1, frames)})


def frame_labels(timesteps: list[int]) -> list[str]:
    """Column titles of the process figure: x_T, then the timestep t of each kept x_t, then x_0."""
    return ["$x_T$"] + [f"t={t}" for t in timesteps[:-1]] + ["$x_0$"]


@torch.no_grad()
def sample_class_grid(net: nn.Module, schedule: NoiseSchedule, sample, guidance, *, domain_ids: list[int],
                      num_classes: int, per_class: int, batch_size: int, process_frames: int, seed: int,
                      device: torch.device, progress: Optional[Callable[[str, int], Progress]] = None,
                      ) -> tuple[Tensor, Tensor, list[int]]:
    """Returns samples [D, num_classes, per_class, C, H, W], process frames [D, F, C, H, W] and the
    timestep after which each frame but the first (x_T) was taken. `sample` is a configured sampler
    (sample(denoiser, x_T, schedule, cond=, generator=, callback=)), `guidance` the guidance wrapper
    (guidance(denoiser, null_cond)), `domain_ids` the domain id of each of the D rows of the grid, and
    `progress(stage, total)` a Progress counting denoiser steps (default: src.progress.Progress).

    Row order is (domain, digit, index); x_T of every row comes from one generator seeded by `seed`,
    batch by batch, so the same seed and batch size give the same images. The process follows the
    first image of digit 0 in each domain.
    """
    net.eval()
    n_dom = len(domain_ids)
    grid = torch.cartesian_prod(torch.arange(n_dom), torch.arange(num_classes), torch.arange(per_class))
    cond = torch.stack([grid[:, 1], torch.tensor(domain_ids)[grid[:, 0]]], dim=1).to(device)  # [N, 2] = (digit, domain)
    tracked = {d * num_classes * per_class: d for d in range(n_dom)}  # row -> domain
    gen = torch.Generator(device=device).manual_seed(seed)
    denoiser = guidance(net, net.null_cond)
    num_steps = num_sampling_steps(sample, schedule)
    keep = frame_steps(num_steps, process_frames)
    c, h, w = net.unet.config.in_channels, net.unet.config.sample_size, net.unet.config.sample_size
    out, frames, frame_t = [], {}, []
    bar = (progress or Progress)("sampling", -(-len(cond) // batch_size) * num_steps)
    for start in range(0, len(cond), batch_size):
        rows = cond[start:start + batch_size]
        x_T = torch.randn((len(rows), c, h, w), generator=gen, device=device)
        mine = {r - start: d for r, d in tracked.items() if start <= r < start + len(rows)}
        for r, d in mine.items():
            frames[d] = [x_T[r].cpu()]

        def callback(i: int, t: int, x_t: Tensor) -> None:
            bar.update(1)
            if i in keep:
                if start == 0:
                    frame_t.append(t)
                for r, d in mine.items():
                    frames[d].append(x_t[r].cpu())

        x_0 = sample(denoiser, x_T, schedule, cond=rows, generator=gen, callback=callback)
        out.append(x_0.cpu())
    bar.close()
    samples = torch.cat(out).view(n_dom, num_classes, per_class, c, h, w)
    return samples, torch.stack([torch.stack(frames[d]) for d in range(n_dom)]), frame_t
