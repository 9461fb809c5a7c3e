"""Schemas of task=clip: its task, data, model and prompt options (and the CLIP loader they share with the
TI grader's scorer, src/config/ti.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from src.config.digits import DIGIT_DOMAINS, DigitsEmbeddedConfig
from src.config.schema import check as _check

# data.layout (src.data.clip_data.LAYOUTS, which imports torch): auto = the course layout if
# <root>/id2label.json exists, else one folder per class
LAYOUTS = ("auto", "course", "folders")


@dataclass
class EmbeddedDigitsConfig(DigitsEmbeddedConfig):
    """The embedded digits whose val images task=clip classifies when data.root is null (the same arguments
    as task=digits, so the two share the cached folder), from these domains."""

    domains: list = field(default_factory=lambda: list(DIGIT_DOMAINS))


@dataclass
class ClipDataConfig:
    """Labelled images for zero-shot classification: the course layout, one folder per class, or (root null)
    the embedded digits' val images."""

    root: Optional[str] = None
    layout: str = "auto"
    embedded: EmbeddedDigitsConfig = field(default_factory=EmbeddedDigitsConfig)

    def check(self, key: str) -> None:
        _check(self.layout in LAYOUTS, f"{key}.layout", self.layout, f"one of {', '.join(LAYOUTS)}")
        self.embedded.check(f"{key}.embedded")


@dataclass
class EmbeddedClipConfig:
    """difflab's own tiny CLIP (src.models.embedded_clip), trained once into paths.cache_dir where `weights` is
    null: its training steps (a smaller build for tests) and seed."""

    steps: int = 1500
    seed: int = 0

    def check(self, key: str) -> None:
        _check(self.steps >= 1, f"{key}.steps", self.steps, "an integer >= 1")


@dataclass
class ClipConfig:
    """A CLIPModel + CLIPProcessor: `weights` is a local folder (save_pretrained) when it exists, else a Hub
    id (from the Hugging Face cache, downloaded into it on first use); null: difflab's own tiny CLIP, trained
    once into cache_dir (src.models.embedded_clip)."""

    _target_: str = "src.models.clip.load_clip"
    _partial_: bool = True
    weights: Optional[str] = "openai/clip-vit-base-patch32"
    cache_dir: str = "???"
    embedded: EmbeddedClipConfig = field(default_factory=EmbeddedClipConfig)

    def check(self, key: str) -> None:
        self.embedded.check(f"{key}.embedded")


@dataclass
class PromptConfig:
    """Text templates of the CLIP zero-shot classifier; `{}` in each is replaced by a class name."""

    name: str = "single"
    templates: list = field(default_factory=lambda: ["A photo of {}."])

    def check(self, key: str) -> None:
        _check(len(self.templates) >= 1, f"{key}.templates", self.templates, "a non-empty list of templates")
        for i, template in enumerate(self.templates):
            _check(isinstance(template, str) and template.count("{}") == 1, f"{key}.templates[{i}]", template,
                   "a string with one {} for the class name")


@dataclass
class ClipTaskConfig:
    """task=clip: batched inference and the case figures."""

    name: str = "clip"
    main_metric: str = "top1"
    # correct and incorrect cases shown in figures/correct.png and figures/incorrect.png
    num_cases: int = 5
    # images per forward (and prompts per text forward)
    batch_size: int = 64
    # DataLoader processes that decode, resize and normalise
    num_workers: int = 0

    def check(self, key: str) -> None:
        _check(self.num_cases >= 0, f"{key}.num_cases", self.num_cases, "an integer >= 0")
        _check(self.batch_size >= 1, f"{key}.batch_size", self.batch_size, "an integer >= 1")
        _check(self.num_workers >= 0, f"{key}.num_workers", self.num_workers, "an integer >= 0")


SCHEMAS = [
    ("task", "clip_schema", ClipTaskConfig),
    ("data", "clip_zeroshot_schema", ClipDataConfig),
    ("model", "clip_schema", ClipConfig),
    ("prompt", "prompt_schema", PromptConfig),
]
