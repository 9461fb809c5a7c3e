"""task=clip: CLIP zero-shot classification of a labelled image set. The text classifier is built once
(prompt templates x class names), every image is encoded once in batches; writes top-1/top-5 and
per-class accuracy, predictions.csv, a confusion matrix and grids of correct and incorrect cases."""
from __future__ import annotations

import logging

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.data.clip_data import image_loader, load_image_set
from src.eval.zero_shot import classification_metrics, write_zero_shot_outputs
from src.models.clip_zeroshot import build_text_classifier, encode_images, text_encoder, zero_shot_logits
from src.tasks.context import task_run

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict[str, float]:
    """Images -> CLIP -> text classifier -> batched image embeddings -> scores, files, figures."""
    with task_run(cfg) as r:
        t, d, prompt = cfg.task, cfg.data, cfg.prompt
        model, processor = instantiate(cfg.model)()  # first: a missing model fails before the data is built
        images = load_image_set(d.root, d.layout, cache_dir=cfg.paths.cache_dir,
                                embedded=OmegaConf.to_container(d.embedded))
        model.to(r.device)
        log.info("%d images, %d classes from %s; prompt=%s (%d templates)", len(images), len(images.class_names),
                 images.root, prompt.name, len(prompt.templates))
        with r.timed("classifier"):
            classifier = build_text_classifier(text_encoder(model, processor.tokenizer, r.device),
                                               images.class_names, list(prompt.templates),
                                               batch_size=t.batch_size)  # [D, K]
        loader = image_loader(images, processor.image_processor, t.batch_size, t.num_workers,
                              r.device.type == "cuda")
        with r.timed("encode"):
            features, labels, indices = encode_images(model, loader, r.device)
        logits = zero_shot_logits(features, classifier.cpu(), float(model.logit_scale.detach().exp()))  # [N, K]
        r.metrics.update(classification_metrics(logits, labels, images.class_names))
        r.figures.update(write_zero_shot_outputs(r.out, images, logits, labels, indices, top1=r.metrics["top1"],
                                                 prompt=prompt.name, num_cases=t.num_cases, seed=cfg.seed))
        log.info("top-1 %.4f, top-5 %.4f on %d images (%.1f images/s)", r.metrics["top1"], r.metrics["top5"],
                 len(images), len(images) / r.metrics["time/encode_s"])
    return r.metrics
