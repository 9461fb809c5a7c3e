"""CLIP zero-shot classification (Radford et al. 2021, sec. 3.1.2): a linear classifier whose weights are
the text embeddings of prompts, built once by small pure functions (as open_clip's zero_shot_classifier),
applied to image embeddings encoded in batches. The model comes from src.models.clip.load_clip."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader


def text_encoder(model, tokenizer, device: torch.device) -> Callable[[list[str]], Tensor]:
    """prompts -> projected text embeddings float32 [N, D] (not normalised)."""

    def encode(prompts: list[str]) -> Tensor:
        tokens = tokenizer(prompts, padding=True, truncation=True, return_tensors="pt").to(device)
        with torch.inference_mode():
            return model.get_text_features(**tokens).pooler_output.float()

    return encode


def fill_templates(class_names: Sequence[str], templates: Sequence[str]) -> list[str]:
    """K class names x T templates -> K*T prompts, class-major: [c0 t0, c0 t1, ..., c1 t0, ...]."""
    return [t.replace("{}", name) for name in class_names for t in templates]


def average_templates(text_features: Tensor) -> Tensor:
    """[K, T, D] embeddings -> classifier weights [D, K]: normalise each template's embedding, average over
    templates, renormalise (CLIP's prompt ensembling, sec. 3.1.4)."""
    return F.normalize(F.normalize(text_features, dim=-1).mean(dim=1), dim=-1).T


def build_text_classifier(encode_text: Callable[[list[str]], Tensor], class_names: Sequence[str],
                          templates: Sequence[str], batch_size: int = 256) -> Tensor:
    """Encode every prompt once, in batches, and average per class: weights [D, K] with unit columns."""
    prompts = fill_templates(class_names, templates)
    features = torch.cat([encode_text(prompts[i:i + batch_size]) for i in range(0, len(prompts), batch_size)])
    return average_templates(features.view(len(class_names), len(templates), -1))  # [K*T, D] -> [K, T, D]


def encode_images(model, loader: DataLoader, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Unit image embeddings float32 [N, D], labels [N] and dataset indices [N], batch by batch."""
    features, labels, indices = [], [], []
    with torch.inference_mode():
        for x, y, index in loader:  # x float32 [B, 3, H, W]
            f = model.get_image_features(pixel_values=x.to(device, non_blocking=True)).pooler_output  # [B, D]
            features.append(F.normalize(f.float(), dim=-1).cpu())
            labels.append(y)
            indices.append(index)
    return torch.cat(features), torch.cat(labels), torch.cat(indices)


def zero_shot_logits(image_features: Tensor, classifier: Tensor, logit_scale: float = 100.0) -> Tensor:
    """[N, D] image embeddings and [D, K] weights -> logits [N, K] = scale * cosine similarity."""
    return logit_scale * F.normalize(image_features, dim=-1) @ classifier
