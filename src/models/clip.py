"""The one CLIP loader (model=clip for zero-shot, scorer=clip for the TI grader): a CLIPModel + CLIPProcessor
from a local folder or by Hub id (cached, or downloaded on first use), with its tokenizer and weights checked."""
from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Optional

from src.errors import CheckpointError, ConfigError, first_line
from src.models.hub import load_hub_model, looks_like_hub_id

SAVE_PRETRAINED = "a folder saved with save_pretrained"


def load_clip(weights: Optional[str], *, key: str = "model.weights", cache_dir: Optional[str | Path] = None,
              embedded: Optional[Mapping] = None):
    """(CLIPModel in eval mode, CLIPProcessor) from `weights`: a folder written by save_pretrained when that
    path exists, else a Hub id (from the Hugging Face cache, downloaded into it on first use: src.models.hub);
    None: difflab's own tiny CLIP (`embedded`: steps, seed), trained once into `cache_dir`.
    `key` names the config key in the one-line CheckpointError / ConfigError."""
    if weights is None:
        if cache_dir is None:
            raise ConfigError(f"{key}=None: expected a CLIP {SAVE_PRETRAINED.removeprefix('a ')} or a Hub id such "
                              "as openai/clip-vit-base-patch32")
        from src.models.embedded_clip import embedded_clip

        weights = str(embedded_clip(cache_dir, **dict(embedded or {})))
    folder = Path(str(weights)).expanduser()
    if folder.exists():
        where = f"{key}={str(folder)!r}"
        if not (folder / "config.json").is_file():
            raise CheckpointError(f"{where}: no config.json there; expected a folder written by "
                                  "CLIPModel.save_pretrained and CLIPProcessor.save_pretrained")
        try:
            model, processor = _from_pretrained(str(folder), where, local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as err:
            if isinstance(err, CheckpointError):
                raise
            raise CheckpointError(f"{where}: not a CLIP model folder ({first_line(err)}); expected CLIPModel and "
                                  "CLIPProcessor saved there with save_pretrained") from err
    elif looks_like_hub_id(str(weights)):
        where = f"{key}={weights!r}"
        model, processor = load_hub_model(str(weights), partial(_from_pretrained, str(weights), where), key=key,
                                          instead="a CLIP folder saved with save_pretrained")
    else:
        raise ConfigError(f"{key}={str(folder)!r}: no such folder; expected {SAVE_PRETRAINED} or a CLIP Hub id")
    check_tokenizer(processor.tokenizer, model.config.text_config, where)
    return model.eval(), processor


def _from_pretrained(source: str, where: str, local_files_only: bool):
    """Model and processor; absent or mis-shaped weights are an error (from_pretrained would initialise them
    at random with only a warning)."""
    from transformers import CLIPModel, CLIPProcessor

    model, info = CLIPModel.from_pretrained(source, local_files_only=local_files_only, output_loading_info=True)
    bad = [*info["missing_keys"], *(k[0] if isinstance(k, tuple) else k for k in info["mismatched_keys"])]
    if model.config.model_type != "clip" or bad:
        raise CheckpointError(f"{where}: not a CLIP checkpoint (model_type {model.config.model_type!r}, "
                              f"{len(bad)} weights missing or mis-shaped, e.g. {bad[:2]}); expected CLIPModel "
                              "weights saved with save_pretrained")
    return model, CLIPProcessor.from_pretrained(source, local_files_only=local_files_only)


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
