"""The embedded face folder of task=faces, built once into the cache in the course layout: `face/UNet.pt`
(a small FaceUNet trained here with Lightning on the 100 real faces of scikit-image's lfw_subset, EMA
weights) with `face/unet.json` (its arguments), `face/noise/00.pt ...` (from seed) and `face/GT/00.png ...`
(made by the reference, diffusers' DDIMScheduler, at eta 0); beside `face/`, `model.ckpt` (the Lightning
checkpoint) and `info.json`."""
from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from functools import partial
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from src.cache import build_once
from src.data.faces import GT_DIR, UNET_FILE, lfw_faces, load_noise, write_images, write_noise
from src.diffusion.reference import reference_ddim_sample
from src.diffusion.schedules import NoiseSchedule
from src.images import to_uint8
from src.models.face_loading import write_architecture
from src.models.face_unet import FaceUNet

log = logging.getLogger(__name__)
VERSION = 3  # 2: unet.json beside UNet.pt; 3: the training precision and clipping in the key


def embedded_face_folder(cache_dir: str | Path, *, seed: int, n_noise: int, gt_steps: int, image_size: int,
                         net: dict[str, Any], train: dict[str, Any], schedule: NoiseSchedule, precision: str,
                         make_trainer: Callable[..., Any]) -> Path:
    """`<cache_dir>/faces-v3-<hash>/face`, built if not cached yet: a FaceUNet(**net) trained as `train`
    (steps, batch_size, lr, weight_decay, warmup_steps, ema_decay, min_snr_gamma, gradient_clip_val) in
    `precision` on image_size faces with the Trainer `make_trainer(**arguments)` builds (the task's, on its
    accelerator), n_noise noise files and their GT (gt_steps of DDIM)."""
    spec = {"version": VERSION, "seed": seed, "n_noise": n_noise, "gt_steps": gt_steps, "image_size": image_size,
            "net": net, "train": train, "precision": precision, "schedule": {
                "betas": hashlib.sha1(schedule.betas.numpy().tobytes()).hexdigest(),
                "timestep_offset": schedule.timestep_offset}}
    digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]

    def build(tmp: Path) -> None:
        start = time.perf_counter()
        model, info = train_face_unet(net, train, schedule, image_size=image_size, seed=seed,
                                      make_trainer=partial(make_trainer, precision=precision), workdir=tmp)
        face = tmp / "face"
        face.mkdir()
        torch.save(model.state_dict(), face / UNET_FILE)
        write_architecture(face, net)
        shape = (1, int(net.get("in_channel", 3)), image_size, image_size)
        write_noise(face, n_noise, shape, seed=seed)
        names, noise = load_noise(face, shape)
        t0 = time.perf_counter()
        gt = reference_ddim_sample(model, noise, schedule, num_steps=gt_steps, eta=0.0)
        write_images(face / GT_DIR, names, to_uint8(gt))
        info.update(spec=spec, gt_seconds=round(time.perf_counter() - t0, 1),
                    seconds=round(time.perf_counter() - start, 1))
        (tmp / "info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")

    final = build_once(Path(cache_dir).expanduser() / f"faces-v{VERSION}-{digest}", build,
                       what="the embedded face folder")
    return final / "face"


def train_face_unet(net: dict[str, Any], train: dict[str, Any], schedule: NoiseSchedule, *, image_size: int,
                    seed: int, make_trainer: Callable[..., Any], workdir: Path) -> tuple[nn.Module, dict]:
    """Fit FaceUNet(**net) on the lfw faces and their mirror images with Lightning (DiffusionModule: eps loss,
    min-SNR weighting, EMA); returns the EMA network and a training report. Writes workdir/model.ckpt."""
    from torch.utils.data import DataLoader, TensorDataset

    from src.models.diffusion_module import DiffusionModule

    torch.manual_seed(seed)
    module = DiffusionModule(FaceUNet(**net), schedule, lr=train["lr"], weight_decay=train["weight_decay"],
                             warmup_steps=train["warmup_steps"], lr_final=0.1, cond_drop_prob=0.0,
                             ema_decay=train["ema_decay"], min_snr_gamma=train["min_snr_gamma"])
    faces = lfw_faces(image_size)
    data = TensorDataset(torch.cat([faces, faces.flip(-1)]))  # [200, 3, S, S]: flips as augmentation
    loader = DataLoader(data, batch_size=train["batch_size"], shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    trainer = make_trainer(max_steps=train["steps"], max_epochs=-1, gradient_clip_val=train["gradient_clip_val"],
                           enable_checkpointing=False, enable_model_summary=False, limit_val_batches=0,
                           num_sanity_val_steps=0, val_check_interval=1.0, check_val_every_n_epoch=1)
    start = time.perf_counter()
    log.info("training the embedded face model (%d steps of %d faces)", train["steps"], train["batch_size"])
    with warnings.catch_warnings():  # no val loader on purpose: the fit is judged by the GT it makes
        warnings.filterwarnings("ignore", message=r".*`validation_step` but have no `val_dataloader`.*")
        trainer.fit(module, loader)
    trainer.save_checkpoint(workdir / "model.ckpt")
    report = {"train/loss": float(trainer.callback_metrics.get("train/loss", float("nan"))),
              "train/steps": int(trainer.global_step), "train_seconds": round(time.perf_counter() - start, 1),
              "parameters": sum(p.numel() for p in module.net.parameters())}
    log.info("trained in %.0f s, loss %.4f", report["train_seconds"], report["train/loss"])
    return module.ema.net.cpu().eval(), report
