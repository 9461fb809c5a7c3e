"""task=ti: textual inversion (or Custom Diffusion) on Stable Diffusion for the concepts of the course's
input.json, 25 images per prompt in the course layout, scored with the course's CLIP protocol."""
from __future__ import annotations

import logging
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from PIL import Image
from torch.utils.data import ConcatDataset, DataLoader

from src.data.ti_data import Concept, ConceptDataset, load_concepts, write_embedded_ti
from src.errors import ConfigError, DataError
from src.eval.ti_grader import ClipScorer, grade_images
from src.images import fresh_dir, make_grid, replace_dir, save_png
from src.loggers import build_logger, finish, log_images, log_metrics, tame_lightning_logging
from src.models.custom_diffusion import (WEIGHT_NAME as CD_WEIGHTS, CustomDiffusionModule,
                                         load_custom_diffusion, save_custom_diffusion)
from src.models.sd_pipeline import load_sd_pipeline
from src.models.textual_inversion import (TEMPLATES, TextualInversionModule, expand_placeholder,
                                          save_learned_embeds)
from src.runtime import end_distributed, is_main_process, task_device

log = logging.getLogger(__name__)
EMBEDS_NAME = "learned_embeds.safetensors"


def _cached(folder: Path, build) -> Path:
    """`folder`, built once by `build(tmp)` into a temporary sibling and renamed into place."""
    if not folder.is_dir():
        tmp = fresh_dir(folder.with_name(f".{folder.name}.{os.getpid()}.tmp"))
        build(tmp)
        try:
            os.replace(tmp, folder)
        except OSError:  # another job built it first
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def resolve_concepts(cfg: DictConfig) -> list[Concept]:
    """input.json of data.root, or the embedded default (built once in the cache); filtered by ti.concepts."""
    d = cfg.data
    if d.root is None:
        e = d.embedded
        root = _cached(Path(cfg.paths.cache_dir) / "ti" / f"embedded_s{e.seed}_{e.size}",
                       lambda tmp: write_embedded_ti(tmp, size=e.size, seed=e.seed))
    else:
        root = Path(d.root).expanduser()
        if not root.is_dir():
            raise DataError(f"data.root={str(root)!r}: no such folder; expected <hw2_data>/textual_inversion")
    concepts = load_concepts(root)
    wanted = [str(c) for c in cfg.ti.concepts]
    unknown = sorted(set(wanted) - {c.id for c in concepts})
    if unknown:
        raise ConfigError(f"ti.concepts={wanted}: {unknown} not in input.json (ids {[c.id for c in concepts]})")
    return [c for c in concepts if not wanted or c.id in wanted]


def resolve_pipeline(cfg: DictConfig):
    """The SD pipeline of model.path, or the project's random tiny SD (built once in the cache), on CPU."""
    m = cfg.model
    if m.path is None:
        if not m.get("tiny", False):
            raise ConfigError("model.path=None: expected a diffusers folder or sd-v1-4.ckpt (or model=sd_tiny)")
        from src.standins.tiny_sd import write_tiny_sd

        log.warning("model=sd_tiny: a RANDOM tiny Stable Diffusion built by the project, not SD v1.4")
        path = _cached(Path(cfg.paths.cache_dir) / "ti" / f"sd_tiny_{m.image_size}",
                       lambda tmp: write_tiny_sd(tmp, image_size=m.image_size))
    else:
        path = m.path
    return load_sd_pipeline(path, original_config=m.original_config, config=m.config)


def template_kind(cfg: DictConfig, concept: Concept) -> str:
    """ti.templates, or for auto: style when the concept's prompts say 'style of', else object."""
    if cfg.ti.templates != "auto":
        return cfg.ti.templates
    return "style" if any("style of" in p.lower() for p in concept.prompts) else "object"


def initializer_for(cfg: DictConfig, index: int, concept: Concept, kind: str) -> str:
    init = cfg.ti.initializer_tokens
    if init is not None:
        if len(init) <= index:
            raise ConfigError(f"ti.initializer_tokens={list(init)}: expected one token per concept")
        return str(init[index])
    return concept.initializer or {"object": "object", "style": "painting"}[kind]


def concept_dataset(cfg: DictConfig, concept: Concept, kind: str) -> ConceptDataset:
    return ConceptDataset(concept.images, TEMPLATES[kind], expand_placeholder(concept.token, concept.token,
                          cfg.ti.num_vectors), size=cfg.model.image_size, repeats=cfg.data.repeats)


