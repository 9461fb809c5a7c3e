"""task=digits: train a class-conditional DDPM on MNIST-M + SVHN, sample the course's 1,000 files
(or sampler.per_class per digit), draw the report's figures and score them with digit classifiers."""
from __future__ import annotations

import logging
import pickle
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor
from torch.utils.data import DataLoader

from src.data.digits import DigitsDataset
from src.data.resumable import ResumableLoader
from src.errors import CheckpointError, ConfigError
from src.eval.digit_scores import score_digit_folder
from src.figures import save_class_grid, save_process
from src.images import fresh_dir, replace_dir, save_png, to_uint8
from src.loggers import build_logger, finish, log_images, log_metrics, tame_lightning_logging
from src.models.diffusion_module import DiffusionModule
from src.runtime import end_distributed, is_main_process, task_device
from src.tasks.digit_judging import load_judges, real_val_images, resolve_data_root
from src.tasks.digit_sampling import frame_labels, sample_digits

log = logging.getLogger(__name__)


def build_module(cfg: DictConfig) -> DiffusionModule:
    """The LightningModule with its injected network and noise schedule."""
    m = cfg.model
    return DiffusionModule(instantiate(m.net), instantiate(cfg.scheduler), lr=m.lr, weight_decay=m.weight_decay,
                           warmup_steps=m.warmup_steps, cond_drop_prob=m.cond_drop_prob, ema_decay=m.ema_decay,
                           min_snr_gamma=m.min_snr_gamma)


def _loaders(cfg: DictConfig, data_root: Path) -> tuple[DataLoader, DataLoader]:
    d = cfg.data
    train = DigitsDataset(data_root, "train", domains=list(d.domains))
    val = DigitsDataset(data_root, "val", domains=list(d.domains))
    g = torch.Generator().manual_seed(cfg.seed)
    kw = dict(batch_size=d.batch_size, num_workers=d.num_workers, persistent_workers=d.num_workers > 0)
    return (ResumableLoader(train, shuffle=True, drop_last=True, generator=g, **kw),
            DataLoader(val, shuffle=False, **kw))


def _resume_path(cfg: DictConfig, out: Path) -> str | None:
    if cfg.ckpt_path is not None:
        path = Path(cfg.ckpt_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"ckpt_path={str(path)!r}: no such checkpoint file")
        return str(path)
    last = out / "checkpoints" / "last.ckpt"
    return str(last) if last.is_file() else None


def train(cfg: DictConfig, module: DiffusionModule, data_root: Path, out: Path, logger) -> dict[str, float]:
    """Fit with Lightning (checkpoints last + best by val/loss; resumes); returns training metrics."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    tame_lightning_logging()
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", filename="best-{step}", monitor="val/loss",
                           save_last=True, save_top_k=1)
    trainer = instantiate(cfg.trainer, logger=logger if logger is not None else False, callbacks=[ckpt],
                          default_root_dir=str(out))
    train_loader, val_loader = _loaders(cfg, data_root)
    resume = _resume_path(cfg, out)
    if resume:
        log.info("resuming from %s", resume)
    trainer.fit(module, train_loader, val_loader, ckpt_path=resume)
    end_distributed()
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k in ("train/loss", "val/loss")}
    return {**metrics, "train/steps": float(trainer.global_step)}


def load_for_sampling(cfg: DictConfig, module: DiffusionModule) -> None:
    """task.train=false: take the weights (EMA included) from ckpt_path."""
    if cfg.ckpt_path is None:
        raise ConfigError("task.train=false needs ckpt_path=<a checkpoint of task=digits>")
    path = Path(cfg.ckpt_path).expanduser()
    if not path.is_file():
        raise ConfigError(f"ckpt_path={str(path)!r}: no such checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, pickle.UnpicklingError) as err:
        first = str(err).strip().splitlines()[0][:200]
        raise CheckpointError(f"{path}: not a task=digits checkpoint of this model.net ({first}); expected "
                              "a Lightning .ckpt written by task=digits with the same model config") from err


def run(cfg: DictConfig) -> dict[str, float]:
    """Data -> judges -> DDPM training -> sampling -> files, figures and scores."""
    start = time.perf_counter()
    out = Path(cfg.paths.output_dir)
    data_root = resolve_data_root(cfg)
    judges, judge_accs = load_judges(cfg, data_root)
    module = build_module(cfg)
    logger = build_logger(cfg, out, run_name=out.name, job_type=cfg.task.name)
    metrics: dict[str, float] = {}
    t0 = time.perf_counter()
    if cfg.task.train:
        metrics.update(train(cfg, module, data_root, out, logger))
        if not is_main_process():
            return {}  # DDP: rank 0 alone samples, scores and writes
    else:
        load_for_sampling(cfg, module)
    metrics["time/train_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    device = task_device(cfg.trainer)
    samples, frames, frame_t = sample_digits(module.ema.net.to(device), module.schedule, cfg.sampler,
                                    domains=list(cfg.data.domains), num_classes=cfg.data.num_classes, seed=cfg.seed,
                                    device=device)
    metrics["time/sample_s"] = time.perf_counter() - t0
    figures = write_outputs(cfg, samples, frames, frame_labels(frame_t), out)
    metrics.update(score_digit_folder(out / "samples", judges, real_val_images(data_root, list(judges))))
    metrics.update(judge_accs)
    metrics["time/total_s"] = time.perf_counter() - start
    log_images(logger, figures)
    log_metrics(logger, metrics)
    finish(logger)
    return metrics


def write_outputs(cfg: DictConfig, samples: Tensor, frames: Tensor, frame_titles: list[str],
                  out: Path) -> dict[str, Path]:
    """samples [D, 10, K, C, H, W], frames [D, F, C, H, W] in [-1, 1] -> course files + figures."""
    domains, s = list(cfg.data.domains), cfg.sampler
    images, frames = to_uint8(samples), to_uint8(frames)
    tmp = fresh_dir(out / ".samples.tmp")
    for d, domain in enumerate(domains):
        (tmp / domain).mkdir()
        for digit in range(images.shape[1]):
            for i in range(images.shape[2]):
                save_png(images[d, digit, i], tmp / domain / f"{digit}_{i:03d}.png")
    replace_dir(tmp, out / "samples")
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    how = f"{s.name.upper()} {s.num_steps} steps, eta {s.eta:g}, guidance {s.guidance_scale:g}"
    figures = {}
    for d, domain in enumerate(domains):
        figures[f"grid/{domain}"] = save_class_grid(
            images[d, :, :10], fig_dir / f"grid_{domain}.png", title=f"{domain}: {how}",
            row_labels=[str(k) for k in range(images.shape[1])])
    figures["process"] = save_process(frames, fig_dir / "process.png", title=f"Denoising process ({how})",
                                      row_labels=domains, col_labels=frame_titles)
    return figures
