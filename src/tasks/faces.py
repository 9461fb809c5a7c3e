"""task=faces: DDIM from the course's face UNet (or the embedded one) for every noise file, written as
`<run>/NN.png`, scored by MSE on uint8 pixels against GT; the eta grid and slerp vs linear
interpolation figures of the report."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor

from src.data.faces import load_gt, load_noise, write_images
from src.diffusion.interpolation import lerp, slerp
from src.diffusion.schedules import NoiseSchedule
from src.errors import ConfigError
from src.figures import save_labelled_grid
from src.images import to_uint8
from src.loggers import build_logger, finish, log_images, log_metrics
from src.runtime import task_device
from src.tasks.face_embedded import resolve_face_root
from src.tasks.face_model import FaceModel, load_face_model

log = logging.getLogger(__name__)


class FaceSampler:
    """The configured DDIM from one model; every call re-seeds the variance noise with `seed`, so each
    eta sees the same z at every step (and eta 0 needs none)."""

    def __init__(self, model: FaceModel, sample, schedule: NoiseSchedule, batch_size: int, seed: int,
                 device: torch.device) -> None:
        self.net, self.sample, self.schedule = model.net.to(device), sample, schedule
        self.batch_size, self.seed, self.device = batch_size, seed, device

    def __call__(self, x_T: Tensor, eta: float) -> Tensor:
        """x_T [N, C, H, W] -> x_0 [N, C, H, W] in [-1, 1] (CPU), in batches of sampler.batch_size."""
        gen = torch.Generator(device=self.device).manual_seed(self.seed)
        out = []
        for start in range(0, len(x_T), self.batch_size):
            x = x_T[start:start + self.batch_size].to(self.device)
            out.append(self.sample(lambda x_t, t, cond: self.net(x_t, t), x, self.schedule, eta=eta,
                                   generator=gen).cpu())
        return torch.cat(out)


def mse_metrics(images: Tensor, gt: Tensor, names: Sequence[str]) -> dict[str, float]:
    """Per-image MSE on uint8 pixels as float ([N, C, H, W] each) as `mse/<name>`, and their mean `mse`."""
    per_image = (images.double() - gt.double()).pow(2).mean(dim=(1, 2, 3))  # [N]
    return {**{f"mse/{n}": float(v) for n, v in zip(names, per_image)}, "mse": float(per_image.mean())}


def run(cfg: DictConfig) -> dict[str, float]:
    """Face folder -> model -> DDIM per noise file -> NN.png, MSE, figures."""
    start = time.perf_counter()
    s, task = cfg.sampler, cfg.task
    if not s._target_.endswith("ddim_sample"):
        raise ConfigError(f"sampler._target_={s._target_!r}: task=faces samples with DDIM; expected sampler=ddim")
    if cfg.ckpt_path is not None:
        raise ConfigError("ckpt_path: not used by task=faces; expected model.format=project model.weights=<.ckpt>")
    if any(not 0.0 <= float(e) <= 1.0 for e in task.figure_etas):
        raise ConfigError(f"task.figure_etas={list(task.figure_etas)}: expected values in [0, 1]")
    out = Path(cfg.paths.output_dir)
    root = resolve_face_root(cfg)
    model = load_face_model(cfg, root)
    names, noise = load_noise(root, (1, *model.image_shape))
    gt = load_gt(root, names, model.image_shape) if task.score else None
    log.info("%d noise files from %s; model %s", len(names), root, model.weights)
    device = task_device(cfg.trainer)
    sample = FaceSampler(model, instantiate(s), instantiate(cfg.scheduler), task.sample_batch_size, cfg.seed, device)
    logger = build_logger(cfg, out, run_name=out.name, job_type=task.name)
    metrics: dict[str, float] = {"sampler/eta": float(s.eta), "sampler/num_steps": float(s.num_steps),
                                 "time/setup_s": time.perf_counter() - start}
    t0 = time.perf_counter()
    images = to_uint8(sample(noise, s.eta))
    metrics["time/sample_s"] = time.perf_counter() - t0
    write_images(out, names, images)
    if gt is not None:
        metrics.update(mse_metrics(images, gt, names))
        log.info("eta %g: MSE %.3f against %s", s.eta, metrics["mse"], root / "GT")
    if task.figures:
        t0 = time.perf_counter()
        figures = draw_figures(cfg, sample, noise, names, out / "figures")
        metrics["time/figures_s"] = time.perf_counter() - t0
        log_images(logger, figures)
    metrics["time/total_s"] = time.perf_counter() - start
    log_metrics(logger, metrics)
    finish(logger)
    return metrics


def draw_figures(cfg: DictConfig, sample: FaceSampler, noise: Tensor, names: Sequence[str],
                 fig_dir: Path) -> dict[str, Path]:
    """The eta grid (a row per eta, a column per noise file: the same x_T and variance noise z in every
    row) and the interpolation figure (slerp and linear rows, a column per alpha, DDIM eta 0)."""
    task, s = cfg.task, cfg.sampler
    fig_dir.mkdir(parents=True, exist_ok=True)
    k = min(task.grid_noises, len(names))
    how = f"DDIM {s.num_steps} steps"
    rows = [to_uint8(sample(noise[:k], float(eta))) for eta in task.figure_etas]
    figures = {"eta_grid": save_labelled_grid(
        torch.stack(rows), fig_dir / "eta_grid.png", title=f"{how}: eta by noise file",
        row_labels=[f"eta={float(e):g}" for e in task.figure_etas], col_labels=[f"{n}.pt" for n in names[:k]])}
    if len(names) >= 2:
        alphas = [float(a) for a in task.interp_alphas]
        z1, z2 = noise[0], noise[1]
        x_T = torch.stack([f(z1, z2, a) for f in (slerp, lerp) for a in alphas])  # [2 * A, C, H, W]
        images = to_uint8(sample(x_T, 0.0)).view(2, len(alphas), *x_T.shape[1:])
        figures["interpolation"] = save_labelled_grid(
            images, fig_dir / "interpolation.png", title=f"{how}, eta 0: {names[0]}.pt to {names[1]}.pt",
            row_labels=["slerp", "linear"], col_labels=[f"α={a:.1f}" for a in alphas])
    return figures
