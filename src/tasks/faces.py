"""task=faces: DDIM from the course's face UNet (or the embedded one) for every noise file, written as
`<run>/NN.png`, scored by MSE on uint8 pixels against GT; the eta grid and slerp vs linear
interpolation figures of the report."""
from __future__ import annotations

import logging
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from src.data.embedded_faces import embedded_face_folder
from src.data.faces import face_folder, load_gt, load_noise, write_images
from src.diffusion.batched import BatchedSampler
from src.diffusion.samplers import ddim_sample
from src.errors import ConfigError
from src.eval.face_figures import save_eta_grid, save_interpolation
from src.eval.face_scores import mse_metrics
from src.images import to_uint8
from src.tasks.context import TaskRun, task_run

log = logging.getLogger(__name__)


def build_face_folder(cfg: DictConfig, r: TaskRun) -> Path:
    """data.root (the course's <hw2_data>/face) if given, else the embedded face folder, built once."""
    if cfg.data.root is not None:
        return face_folder(cfg.data.root)
    e = cfg.data.embedded
    return embedded_face_folder(
        cfg.paths.cache_dir, seed=e.seed, n_noise=e.n_noise, gt_steps=e.gt_steps, image_size=e.image_size,
        net=OmegaConf.to_container(e.net), train=OmegaConf.to_container(e.train),
        schedule=instantiate(cfg.scheduler), precision=cfg.trainer.precision,
        make_trainer=lambda **kw: r.trainer(log=False, stage="training the embedded face model", **kw))


def run(cfg: DictConfig) -> dict[str, float]:
    """Face folder -> model -> DDIM per noise file -> NN.png, MSE, figures."""
    s, task = cfg.sampler, cfg.task
    ddim = instantiate(s)
    if getattr(ddim, "func", None) is not ddim_sample:  # the eta sweep and the figures need DDIM's eta
        raise ConfigError(f"sampler._target_={s._target_!r}: task=faces samples with DDIM; expected sampler=ddim")
    with task_run(cfg) as r:
        with r.timed("setup"):
            root = build_face_folder(cfg, r)
            names, noise = load_noise(root)  # [N, C, H, W]: the noise files set the images' size
            model = instantiate(cfg.model, _convert_="all")(root, noise.shape[1:])
            gt = load_gt(root, names, model.image_shape) if task.score else None
        log.info("%d noise files from %s; model %s, %s", len(names), root, model.weights, model.architecture)
        sample = BatchedSampler(model.net, ddim, instantiate(cfg.scheduler),
                                batch_size=task.sample_batch_size, seed=cfg.seed, device=r.device)
        r.metrics.update({"sampler/eta": float(s.eta), "sampler/num_steps": float(s.num_steps)})
        with r.timed("sample"):
            images = to_uint8(sample(noise, s.eta))
        write_images(r.out, names, images)
        if gt is not None:
            r.metrics.update(mse_metrics(images, gt, names))
            log.info("eta %g: MSE %.3f against %s", s.eta, r.metrics["mse"], root / "GT")
        if task.figures:
            with r.timed("figures"):
                r.figures.update(draw_figures(cfg, sample, noise, names, r.out / "figures"))
    return r.metrics


def draw_figures(cfg: DictConfig, sample: BatchedSampler, noise: Tensor, names: list[str],
                 fig_dir: Path) -> dict[str, Path]:
    """The eta grid over the first task.grid_noises noise files; the interpolation from the first to the
    second (when there are two)."""
    task = cfg.task
    fig_dir.mkdir(parents=True, exist_ok=True)
    how = f"DDIM {cfg.sampler.num_steps} steps"
    k = min(task.grid_noises, len(names))
    figures = {"eta_grid": save_eta_grid(sample, noise[:k], names[:k], [float(e) for e in task.figure_etas],
                                         fig_dir / "eta_grid.png", how=how)}
    if len(names) >= 2:
        alphas = [float(a) for a in task.interp_alphas]
        figures["interpolation"] = save_interpolation(sample, noise[0], noise[1], alphas, fig_dir / "interpolation.png",
                                                      how=how, names=names[:2])
    return figures
