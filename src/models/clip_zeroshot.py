"""CLIP zero-shot classification (Radford et al. 2021, sec. 3.1.2): a linear classifier whose weights are
the text embeddings of prompts, built once by small pure functions (as open_clip's zero_shot_classifier),
applied to image embeddings encoded in batches."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from src.errors import CheckpointError, ConfigError


def load_clip(path: str | None, name: str | None):
    """(CLIPModel in eval mode, CLIPProcessor) from `path` (a save_pretrained folder) or `name` in the
    local Hugging Face cache; never downloads. Raises a one-line CheckpointError or ConfigError."""
    if path:
        folder = Path(path).expanduser()
        where = f"model.path={str(folder)!r}"
        if not (folder / "config.json").is_file():
            raise CheckpointError(f"{where}: no config.json there; expected a folder written by "
                                  "CLIPModel.save_pretrained and CLIPProcessor.save_pretrained")
        source = str(folder)
    elif name:
        where, source = f"model.name={name!r}", name
    else:
        raise ConfigError("model.path and model.name are both null: pass model.path=<folder saved with "
                          "save_pretrained> or model.name=<a CLIP hub id in the local Hugging Face cache>")
    try:
        model, processor = _from_pretrained(source, where)
    except (OSError, ValueError, KeyError, TypeError) as err:
        if isinstance(err, CheckpointError):
            raise
        if path:
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
            raise CheckpointError(f"{where}: not a CLIP model folder ({first}); expected CLIPModel and "
                                  "CLIPProcessor saved there with save_pretrained") from err
        raise CheckpointError(f"{where}: not in the local Hugging Face cache (nothing is downloaded); pass "
                              f"model.path=<folder saved with save_pretrained> or cache it first: "
                              f"hf download {name}") from err
    check_tokenizer(processor.tokenizer, model.config.text_config, where)
    return model.eval(), processor


def _from_pretrained(source: str, where: str):
    """Model and processor from local files only; absent or mis-shaped weights are an error (from_pretrained
    would initialise them at random with only a warning)."""
    from transformers import CLIPModel, CLIPProcessor

    model, info = CLIPModel.from_pretrained(source, local_files_only=True, output_loading_info=True)
    bad = [*info["missing_keys"], *(k[0] if isinstance(k, tuple) else k for k in info["mismatched_keys"])]
    if model.config.model_type != "clip" or bad:
        raise CheckpointError(f"{where}: not a CLIP checkpoint (model_type {model.config.model_type!r}, "
                              f"{len(bad)} weights missing or mis-shaped, e.g. {bad[:2]}); expected CLIPModel "
                              "weights saved with save_pretrained")
    return model, CLIPProcessor.from_pretrained(source, local_files_only=True)


def check_tokenizer(tokenizer, text_config, where: str) -> None:
    """Reject a tokenizer that holds only its special tokens (what CLIPTokenizer.from_pretrained returns
    for an uncached hub name) or more tokens than the model embeds; cap model_max_length (a tokenizer
    built from scratch says ~1e30) at the model's context length."""
    n, vocab = len(tokenizer), text_config.vocab_size
    specials = len(set(tokenizer.all_special_tokens))
    if not specials < n <= vocab:
        raise CheckpointError(f"{where}: its tokenizer has {n} tokens; expected a trained CLIP tokenizer "
                              f"(more than its {specials} special tokens, at most text_config.vocab_size={vocab}) "
                              "saved with the model")
    tokenizer.model_max_length = min(tokenizer.model_max_length, text_config.max_position_embeddings)


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
