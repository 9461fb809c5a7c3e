"""The course's textual-inversion grader as pure functions on CLIP embeddings, plus the CLIP forward.

Per generated image: image score = 100 x cosine to each reference image of the concept, averaged; text score =
CLIP's logits_per_image against `prompt_4_clip_eval` (logit_scale.exp() x cosine, 100 for ViT-B/32); total =
image + 2.5 x text. The 5 images with the best totals are averaged; a prompt passes when both averages reach
its baseline [image_score, text_score]."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from src.errors import CheckpointError, ConfigError

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
    """A CLIPModel + CLIPProcessor from a local folder (save_pretrained layout), offline."""

    def __init__(self, path: str | Path, device: str | torch.device = "cpu"):
        from transformers import CLIPModel, CLIPProcessor

        path = Path(path).expanduser()
        if not path.is_dir():
            raise ConfigError(f"ti.clip_path={str(path)!r}: no such folder; expected a CLIP saved with "
                              "save_pretrained (e.g. openai/clip-vit-base-patch32)")
        try:
            self.model = CLIPModel.from_pretrained(path, local_files_only=True).eval().to(device)
            self.processor = CLIPProcessor.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise CheckpointError(f"{path}: cannot load a CLIPModel and CLIPProcessor ({first})") from err
        self.device = device
        self.logit_scale = float(self.model.logit_scale.detach().exp())

    @torch.no_grad()
    def images(self, images: list, batch_size: int = 25) -> Tensor:
        """PIL images -> projected image embeddings [N, D]."""
        out = []
        for i in range(0, len(images), batch_size):
            px = self.processor(images=images[i:i + batch_size], return_tensors="pt")["pixel_values"]
            out.append(_pooled(self.model.get_image_features(pixel_values=px.to(self.device))).float().cpu())
        return torch.cat(out)

    @torch.no_grad()
    def texts(self, texts: list[str]) -> Tensor:
        """Strings -> projected text embeddings [T, D]."""
        tok = self.processor(text=texts, return_tensors="pt", padding=True, truncation=True)
        return _pooled(self.model.get_text_features(input_ids=tok["input_ids"].to(self.device),
                                                    attention_mask=tok["attention_mask"].to(self.device))).float().cpu()


def _pooled(out) -> Tensor:
    """transformers 5.x returns an output object from get_*_features (its pooler_output), older ones a tensor."""
    return out if isinstance(out, Tensor) else out.pooler_output


def grade_images(scorer: ClipScorer, generated: list, references: list, clip_prompt: str,
                 baseline: tuple[float, float]) -> dict[str, float]:
    """PIL generated and reference images + the CLIP prompt -> grade_prompt's dict."""
    gen = scorer.images(generated)
    return grade_prompt(image_scores(gen, scorer.images(references)),
                        text_scores(gen, scorer.texts([clip_prompt])[0], scorer.logit_scale), baseline)