def fit(cfg: DictConfig, module, dataset, ckpt_dir: Path, out: Path, prefix: str, logger=None) -> dict[str, float]:
    """Lightning fit for ti.steps (checkpoints every ti.checkpoint_every steps, resuming <ckpt_dir>/last.ckpt
    after an interruption); returns <prefix>/train/{steps,loss}."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    tame_lightning_logging()
    loader = DataLoader(dataset, batch_size=cfg.data.batch_size, shuffle=True, num_workers=cfg.data.num_workers,
                        generator=torch.Generator().manual_seed(cfg.seed))
    ckpt = ModelCheckpoint(dirpath=ckpt_dir, filename="{step}", every_n_train_steps=cfg.ti.checkpoint_every,
                           save_last=True, save_top_k=1)
    module.loss_key = f"{prefix}/train/loss"  # streamed to the logger, one curve per concept
    trainer = instantiate(cfg.trainer, logger=logger if logger is not None else False, callbacks=[ckpt],
                          default_root_dir=str(out), max_steps=cfg.ti.steps)
    resume = ckpt_dir / "last.ckpt"
    if resume.is_file():
        log.info("%s: resuming from %s", prefix, resume)
    trainer.fit(module, loader, ckpt_path=str(resume) if resume.is_file() else None)
    end_distributed()
    loss = trainer.callback_metrics.get(module.loss_key)
    return {f"{prefix}/train/steps": float(trainer.global_step),
            **({f"{prefix}/train/loss": float(loss)} if loss is not None else {})}


def train_concept(cfg: DictConfig, pipe, concept: Concept, initializer: str, kind: str, out: Path,
                  logger=None) -> dict:
    """Textual inversion of one concept's token; writes <run>/embeddings/<c>/learned_embeds.safetensors."""
    module = TextualInversionModule(pipe, concept.token, initializer, num_vectors=cfg.ti.num_vectors, lr=cfg.ti.lr)
    metrics = fit(cfg, module, concept_dataset(cfg, concept, kind), out / "checkpoints" / concept.id, out,
                  f"c{concept.id}", logger)
    save_learned_embeds(concept.token, module.finish()[concept.token], out / "embeddings" / concept.id / EMBEDS_NAME)
    return metrics


def train_joint(cfg: DictConfig, pipe, concepts: list[Concept], out: Path, logger=None) -> dict:
    """Custom Diffusion on all concepts at once (their images mixed); writes every token's embeddings and
    <run>/embeddings/custom_diffusion/pytorch_custom_diffusion_weights.bin."""
    kinds = [template_kind(cfg, c) for c in concepts]
    inits = [initializer_for(cfg, i, c, k) for i, (c, k) in enumerate(zip(concepts, kinds))]
    module = CustomDiffusionModule(pipe, [c.token for c in concepts], inits, num_vectors=cfg.ti.num_vectors,
                                   lr=cfg.ti.lr, kv_lr=cfg.ti.kv_lr)
    dataset = ConcatDataset([concept_dataset(cfg, c, k) for c, k in zip(concepts, kinds)])
    metrics = fit(cfg, module, dataset, out / "checkpoints" / "custom_diffusion", out, "joint", logger)
    for concept, embeds in zip(concepts, module.finish().values()):
        save_learned_embeds(concept.token, embeds, out / "embeddings" / concept.id / EMBEDS_NAME)
    save_custom_diffusion(pipe.unet, out / "embeddings" / "custom_diffusion")
    return metrics


def fit_or_load(cfg: DictConfig, pipe, concepts: list[Concept], out: Path, logger=None) -> dict[str, float]:
    """Each concept's token (and for custom_diffusion the K/V processors) into `pipe`: from ti.embeds, from
    this run dir (finished before a requeue), or trained (resuming its last.ckpt if any)."""
    t = cfg.ti
    joint = t.method == "custom_diffusion"
    folder = Path(t.embeds).expanduser() if t.embeds is not None else out / "embeddings"
    saved = all((folder / c.id / EMBEDS_NAME).is_file() for c in concepts) and (
        not joint or (folder / "custom_diffusion" / CD_WEIGHTS).is_file())
    if t.embeds is not None or saved:
        log.info("loading embeddings%s from %s", " and Custom Diffusion weights" if joint else "", folder)
        for concept in concepts:
            load_embeds(pipe, concept, folder)
        if joint:
            if not (folder / "custom_diffusion" / CD_WEIGHTS).is_file():
                raise ConfigError(f"ti.embeds={str(folder)!r}: no custom_diffusion/{CD_WEIGHTS} in it "
                                  "(ti.method=custom_diffusion)")
            load_custom_diffusion(pipe, folder / "custom_diffusion")
        return {}
    if not t.train:
        raise ConfigError("ti.train=false needs ti.embeds=<the embeddings folder of an earlier task=ti run>")
    if joint:
        return train_joint(cfg, pipe, concepts, out, logger)
    metrics = {}
    for index, concept in enumerate(concepts):
        if (out / "embeddings" / concept.id / EMBEDS_NAME).is_file():  # finished before a requeue
            load_embeds(pipe, concept, out / "embeddings")
            continue
        kind = template_kind(cfg, concept)
        metrics.update(train_concept(cfg, pipe, concept, initializer_for(cfg, index, concept, kind), kind, out, logger))
    return metrics


