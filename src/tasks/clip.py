"""task=clip: CLIP zero-shot classification of a labelled image set. The text classifier is built once
(prompt templates x class names), every image is encoded once in batches; writes top-1/top-5 and
per-class accuracy, predictions.csv, a confusion matrix and grids of correct and incorrect cases."""
from __future__ import annotations

import csv
import io
import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import Tensor

from src.data.clip_data import LAYOUTS, ImageSet, image_loader, open_rgb, read_embedded_digits, read_image_set
from src.errors import ConfigError
from src.eval.zero_shot import classification_metrics, confusion_matrix
from src.figures import save_cases, save_confusion
from src.loggers import build_logger, finish, log_images, log_metrics
from src.models.clip_zeroshot import (build_text_classifier, encode_images, load_clip, text_encoder,
                                      zero_shot_logits)
from src.runtime import atomic_write, task_device

log = logging.getLogger(__name__)


def check_config(cfg: DictConfig) -> None:
    """The task's own keys (the schema leaves task/data/model free-form)."""
    checks = [
        ("data.layout", cfg.data.layout, cfg.data.layout in LAYOUTS, f"one of {', '.join(LAYOUTS)}"),
        ("model.batch_size", cfg.model.batch_size, cfg.model.batch_size >= 1, "an integer >= 1"),
        ("model.num_workers", cfg.model.num_workers, cfg.model.num_workers >= 0, "an integer >= 0"),
        ("task.num_cases", cfg.task.num_cases, cfg.task.num_cases >= 0, "an integer >= 0"),
    ]
    for key, value, ok, expected in checks:
        if not ok:
            raise ConfigError(f"{key}={value!r}: expected {expected}")


def resolve_image_set(cfg: DictConfig) -> ImageSet:
    """data.root in the course layout or one folder per class; null: the embedded digits' val images."""
    d = cfg.data
    if d.root is None:
        e = d.embedded
        return read_embedded_digits(Path(cfg.paths.cache_dir), seed=e.seed, n_train=e.n_train, n_val=e.n_val,
                                    domains=list(e.domains))
    return read_image_set(Path(d.root), d.layout)


def write_predictions(path: Path, images: ImageSet, logits: Tensor, labels: Tensor, indices: Tensor) -> Path:
    """predictions.csv (file, true, pred, top5 as names joined by '|', correct as 0/1), written atomically."""
    names = images.class_names
    top = logits.topk(min(5, logits.shape[1]), dim=1).indices  # [N, 5]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", "true", "pred", "top5", "correct"])
    for i, y, t in zip(indices.tolist(), labels.tolist(), top.tolist()):
        writer.writerow([images.relative(i), names[y], names[t[0]], "|".join(names[c] for c in t), int(t[0] == y)])
    return atomic_write(path, lambda p: p.write_text(buf.getvalue()))


def case_figures(fig_dir: Path, images: ImageSet, predictions: Tensor, labels: Tensor, indices: Tensor,
                 num_cases: int, seed: int, prompt: str) -> dict[str, Path]:
    """figures/correct.png and figures/incorrect.png: num_cases random cases each, titled 'true / pred'."""
    g = torch.Generator().manual_seed(seed)
    names, figures = images.class_names, {}
    for kind, mask in (("correct", predictions == labels), ("incorrect", predictions != labels)):
        where = mask.nonzero().flatten()
        chosen = where[torch.randperm(len(where), generator=g)[:num_cases]].tolist()
        if not chosen:
            log.info("no %s cases: figures/%s.png not written", kind, kind)
            continue
        figures[f"cases/{kind}"] = save_cases(
            [open_rgb(images.files[indices[j]]) for j in chosen],
            [f"{names[labels[j]]} / {names[predictions[j]]}" for j in chosen], fig_dir / f"{kind}.png",
            title=f"{kind.capitalize()} cases, true / predicted (prompt={prompt})")
    return figures


def write_outputs(cfg: DictConfig, out: Path, images: ImageSet, logits: Tensor, labels: Tensor, indices: Tensor,
                  top1: float) -> dict[str, Path]:
    """predictions.csv, figures/confusion.png and the case grids; returns the figures by W&B key."""
    predictions = logits.argmax(dim=1)
    out.mkdir(parents=True, exist_ok=True)
    write_predictions(out / "predictions.csv", images, logits, labels, indices)
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    matrix = confusion_matrix(predictions, labels, len(images.class_names))
    figures = {"confusion": save_confusion(matrix, fig_dir / "confusion.png", class_names=images.class_names,
                                           title=f"CLIP zero-shot, prompt={cfg.prompt.name}: top-1 {top1:.4f}")}
    figures.update(case_figures(fig_dir, images, predictions, labels, indices, cfg.task.num_cases, cfg.seed,
                                cfg.prompt.name))
    return figures


def run(cfg: DictConfig) -> dict[str, float]:
    """Images -> CLIP -> text classifier -> batched image embeddings -> scores, files, figures."""
    start = time.perf_counter()
    check_config(cfg)
    m, out = cfg.model, Path(cfg.paths.output_dir)
    model, processor = load_clip(m.path, m.name)  # first: a missing model fails before the data is built
    images = resolve_image_set(cfg)
    device = task_device(cfg.trainer)
    model.to(device)
    log.info("%d images, %d classes from %s; prompt=%s (%d templates)", len(images), len(images.class_names),
             images.root, cfg.prompt.name, len(cfg.prompt.templates))
    logger = build_logger(cfg, out, run_name=out.name, job_type=cfg.task.name)
    t0 = time.perf_counter()
    classifier = build_text_classifier(text_encoder(model, processor.tokenizer, device), images.class_names,
                                       list(cfg.prompt.templates), batch_size=m.batch_size)  # [D, K]
    metrics = {"time/classifier_s": time.perf_counter() - t0}
    loader = image_loader(images, processor.image_processor, m.batch_size, m.num_workers, device.type == "cuda")
    t0 = time.perf_counter()
    features, labels, indices = encode_images(model, loader, device)
    metrics["time/encode_s"] = time.perf_counter() - t0
    logits = zero_shot_logits(features, classifier.cpu(), float(model.logit_scale.detach().exp()))  # [N, K]
    metrics.update(classification_metrics(logits, labels, images.class_names))
    figures = write_outputs(cfg, out, images, logits, labels, indices, metrics["top1"])
    metrics["time/total_s"] = time.perf_counter() - start
    log.info("top-1 %.4f, top-5 %.4f on %d images (%.1f images/s)", metrics["top1"], metrics["top5"], len(images),
             len(images) / metrics["time/encode_s"])
    log_images(logger, figures)
    log_metrics(logger, metrics)
    finish(logger)
    return metrics
