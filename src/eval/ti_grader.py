"""The course's textual-inversion grader: pure functions on CLIP embeddings, the CLIP forward, and the scores of
a run's image folders (per concept prompt and per multi-concept prompt).

Per generated image: image score = 100 x cosine to each reference image of the concept, averaged; text score =
CLIP's logits_per_image against `prompt_4_clip_eval` (logit_scale.exp() x cosine, 100 for ViT-B/32); total =
image + 2.5 x text. The 5 images with the best totals are averaged; a prompt passes when both averages reach
its baseline [image_score, text_score]."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Optional

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from src.data.ti_data import Concept
from src.images import read_numbered_pngs
from src.models.clip import load_clip

log = logging.getLogger(__name__)

TEXT_WEIGHT = 2.5
TOP_K = 5


def image_scores(gen: Tensor, refs: Tensor) -> Tensor:
    """gen [N, D], refs [R, D] (any norm) -> [N]: 100 x cosine to each reference, averaged over references."""
    return 100.0 * (F.normalize(gen.float(), dim=-1) @ F.normalize(refs.float(), dim=-1).T).mean(dim=1)


def text_scores(gen: Tensor, text: Tensor, logit_scale: float = 100.0) -> Tensor:
    """gen [N, D], text [D] -> [N]: CLIP's logits_per_image = logit_scale x cosine."""
    return logit_scale * (F.normalize(gen.float(), dim=-1) @ F.normalize(text.float().reshape(-1), dim=0))


def grade_prompt(img: Tensor, txt: Tensor, baseline: tuple[float, float], *, top_k: int = TOP_K,
                 text_weight: float = TEXT_WEIGHT) -> dict[str, float]:
    """Per-image scores [N] -> the top-k averages by total, and pass (both averages >= the baseline)."""
    total = img + text_weight * txt
    best = total.topk(min(top_k, total.numel())).indices
    image_score, text_score = float(img[best].mean()), float(txt[best].mean())
    return {"image_score": image_score, "text_score": text_score, "total": float(total[best].mean()),
            "image_baseline": float(baseline[0]), "text_baseline": float(baseline[1]),
            "pass": float(image_score >= baseline[0] and text_score >= baseline[1])}


class ClipScorer:
    """CLIP image and text embeddings for the grader, from a loaded CLIPModel + CLIPProcessor."""

    def __init__(self, model, processor, device: str | torch.device = "cpu"):
        self.model, self.processor, self.device = model.eval().to(device), processor, device
        self.logit_scale = float(self.model.logit_scale.detach().exp())

    @torch.no_grad()
    def images(self, images: list, batch_size: int = 25) -> Tensor:
        """PIL images -> projected image embeddings [N, D]."""
        out = []
        for i in range(0, len(images), batch_size):
            px = self.processor(images=images[i:i + batch_size], return_tensors="pt")["pixel_values"]
            out.append(self.model.get_image_features(pixel_values=px.to(self.device)).pooler_output.float().cpu())
        return torch.cat(out)

    @torch.no_grad()
    def texts(self, texts: list[str]) -> Tensor:
        """Strings -> projected text embeddings [T, D]."""
        tok = self.processor(text=texts, return_tensors="pt", padding=True, truncation=True)
        out = self.model.get_text_features(input_ids=tok["input_ids"].to(self.device),
                                           attention_mask=tok["attention_mask"].to(self.device))
        return out.pooler_output.float().cpu()  # transformers >= 5: the projected embeddings


def load_scorer(weights: Optional[str], *, cache_dir: str | Path, embedded: Optional[Mapping] = None,
                device: str | torch.device = "cpu") -> ClipScorer:
    """scorer=clip: the CLIP of `weights` (src.models.clip.load_clip: a local folder, else a Hub id), or for
    None difflab's own tiny CLIP (`embedded`: steps, seed), trained once into cache_dir."""
    return ClipScorer(*load_clip(weights, key="scorer.weights", cache_dir=cache_dir, embedded=embedded), device)