def load_embeds(pipe, concept: Concept, folder: Path) -> None:
    """Load <folder>/<concept>/learned_embeds.safetensors with diffusers' load_textual_inversion."""
    path = folder / concept.id / EMBEDS_NAME
    if not path.is_file():
        raise ConfigError(f"ti.embeds={str(folder)!r}: no {concept.id}/{EMBEDS_NAME} in it")
    pipe.load_textual_inversion(str(path), local_files_only=True)


def draw(cfg: DictConfig, pipe, prompt: str, folder: Path, stem: str, seed: int) -> None:
    """ti.images_per_prompt images of `prompt` into <folder>/<stem>_<i>.png, ti.batch_size per forward."""
    t, size = cfg.ti, cfg.model.image_size
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(seed)
    for start in range(0, t.images_per_prompt, t.batch_size):
        k = min(t.batch_size, t.images_per_prompt - start)
        images = pipe(prompt, num_images_per_prompt=k, generator=g, height=size, width=size,
                      num_inference_steps=t.num_inference_steps, guidance_scale=t.guidance_scale).images
        for i, img in enumerate(images, start):
            img.save(folder / f"{stem}_{i}.png")


def generate(cfg: DictConfig, pipe, concepts: list[Concept], samples: Path) -> None:
    """The course layout <samples>/<c>/<p>/source{c}_prompt{p}_{i}.png, written into a temporary folder that
    replaces `samples` once complete."""
    tmp = fresh_dir(samples.with_name(f".{samples.name}.tmp"))
    for c, concept in enumerate(concepts):
        for p, prompt in enumerate(concept.prompts):  # one random stream per prompt
            draw(cfg, pipe, prompt, tmp / concept.id / str(p), f"source{concept.id}_prompt{p}",
                 seed=cfg.seed * 100_003 + c * 1_000 + p)
    replace_dir(tmp, samples)


def multi_prompts(cfg: DictConfig, concepts: list[Concept]) -> list[tuple[int, str, list[Concept]]]:
    """(index, prompt, the concepts it names) for each ti.multi_prompts entry naming only loaded tokens."""
    found = []
    for k, prompt in enumerate(cfg.ti.multi_prompts):
        named = [c for c in concepts if c.token in prompt]
        tokens = set(re.findall(r"<[^<>\s]+>", prompt))
        if tokens and tokens <= {c.token for c in named}:
            found.append((k, prompt, named))
        else:
            log.warning("ti.multi_prompts[%d]=%r: skipped, names tokens %s that are not loaded", k, prompt,
                        sorted(tokens - {c.token for c in named}))
    return found


def generate_multi(cfg: DictConfig, pipe, prompts: list, folder: Path) -> None:
    """<folder>/<k>/multi_prompt{k}_{i}.png for each multi-concept prompt (all its embeddings loaded)."""
    tmp = fresh_dir(folder.with_name(f".{folder.name}.tmp"))
    for k, prompt, _ in prompts:
        draw(cfg, pipe, prompt, tmp / str(k), f"multi_prompt{k}", seed=cfg.seed * 100_003 + 99_000 + k)
    replace_dir(tmp, folder)


def resolve_scorer(cfg: DictConfig, device: torch.device) -> tuple[ClipScorer, bool]:
    """The CLIP of ti.clip_path, or a random tiny CLIP (True: its scores mean nothing)."""
    if cfg.ti.clip_path is not None:
        return ClipScorer(cfg.ti.clip_path, device), False
    from src.standins.tiny_sd import write_tiny_clip

    log.warning("ti.clip_path=null: scoring with a RANDOM tiny CLIP; the scores are meaningless")
    return ClipScorer(_cached(Path(cfg.paths.cache_dir) / "ti" / "clip_tiny", write_tiny_clip), device), True


def _images(folder: Path) -> list[Image.Image]:
    """The PNGs of `folder` in index order (<stem>_<i>.png)."""
    files = sorted(folder.glob("*.png"), key=lambda f: int(f.stem.rsplit("_", 1)[1]))
    return [Image.open(f).convert("RGB") for f in files]


