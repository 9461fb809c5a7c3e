"""Schemas of task=ti: its task, data, model (Stable Diffusion or the tiny stand-in), ti (the training
method: textual inversion or Custom Diffusion) and scorer (the grader's CLIP) options."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from src.config.clip import EmbeddedClipConfig
from src.config.schema import check as _check


@dataclass
class EmbeddedConceptsConfig:
    """The embedded default concepts (scikit-image photos), built once into paths.cache_dir."""

    seed: int = 0
    size: int = 64

    def check(self, key: str) -> None:
        _check(self.size >= 8, f"{key}.size", self.size, "an integer >= 8")


@dataclass
class TIDataConfig:
    """The course's textual_inversion folder (input.json + one image folder per concept) or, root null, the
    embedded default; the training DataLoader."""

    root: Optional[str] = None
    embedded: EmbeddedConceptsConfig = field(default_factory=EmbeddedConceptsConfig)
    batch_size: int = 4
    # passes over a concept's images per epoch
    repeats: int = 100
    num_workers: int = 0

    def check(self, key: str) -> None:
        self.embedded.check(f"{key}.embedded")
        _check(self.batch_size >= 1, f"{key}.batch_size", self.batch_size, "an integer >= 1")
        _check(self.repeats >= 1, f"{key}.repeats", self.repeats, "an integer >= 1")
        _check(self.num_workers >= 0, f"{key}.num_workers", self.num_workers, "an integer >= 0")


def _check_image_size(key: str, size: int) -> None:
    _check(size >= 8 and size % 8 == 0, f"{key}.image_size", size, "a multiple of 8")


@dataclass
class EmbeddedSDConfig:
    """difflab's own tiny SD (src.models.embedded_sd), trained once into cache_dir where `weights` is null: the
    VAE's and the UNet's training steps (a smaller build for tests), the seed, and whether the build judges
    what it draws (difflab_build.json; false saves a minute)."""

    vae_steps: int = 1000
    steps: int = 1800
    seed: int = 0
    judge: bool = True

    def check(self, key: str) -> None:
        _check(self.vae_steps >= 1, f"{key}.vae_steps", self.vae_steps, "an integer >= 1")
        _check(self.steps >= 1, f"{key}.steps", self.steps, "an integer >= 1")


@dataclass
class SDConfig:
    """Stable Diffusion v1.x: `weights` a diffusers folder, a Hub id or a single .ckpt/.safetensors (then
    original_config, and config: the component configs, a folder or Hub id); null = difflab's own tiny SD,
    trained once into cache_dir (`embedded`). Checked when loaded."""

    _target_: str = "src.models.sd_pipeline.load_sd_pipeline"
    _partial_: bool = True
    weights: Optional[str] = None
    cache_dir: str = "???"
    original_config: Optional[str] = None
    config: Optional[str] = "CompVis/stable-diffusion-v1-4"
    # the resolution trained and drawn at; null = the model's (512 for SD v1, 32 for difflab's tiny SD)
    image_size: Optional[int] = None
    embedded: EmbeddedSDConfig = field(default_factory=EmbeddedSDConfig)

    def check(self, key: str) -> None:
        self.embedded.check(f"{key}.embedded")
        if self.image_size is not None:
            _check_image_size(key, self.image_size)


@dataclass
class TextualInversionConfig:
    """One new token per concept, trained apart (Gal et al. 2022); pipe, token, initializer come at run time."""

    _target_: str = "src.models.textual_inversion.TextualInversionModule"
    _partial_: bool = True
    num_vectors: int = 1
    lr: float = 5e-3
    # Recompute the frozen UNet's and text encoder's activations in the backward pass: less memory, more time.
    gradient_checkpointing: bool = False

    def check(self, key: str) -> None:
        _check(self.num_vectors >= 1, f"{key}.num_vectors", self.num_vectors, "an integer >= 1")
        _check(self.lr > 0, f"{key}.lr", self.lr, "a value > 0")


@dataclass
class CustomDiffusionConfig(TextualInversionConfig):
    """All tokens + the cross-attention key/value projections trained jointly (Kumari et al. 2023)."""

    _target_: str = "src.models.custom_diffusion.CustomDiffusionModule"
    kv_lr: float = 1e-5

    def check(self, key: str) -> None:
        super().check(key)
        _check(self.kv_lr > 0, f"{key}.kv_lr", self.kv_lr, "a value > 0")


@dataclass
class ClipScorerConfig:
    """The grader's CLIP: weights a local folder or a Hub id (the loader of model=clip); null = difflab's own
    tiny CLIP, trained once into cache_dir (src.models.embedded_clip; `embedded`: its steps and seed)."""

    _target_: str = "src.eval.ti_grader.load_scorer"
    _partial_: bool = True
    weights: Optional[str] = None
    cache_dir: str = "???"
    embedded: EmbeddedClipConfig = field(default_factory=EmbeddedClipConfig)

    def check(self, key: str) -> None:
        self.embedded.check(f"{key}.embedded")


@dataclass
class TITaskConfig:
    """task=ti: which concepts, how their training prompts are made, and how images are drawn."""

    name: str = "ti"
    main_metric: str = "pass_rate"
    # false: draw with `weights` (an earlier run's embeddings folder) instead of training
    train: bool = True
    weights: Optional[str] = None
    # concept ids of input.json to run; empty = all
    concepts: list = field(default_factory=list)
    templates: str = "auto"
    initializer_tokens: Optional[list] = None
    checkpoint_every: int = 500
    # also draw every prompt with each token's initializer word (same noise) and report the learned token's gain
    initializer_scores: bool = False
    images_per_prompt: int = 25
    # images per forward when drawing
    batch_size: int = 5
    num_inference_steps: int = 50
    guidance_scale: float = 7.5
    multi_prompts: list = field(default_factory=lambda: ["a <new1> next to a <new2>"])

    def check(self, key: str) -> None:
        _check(self.templates in ("auto", "object", "style"), f"{key}.templates", self.templates,
               "one of auto, object, style")
        _check(self.checkpoint_every >= 1, f"{key}.checkpoint_every", self.checkpoint_every, "an integer >= 1")
        _check(self.images_per_prompt >= 1, f"{key}.images_per_prompt", self.images_per_prompt, "an integer >= 1")
        _check(self.batch_size >= 1, f"{key}.batch_size", self.batch_size, "an integer >= 1")
        _check(self.num_inference_steps >= 1, f"{key}.num_inference_steps", self.num_inference_steps,
               "an integer >= 1")
        _check(self.guidance_scale >= 0, f"{key}.guidance_scale", self.guidance_scale, "a value >= 0")


SCHEMAS = [
    ("task", "ti_schema", TITaskConfig),
    ("data", "ti_schema", TIDataConfig),
    ("model", "sd_schema", SDConfig),
    ("ti", "textual_inversion_schema", TextualInversionConfig),
    ("ti", "custom_diffusion_schema", CustomDiffusionConfig),
    ("scorer", "clip_schema", ClipScorerConfig),
]