def grade_images(scorer: ClipScorer, generated: list, references: list, clip_prompt: str,
                 baseline: tuple[float, float]) -> dict[str, float]:
    """PIL generated and reference images + the CLIP prompt -> grade_prompt's dict."""
    gen = scorer.images(generated)
    return grade_prompt(image_scores(gen, scorer.images(references)),
                        text_scores(gen, scorer.texts([clip_prompt])[0], scorer.logit_scale), baseline)


def _references(concept: Concept) -> list:
    return [Image.open(p).convert("RGB") for p in concept.images]


def grade_concepts(scorer: ClipScorer, concepts: list[Concept], samples: Path) -> tuple[dict, list]:
    """The course's scores per prompt from <samples>/<c>/<p>/*.png: flat metrics c{c}/p{p}/<name>, pass_rate,
    mean_image_score, mean_text_score, and table rows (name, prompt, scores)."""
    metrics: dict[str, float] = {}
    rows = []
    for concept in concepts:
        refs = _references(concept)
        for p, (clip_prompt, baseline) in enumerate(zip(concept.clip_prompts, concept.baselines)):
            scores = grade_images(scorer, read_numbered_pngs(samples / concept.id / str(p)), refs, clip_prompt,
                                  baseline)
            metrics.update({f"c{concept.id}/p{p}/{k}": v for k, v in scores.items()})
            rows.append((f"c{concept.id}_p{p}", concept.prompts[p], scores))
    passes = [r[2]["pass"] for r in rows]
    metrics["pass_rate"] = sum(passes) / len(passes)
    metrics["mean_image_score"] = sum(r[2]["image_score"] for r in rows) / len(rows)
    metrics["mean_text_score"] = sum(r[2]["text_score"] for r in rows) / len(rows)
    return metrics, rows


def grade_multi(scorer: ClipScorer, prompts: list[tuple[int, str, list[Concept]]], folder: Path) -> tuple[dict, list]:
    """Each multi-concept prompt's <folder>/<k>/*.png scored against each named concept's references (top 5 by
    that concept's total), the CLIP prompt being the prompt with each token replaced by its concept's src_image."""
    metrics: dict[str, float] = {}
    rows = []
    for k, prompt, named in prompts:
        clip_prompt = prompt
        for concept in named:
            clip_prompt = clip_prompt.replace(concept.token, concept.src_image)
        generated = read_numbered_pngs(folder / str(k))
        for concept in named:
            scores = grade_images(scorer, generated, _references(concept), clip_prompt, (0.0, 0.0))
            for key in ("image_score", "text_score", "total"):
                metrics[f"multi/p{k}/c{concept.id}/{key}"] = scores[key]
            rows.append((f"multi_p{k}", f"{prompt} (vs concept {concept.id})", scores))
        metrics[f"multi/p{k}/min_image_score"] = min(metrics[f"multi/p{k}/c{c.id}/image_score"] for c in named)
    return metrics, rows


def initializer_gains(scores: dict, initial: dict) -> dict[str, float]:
    """initializer/c<c>/p<p>/{image,text}_score from the initializer words' grades, and the learned token's
    gain over them: c<c>/p<p>/image_gain and mean_image_gain (points of image score)."""
    out = {f"initializer/{k}": v for k, v in initial.items() if k.endswith(("/image_score", "/text_score"))}
    gains = {k.replace("/image_score", "/image_gain"): scores[k] - v for k, v in initial.items()
             if k.endswith("/image_score")}
    return {**out, **gains, "mean_image_gain": sum(gains.values()) / len(gains)}


TABLE_COLUMNS = ["name", "prompt", "image_score", "text_score", "total", "image_baseline", "text_baseline", "pass",
                 "images"]


def score_table(rows: list, figures: dict[str, Path]) -> list[list]:
    """Rows of TABLE_COLUMNS: a prompt's scores and the path of its image grid (figures['samples/<name>'])."""
    return [[name, prompt, *(s.get(k, float("nan")) for k in TABLE_COLUMNS[2:8]), figures[f"samples/{name}"]]
            for name, prompt, s in rows]