def grade(scorer: ClipScorer, concepts: list[Concept], samples: Path) -> tuple[dict, list]:
    """The course's scores per prompt from the files on disk: flat metrics c{c}/p{p}/<name> and table rows."""
    metrics: dict[str, float] = {}
    rows = []
    for concept in concepts:
        refs = [Image.open(p).convert("RGB") for p in concept.images]
        for p, (clip_prompt, baseline) in enumerate(zip(concept.clip_prompts, concept.baselines)):
            scores = grade_images(scorer, _images(samples / concept.id / str(p)), refs, clip_prompt, baseline)
            metrics.update({f"c{concept.id}/p{p}/{k}": v for k, v in scores.items()})
            rows.append((f"c{concept.id}_p{p}", concept.prompts[p], scores))
    passes = [r[2]["pass"] for r in rows]
    metrics["pass_rate"] = sum(passes) / len(passes)
    metrics["mean_image_score"] = sum(r[2]["image_score"] for r in rows) / len(rows)
    metrics["mean_text_score"] = sum(r[2]["text_score"] for r in rows) / len(rows)
    return metrics, rows


def grade_multi(scorer: ClipScorer, prompts: list, folder: Path) -> tuple[dict, list]:
    """Each multi-concept prompt scored against each named concept's references (top 5 by that concept's
    total), the CLIP prompt being the prompt with each token replaced by its concept's src_image."""
    metrics: dict[str, float] = {}
    rows = []
    for k, prompt, named in prompts:
        clip_prompt = prompt
        for concept in named:
            clip_prompt = clip_prompt.replace(concept.token, concept.src_image)
        generated = _images(folder / str(k))
        for concept in named:
            refs = [Image.open(p).convert("RGB") for p in concept.images]
            scores = grade_images(scorer, generated, refs, clip_prompt, (0.0, 0.0))
            for key in ("image_score", "text_score", "total"):
                metrics[f"multi/p{k}/c{concept.id}/{key}"] = scores[key]
            rows.append((f"multi_p{k}", f"{prompt} (vs concept {concept.id})", scores))
        metrics[f"multi/p{k}/min_image_score"] = min(metrics[f"multi/p{k}/c{c.id}/image_score"] for c in named)
    return metrics, rows


def write_figures(folders: dict[str, Path], out: Path) -> dict[str, Path]:
    """One grid (5 per row) per image folder in <run>/figures/<name>.png; returns {samples/<name>: path}."""
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    figures = {}
    for name, folder in folders.items():
        images = torch.stack([torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in _images(folder)])
        save_png(make_grid(images, nrow=5), fig_dir / f"{name}.png")
        figures[f"samples/{name}"] = fig_dir / f"{name}.png"
    return figures


def log_table(logger, rows: list, figures: dict[str, Path]) -> None:
    """A W&B table with a row per prompt (its scores and its image grid)."""
    if logger is None or type(logger).__name__ != "WandbLogger":
        return
    import wandb

    columns = ["name", "prompt", "image_score", "text_score", "total", "image_baseline", "text_baseline", "pass",
               "images"]
    data = [[name, prompt, *(s.get(k, float("nan")) for k in columns[2:8]), wandb.Image(str(figures[f"samples/{name}"]))]
            for name, prompt, s in rows]
    logger.log_table(key="ti/scores", columns=columns, data=data)


def run(cfg: DictConfig) -> dict[str, float]:
    """Concepts -> SD -> train (or load) each token -> 25 images per prompt -> CLIP scores."""
    start, out = time.perf_counter(), Path(cfg.paths.output_dir)
    concepts = resolve_concepts(cfg)
    pipe = resolve_pipeline(cfg)
    logger = build_logger(cfg, out, run_name=out.name, job_type=cfg.task.name)
    t0 = time.perf_counter()
    metrics = fit_or_load(cfg, pipe, concepts, out, logger)
    if not is_main_process():
        return {}  # DDP: rank 0 alone generates, scores and writes
    metrics["time/train_s"] = time.perf_counter() - t0
    device = task_device(cfg.trainer)
    t0 = time.perf_counter()
    pipe.to(device)
    generate(cfg, pipe, concepts, out / "samples")
    multi = multi_prompts(cfg, concepts)
    if multi:
        generate_multi(cfg, pipe, multi, out / "samples_multi")
    metrics["time/sample_s"] = time.perf_counter() - t0
    scorer, random_clip = resolve_scorer(cfg, device)
    metrics["grade/random_clip"] = float(random_clip)
    scores, rows = grade(scorer, concepts, out / "samples")
    multi_scores, multi_rows = grade_multi(scorer, multi, out / "samples_multi")
    metrics.update(scores)
    metrics.update(multi_scores)
    folders = {f"c{c.id}_p{p}": out / "samples" / c.id / str(p) for c in concepts for p in range(len(c.prompts))}
    folders.update({f"multi_p{k}": out / "samples_multi" / str(k) for k, _, _ in multi})
    figures = write_figures(folders, out)
    metrics["time/total_s"] = time.perf_counter() - start
    log_images(logger, figures)
    log_table(logger, rows + multi_rows, figures)
    log_metrics(logger, metrics)
    finish(logger)
    return metrics
