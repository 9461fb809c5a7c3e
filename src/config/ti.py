"""Schemas of task=ti."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from src.config.schema import check as _check


@dataclass
class TIConfig:
    """Textual inversion / Custom Diffusion (task=ti): what trains, how long, how images are drawn and scored."""

    method: str = "textual_inversion"
    train: bool = True
    # A folder of an earlier run's embeddings (<c>/learned_embeds.safetensors) to load instead of training.
    embeds: Optional[str] = None
    # Concept ids of input.json to run; empty = all.
    concepts: list = field(default_factory=list)
    templates: str = "auto"
    initializer_tokens: Optional[list] = None
    num_vectors: int = 1
    lr: float = 5e-3
    # custom_diffusion: learning rate of the cross-attention key/value projections
    kv_lr: float = 1e-5
    steps: int = 2000
    checkpoint_every: int = 500
    images_per_prompt: int = 25
    batch_size: int = 5
    num_inference_steps: int = 50
    guidance_scale: float = 7.5
    clip_path: Optional[str] = None
    # Prompts naming several concepts' tokens, drawn with all their embeddings loaded (skipped if one is not).
    multi_prompts: list = field(default_factory=lambda: ["a <new1> next to a <new2>"])

    def check(self, key: str) -> None:
        _check(self.method in ("textual_inversion", "custom_diffusion"), f"{key}.method", self.method,
               "one of textual_inversion, custom_diffusion")
        _check(self.kv_lr > 0, f"{key}.kv_lr", self.kv_lr, "a value > 0")
        _check(self.templates in ("auto", "object", "style"), f"{key}.templates", self.templates,
               "one of auto, object, style")
        _check(self.num_vectors >= 1, f"{key}.num_vectors", self.num_vectors, "an integer >= 1")
        _check(self.lr > 0, f"{key}.lr", self.lr, "a value > 0")
        _check(self.steps >= 0, f"{key}.steps", self.steps, "an integer >= 0")
        _check(self.checkpoint_every >= 1, f"{key}.checkpoint_every", self.checkpoint_every, "an integer >= 1")
        _check(self.images_per_prompt >= 1, f"{key}.images_per_prompt", self.images_per_prompt, "an integer >= 1")
        _check(self.batch_size >= 1, f"{key}.batch_size", self.batch_size, "an integer >= 1")
        _check(self.num_inference_steps >= 1, f"{key}.num_inference_steps", self.num_inference_steps,
               "an integer >= 1")
        _check(self.guidance_scale >= 0, f"{key}.guidance_scale", self.guidance_scale, "a value >= 0")


SCHEMAS = [("ti", "ti_schema", TIConfig)]
