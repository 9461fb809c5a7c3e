"""The embedded face folder of task=faces, built once into paths.cache_dir in the course layout:
`face/UNet.pt` (a small FaceUNet trained here with Lightning on the 100 real faces of scikit-image's
lfw_subset, EMA weights), `face/noise/00.pt ...` (from data.embedded.seed) and `face/GT/00.png ...`
(made by the reference, diffusers' DDIMScheduler, at eta 0); beside it `model.ckpt` (the Lightning
checkpoint) and `info.json`."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Optional

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from src.data.faces import GT_DIR, LAYOUT, UNET_FILE, lfw_faces, load_noise, write_images, write_noise
from src.diffusion.schedules import NoiseSchedule
from src.errors import ConfigError, DataError
from src.images import fresh_dir, to_uint8

log = logging.getLogger(__name__)
VERSION = 1


def resolve_face_root(cfg: DictConfig) -> Path:
    """data.root (the course's <hw2_data>/face) if given, else the embedded face folder."""
    if cfg.data.root is not None:
        root = Path(cfg.data.root).expanduser()
        if not root.is_dir():
            raise DataError(f"data.root={str(root)!r}: no such folder; expected the course layout {LAYOUT}")
        return root
    return ensure_embedded_faces(cfg)


def embedded_spec(cfg: DictConfig) -> dict:
    """Everything the embedded folder depends on; its hash names the cache folder."""
    m, e, s = cfg.model, cfg.data.embedded, cfg.scheduler
    if m.get("net") is None or m.get("train") is None:
        raise ConfigError("data.root=None: the embedded faces are made by training model=face_unet_small "
                          "(the default of task=faces); expected that model, or data.root=<hw2_data>/face")
    return {"version": VERSION, "seed": e.seed, "n_noise": e.n_noise, "gt_steps": e.gt_steps,
            "image_size": m.image_size, "net": OmegaConf.to_container(m.net, resolve=True),
            "train": OmegaConf.to_container(m.train, resolve=True),
            "schedule": {k: s[k] for k in ("steps", "beta_start", "beta_end", "timestep_offset")}}


def ensure_embedded_faces(cfg: DictConfig) -> Path:
    """The embedded face folder for this config, built (train, noise, GT) if not cached yet."""
    spec = embedded_spec(cfg)
    digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    final = Path(cfg.paths.cache_dir).expanduser() / f"faces-v{VERSION}-{digest}"
    if (final / "face" / UNET_FILE).is_file():
        return final / "face"
    start = time.perf_counter()
    tmp = fresh_dir(final.with_name(f".{final.name}.tmp-{os.getpid()}"))
    net, info = train_face_model(cfg, tmp)
    face = tmp / "face"
    face.mkdir()
    torch.save(net.state_dict(), face / UNET_FILE)
    e, size = cfg.data.embedded, int(cfg.model.image_size)
    shape = (1, int(cfg.model.net.in_channel), size, size)
    write_noise(face, e.n_noise, shape, seed=e.seed)
    names, noise = load_noise(face, shape)
    t0 = time.perf_counter()
    gt = reference_ddim_sample(net, noise, instantiate(cfg.scheduler), num_steps=e.gt_steps, eta=0.0)
    write_images(face / GT_DIR, names, to_uint8(gt))
    info.update(spec=spec, gt_seconds=round(time.perf_counter() - t0, 1),
                seconds=round(time.perf_counter() - start, 1))
    (tmp / "info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    try:
        os.replace(tmp, final)
    except OSError:
        if not (final / "face" / UNET_FILE).is_file():
            raise
        shutil.rmtree(tmp)  # another process finished the same folder first
    log.info("built the embedded face folder %s in %.0f s", final, time.perf_counter() - start)
    return final / "face"


def train_face_model(cfg: DictConfig, workdir: Path) -> tuple[nn.Module, dict]:
    """Fit model.net on the lfw faces and their mirror images with Lightning (DiffusionModule: eps loss,
    min-SNR weighting, EMA); returns the EMA network and a training report. Writes workdir/model.ckpt."""
    from torch.utils.data import DataLoader, TensorDataset

    from src.loggers import tame_lightning_logging
    from src.models.diffusion_module import DiffusionModule

    t, seed = cfg.model.train, int(cfg.data.embedded.seed)
    torch.manual_seed(seed)
    module = DiffusionModule(instantiate(cfg.model.net), instantiate(cfg.scheduler), lr=t.lr,
                             weight_decay=t.weight_decay, warmup_steps=t.warmup_steps, cond_drop_prob=0.0,
                             ema_decay=t.ema_decay, min_snr_gamma=t.min_snr_gamma)
    faces = lfw_faces(int(cfg.model.image_size))
    data = TensorDataset(torch.cat([faces, faces.flip(-1)]))  # [200, 3, S, S]: flips as augmentation
    loader = DataLoader(data, batch_size=t.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    tame_lightning_logging()
    trainer = instantiate(cfg.trainer, max_steps=t.steps, devices=1, num_nodes=1, strategy="auto", logger=False,
                          enable_checkpointing=False, limit_val_batches=0, val_check_interval=1.0,
                          check_val_every_n_epoch=1, default_root_dir=str(workdir))
    start = time.perf_counter()
    log.info("training the embedded face model (%d steps of %d faces)", t.steps, t.batch_size)
    trainer.fit(module, loader)
    trainer.save_checkpoint(workdir / "model.ckpt")
    report = {"train/loss": float(trainer.callback_metrics.get("train/loss", float("nan"))),
              "train/steps": int(trainer.global_step), "train_seconds": round(time.perf_counter() - start, 1),
              "parameters": sum(p.numel() for p in module.net.parameters())}
    log.info("trained in %.0f s, loss %.4f", report["train_seconds"], report["train/loss"])
    return module.ema.net.cpu().eval(), report


@torch.no_grad()
def reference_ddim_sample(net: nn.Module, x_T: Tensor, schedule: NoiseSchedule, *, num_steps: int,
                          eta: float = 0.0, clip_x0: bool = True,
                          generator: Optional[torch.Generator] = None) -> Tensor:
    """DDIM by diffusers' DDIMScheduler (leading spacing, alpha_prev = 1 at the end, x0 clamped to
    [-1, 1]): the reference that src.diffusion.samplers.ddim_sample is tested against. For eta > 0 the
    variance noise of each step is drawn from `generator` in the order ddim_sample draws it.

    The scheduler gets the schedule's float64 alpha_bar, as the course computes it: with its own float32
    cumprod an untrained (chaotic) UNet drifts by O(1) over 50 steps from float rounding alone."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(num_train_timesteps=schedule.num_steps, trained_betas=schedule.betas.tolist(),
                              clip_sample=clip_x0, clip_sample_range=1.0, set_alpha_to_one=True,
                              steps_offset=schedule.timestep_offset, timestep_spacing="leading",
                              prediction_type="epsilon")
    scheduler.alphas_cumprod = schedule.alphas_cumprod.clone()
    scheduler.set_timesteps(num_steps)
    x_t = x_T
    for t in scheduler.timesteps:
        eps = net(x_t, torch.full((x_t.shape[0],), int(t), device=x_t.device, dtype=torch.long))
        z = (torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
             if eta > 0 else None)
        x_t = scheduler.step(eps, t, x_t, eta=eta, variance_noise=z).prev_sample
    return x_t
