"""Schemas of task=clip: its prompt templates (data, model and task keys: to come)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional  # noqa: F401

from src.config.schema import check as _check


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


SCHEMAS = [("prompt", "prompt_schema", PromptConfig)]
