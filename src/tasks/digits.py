"""task=digits: train a class-conditional DDPM on MNIST-M + SVHN, sample the course's 1,000 files
(or sampler.per_class per digit), draw the report's figures and score them with digit classifiers."""
from __future__ import annotations

import logging
import pickle
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import Tensor
from torch.utils.data import DataLoader

from src.data.digits import DigitsDataset
from src.data.resumable import ResumableLoader
from src.errors import CheckpointError, ConfigError, first_line
from src.eval.digit_scores import score_digit_folder
from src.figures import save_class_grid, save_process
from src.images import fresh_dir, replace_dir, save_png, to_uint8
from src.models.diffusion_module import DiffusionModule
from src.runtime import end_distributed, is_main_process
from src.tasks.context import TaskRun, task_run
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


def train(r: TaskRun, module: DiffusionModule, data_root: Path) -> None:
    """Fit with Lightning (checkpoints last + best by val/loss; resumes) into r.metrics."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    ckpt = ModelCheckpoint(dirpath=r.out / "checkpoints", filename="best-{step}", monitor="val/loss",
                           save_last=True, save_top_k=1)
    trainer = r.trainer(callbacks=[ckpt])
    train_loader, val_loader = _loaders(r.cfg, data_root)
    resume = _resume_path(r.cfg, r.out)
    if resume:
        log.info("resuming from %s", resume)
    trainer.fit(module, train_loader, val_loader, ckpt_path=resume)
    end_distributed()
    r.metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k in ("train/loss", "val/loss")})
    r.metrics["train/steps"] = float(trainer.global_step)


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
        raise CheckpointError(f"{path}: not a task=digits checkpoint of this model.net ({first_line(err)}); "
                              "expected a Lightning .ckpt written by task=digits with the same model config") from err


def run(cfg: DictConfig) -> dict[str, float]:
    """Data -> judges -> DDPM training -> sampling -> files, figures and scores."""
    with task_run(cfg) as r:
        data_root = resolve_data_root(cfg)
        judges, judge_accs = load_judges(cfg, data_root)
        module = build_module(cfg)
        with r.timed("train"):
            if cfg.task.train:
                train(r, module, data_root)
            else:
                load_for_sampling(cfg, module)
        if not is_main_process():
            return {}  # DDP: rank 0 alone samples, scores and writes
        t = cfg.task
        with r.timed("sample"):
            samples, frames, frame_t = sample_digits(
                module.ema.net.to(r.device), module.schedule, instantiate(cfg.sampler), instantiate(cfg.guidance),
                domains=list(cfg.data.domains), num_classes=cfg.data.num_classes, per_class=t.per_class,
                batch_size=t.sample_batch_size, process_frames=t.process_frames, seed=cfg.seed, device=r.device)
        r.figures.update(write_outputs(cfg, samples, frames, frame_labels(frame_t), r.out))
        r.metrics.update(score_digit_folder(r.out / "samples", judges, real_val_images(data_root, list(judges))))
        r.metrics.update(judge_accs)
    return r.metrics


def sampling_title(cfg: DictConfig) -> str:
    """`DDIM 50 steps, eta 0, guidance 3` for figure titles."""
    s = cfg.sampler
    name = s._target_.rsplit(".", 1)[-1].split("_")[0].upper()
    steps = s.get("num_steps", cfg.scheduler.steps)
    eta = f", eta {s.eta:g}" if "eta" in s else ""
    return f"{name} {steps} steps{eta}, guidance {cfg.guidance.scale:g}"


def write_outputs(cfg: DictConfig, samples: Tensor, frames: Tensor, frame_titles: list[str],
                  out: Path) -> dict[str, Path]:
    """samples [D, 10, K, C, H, W], frames [D, F, C, H, W] in [-1, 1] -> course files + figures."""
    domains = list(cfg.data.domains)
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
    how = sampling_title(cfg)
    figures = {}
    for d, domain in enumerate(domains):
        figures[f"grid/{domain}"] = save_class_grid(
            images[d, :, :10], fig_dir / f"grid_{domain}.png", title=f"{domain}: {how}",
            row_labels=[str(k) for k in range(images.shape[1])])
    figures["process"] = save_process(frames, fig_dir / "process.png", title=f"Denoising process ({how})",
                                      row_labels=domains, col_labels=frame_titles)
    return figures
