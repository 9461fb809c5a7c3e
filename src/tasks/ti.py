"""task=ti: textual inversion (or Custom Diffusion) on Stable Diffusion for the concepts of the course's
input.json, 25 images per prompt in the course layout, scored with the course's CLIP protocol."""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import ConcatDataset, DataLoader

from src.data.ti_data import (Concept, ConceptDataset, initializer_tokens, load_ti_concepts, template_kind,
                              with_initializers)
from src.errors import ConfigError
from src.eval.ti_grader import TABLE_COLUMNS, grade_concepts, grade_multi, initializer_gains, score_table
from src.figures import save_folder_grids
from src.loggers import log_table
from src.models.sd_generation import generate_course_layout, generate_multi, multi_concept_prompts
from src.models.sd_pipeline import pipeline_image_size
from src.models.textual_inversion import TEMPLATES, expand_placeholder, frozen_dtype
from src.runtime import end_distributed, is_main_process
from src.tasks.context import TaskRun, task_run

log = logging.getLogger(__name__)


def fit(r: TaskRun, module, dataset, name: str, prefix: str) -> None:
    """Lightning fit for trainer.max_steps, checkpoints every task.checkpoint_every steps in
    <run>/checkpoints/<name>/ (resuming its last.ckpt after an interruption); <prefix>/train/{steps,loss}."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    cfg, ckpt_dir = r.cfg, r.out / "checkpoints" / name
    loader = DataLoader(dataset, batch_size=cfg.data.batch_size, shuffle=True, num_workers=cfg.data.num_workers,
                        generator=torch.Generator().manual_seed(cfg.seed))
    ckpt = ModelCheckpoint(dirpath=ckpt_dir, filename="{step}", every_n_train_steps=cfg.task.checkpoint_every,
                           save_last=True, save_top_k=1)
    module.loss_key = f"{prefix}/train/loss"  # streamed to the logger, one curve per concept
    trainer = r.trainer(callbacks=[ckpt], stage=f"training {prefix}")
    resume = ckpt_dir / "last.ckpt"
    if resume.is_file():
        log.info("%s: resuming from %s", prefix, resume)
    trainer.fit(module, loader, ckpt_path=str(resume) if resume.is_file() else None)
    end_distributed()
    r.metrics[f"{prefix}/train/steps"] = float(trainer.global_step)
    loss = trainer.callback_metrics.get(module.loss_key)
    if loss is not None:
        r.metrics[f"{prefix}/train/loss"] = float(loss)


def fit_or_load(r: TaskRun, pipe, concepts: list[Concept]) -> None:
    """Each concept's token (and for ti=custom_diffusion the K/V processors) into `pipe`: from task.weights, from
    this run dir (finished before a requeue), or trained by the ti option's module and saved in <run>/embeddings."""
    t, method = r.cfg.task, instantiate(r.cfg.ti)  # a partial of the LightningModule
    kind, saved = method.func, r.out / "embeddings"
    if t.weights is not None:
        log.info("loading the learned weights of %s", t.weights)
        kind.load_weights(pipe, Path(t.weights).expanduser(), [c.id for c in concepts])
        return
    if not t.train and not kind.saved_in(saved, [c.id for c in concepts]):
        raise ConfigError("task.train=false needs task.weights=<the embeddings folder of an earlier task=ti run>")
    kinds = [template_kind(t.templates, c) for c in concepts]
    inits = initializer_tokens(concepts, kinds, t.initializer_tokens)
    size = pipeline_image_size(pipe)
    groups = [list(range(len(concepts)))] if kind.trains_jointly else [[i] for i in range(len(concepts))]
    for group in groups:
        ids = [concepts[i].id for i in group]
        if kind.saved_in(saved, ids):  # finished before a requeue
            kind.load_weights(pipe, saved, ids)
            continue
        module = method(pipe, [concepts[i].token for i in group], [inits[i] for i in group],
                        frozen_dtype=frozen_dtype(r.cfg.trainer.precision))
        dataset = ConcatDataset([ConceptDataset(concepts[i].images, TEMPLATES[kinds[i]], expand_placeholder(
            concepts[i].token, concepts[i].token, module.num_vectors), size=size, repeats=r.cfg.data.repeats)
            for i in group])
        name, prefix = ("custom_diffusion", "joint") if kind.trains_jointly else (ids[0], f"c{ids[0]}")
        fit(r, module, dataset, name, prefix)
        module.save_weights(saved, ids)


def run(cfg: DictConfig) -> dict[str, float]:
    """Concepts -> SD -> train (or load) each token -> 25 images per prompt -> CLIP scores."""
    with task_run(cfg) as r:
        t, d = cfg.task, cfg.data
        concepts = load_ti_concepts(d.root, cache_dir=cfg.paths.cache_dir, seed=d.embedded.seed,
                                    size=d.embedded.size, wanted=list(t.concepts))
        pipe = instantiate(cfg.model)()
        with r.timed("train"):
            fit_or_load(r, pipe, concepts)
        if not is_main_process():
            return {}  # DDP: rank 0 alone generates, scores and writes
        settings = dict(count=t.images_per_prompt, batch_size=t.batch_size,
                        num_inference_steps=t.num_inference_steps, guidance_scale=t.guidance_scale)
        multi = multi_concept_prompts(list(t.multi_prompts), concepts)
        with r.timed("sample"):  # under mixed precision the whole pipeline draws in its half dtype
            pipe.to(r.device)
            if (half := frozen_dtype(cfg.trainer.precision)) is not None:
                pipe.to(dtype=half)
            folders = generate_course_layout(pipe, concepts, r.out / "samples", seed=cfg.seed, **settings)
            folders.update(generate_multi(pipe, multi, r.out / "samples_multi", seed=cfg.seed, **settings))
            if t.initializer_scores:  # the same prompts and noise with each token's initializer word
                untrained = with_initializers(concepts, initializer_tokens(
                    concepts, [template_kind(t.templates, c) for c in concepts], t.initializer_tokens))
                drawn = generate_course_layout(pipe, untrained, r.out / "samples_initializer", seed=cfg.seed,
                                               **settings)
                folders.update({f"initializer_{name}": folder for name, folder in drawn.items()})
        scorer = instantiate(cfg.scorer)(device=r.device)
        r.metrics["grade/embedded_clip"] = float(cfg.scorer.weights is None)  # difflab's tiny CLIP grades
        scores, rows = grade_concepts(scorer, concepts, r.out / "samples")
        multi_scores, multi_rows = grade_multi(scorer, multi, r.out / "samples_multi")
        r.metrics.update({**scores, **multi_scores})
        if t.initializer_scores:
            r.metrics.update(initializer_gains(scores, grade_concepts(scorer, untrained,
                                                                      r.out / "samples_initializer")[0]))
        grids = save_folder_grids(folders, r.out / "figures")
        r.figures.update({f"samples/{name}": path for name, path in grids.items()})
        log_table(r.logger, "ti/scores", TABLE_COLUMNS, score_table(rows + multi_rows, r.figures), "images")
    return r.metrics
