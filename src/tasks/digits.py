"""task=digits: train a class-conditional DDPM on MNIST-M + SVHN, sample the course's 1,000 files
(or task.per_class per digit), draw the report's figures and score them with the judges."""
from __future__ import annotations

import logging
import pickle
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from src.data.digits import DOMAINS, digit_loaders, write_generated
from src.data.embedded_digits import resolve_data_root
from src.diffusion.class_grid import frame_labels, sample_class_grid
from src.diffusion.samplers import describe_sampler
from src.errors import CheckpointError, ConfigError, first_line
from src.eval.digit_scores import score_digit_folder
from src.eval.judges import real_val_images
from src.figures import save_class_grid, save_process
from src.images import to_uint8
from src.models.diffusion_module import DiffusionModule
from src.runtime import Bf16Autocast, CompiledOrEager, end_distributed, is_main_process, use_bf16
from src.tasks.context import TaskRun, task_run

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, float]:
    """Data -> judges -> DDPM training -> sampling -> files, figures and scores."""
    with task_run(cfg) as r:
        d, t = cfg.data, cfg.task
        data_root = resolve_data_root(d.root, cfg.paths.cache_dir, **d.embedded)
        judges, judge_accs = instantiate(cfg.judge)(data_root, cache_dir=cfg.paths.cache_dir,
                                                    domains=list(d.domains), seed=cfg.seed)
        module = instantiate(cfg.model)(schedule=instantiate(cfg.scheduler))
        with r.timed("train"):
            if t.train:
                train(r, module, data_root)
            else:
                load_weights(module, checkpoint(cfg.ckpt_path, required=True))
        if not is_main_process():
            return {}  # DDP: rank 0 alone samples, scores and writes
        sampler, guidance = instantiate(cfg.sampler), instantiate(cfg.guidance)
        # the EMA's weights; model.ema_decay=0 samples the trained ones (of any checkpoint, with task.train=false)
        net = (module.ema.net if module.ema.decay > 0 else module.net).to(r.device).eval()
        if t.compile:  # 1.85x faster sampling on a CPU; the first run compiles (~50 s), later ones hit the cache
            net = CompiledOrEager(net, cfg.paths.cache_dir)
        bf16 = use_bf16(t.sample_precision, r.device)
        if bf16:
            net = Bf16Autocast(net, r.device.type)
        with r.timed("sample"):
            samples, frames, frame_t = sample_class_grid(
                net, module.schedule, sampler, guidance,
                domain_ids=[DOMAINS.index(x) for x in d.domains], num_classes=cfg.model.net.num_classes,
                per_class=t.per_class, batch_size=t.sample_batch_size, process_frames=t.process_frames,
                seed=cfg.seed, device=r.device, progress=r.progress)
        images = to_uint8(samples)  # [D, 10, K, C, H, W]
        write_generated(images, list(d.domains), r.out / "samples")
        how = (f"{describe_sampler(sampler, module.schedule)}, guidance {cfg.guidance.scale:g}"
               + (", bf16" if bf16 else ""))
        r.figures.update(figures(list(d.domains), how, images, to_uint8(frames), frame_labels(frame_t),
                                 r.out / "figures"))
        r.metrics.update(score_digit_folder(r.out / "samples", judges, real_val_images(data_root, list(judges))))
        r.metrics.update(judge_accs)
    return r.metrics


def train(r: TaskRun, module: DiffusionModule, data_root: Path) -> None:
    """Fit with Lightning (checkpoints last + best by val/loss; resumes) into r.metrics."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    ckpt = ModelCheckpoint(dirpath=r.out / "checkpoints", filename="best-{step}", monitor="val/loss",
                           save_last=True, save_top_k=1)
    trainer = r.trainer(callbacks=[ckpt])
    d = r.cfg.data
    train_loader, val_loader = digit_loaders(data_root, domains=list(d.domains), batch_size=d.batch_size,
                                             num_workers=d.num_workers, seed=r.cfg.seed)
    last = r.out / "checkpoints" / "last.ckpt"
    resume = checkpoint(r.cfg.ckpt_path) or (str(last) if last.is_file() else None)
    if resume:
        log.info("resuming from %s", resume)
    trainer.fit(module, train_loader, val_loader, ckpt_path=resume)
    end_distributed()
    r.metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k in ("train/loss", "val/loss")})
    r.metrics["train/steps"] = float(trainer.global_step)


def checkpoint(ckpt_path: str | None, required: bool = False) -> str | None:
    """ckpt_path checked to be a file (None when unset and not required)."""
    if ckpt_path is None:
        if required:
            raise ConfigError("task.train=false needs ckpt_path=<a checkpoint of task=digits>")
        return None
    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise ConfigError(f"ckpt_path={str(path)!r}: no such checkpoint file")
    return str(path)


def load_weights(module: DiffusionModule, path: str) -> None:
    """task.train=false: take the weights (EMA included) from a checkpoint of this task."""
    try:
        module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["state_dict"])
    except (RuntimeError, KeyError, TypeError, pickle.UnpicklingError) as err:
        raise CheckpointError(f"{path}: not a task=digits checkpoint of this model.net ({first_line(err)}); "
                              "expected a Lightning .ckpt written by task=digits with the same model config") from err


def figures(domains: list[str], how: str, images, frames, frame_titles: list[str], fig_dir: Path) -> dict[str, Path]:
    """Per-domain class grids of uint8 images [D, 10, K, C, H, W] and the process of frames [D, F, C, H, W],
    titled with `how` they were sampled."""
    fig_dir.mkdir(exist_ok=True)
    out = {f"grid/{x}": save_class_grid(images[i, :, :10], fig_dir / f"grid_{x}.png", title=f"{x}: {how}",
                                        row_labels=[str(k) for k in range(images.shape[1])])
           for i, x in enumerate(domains)}
    out["process"] = save_process(frames, fig_dir / "process.png", title=f"Denoising process ({how})",
                                  row_labels=domains, col_labels=frame_titles)
    return out
