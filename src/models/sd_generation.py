"""A task=ti run's images drawn with a Stable Diffusion pipeline: the course layout for each concept's prompts
and one folder per multi-concept prompt, each written into a temporary folder that replaces the final one."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from src.data.ti_data import Concept
from src.images import fresh_dir, replace_dir
from src.models.sd_pipeline import pipeline_image_size

log = logging.getLogger(__name__)


def draw(pipe, prompt: str, folder: Path, stem: str, *, seed: int, count: int, batch_size: int,
         num_inference_steps: int, guidance_scale: float) -> None:
    """`count` images of `prompt` into <folder>/<stem>_<i>.png, batch_size per forward, one random stream."""
    size = pipeline_image_size(pipe)
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(seed)
    for start in range(0, count, batch_size):
        k = min(batch_size, count - start)
        images = pipe(prompt, num_images_per_prompt=k, generator=g, height=size, width=size,
                      num_inference_steps=num_inference_steps, guidance_scale=guidance_scale).images
        for i, img in enumerate(images, start):
            img.save(folder / f"{stem}_{i}.png")


def generate_course_layout(pipe, concepts: list[Concept], samples: Path, *, seed: int, **settings) -> dict[str, Path]:
    """<samples>/<c>/<p>/source{c}_prompt{p}_{i}.png (draw's settings); returns {c<c>_p<p>: folder}."""
    tmp = fresh_dir(samples.with_name(f".{samples.name}.tmp"))
    for c, concept in enumerate(concepts):
        for p, prompt in enumerate(concept.prompts):  # one random stream per prompt
            draw(pipe, prompt, tmp / concept.id / str(p), f"source{concept.id}_prompt{p}",
                 seed=seed * 100_003 + c * 1_000 + p, **settings)
    replace_dir(tmp, samples)
    return {f"c{c.id}_p{p}": samples / c.id / str(p) for c in concepts for p in range(len(c.prompts))}


def multi_concept_prompts(prompts: list[str], concepts: list[Concept]) -> list[tuple[int, str, list[Concept]]]:
    """(index, prompt, the concepts it names) for each prompt naming only loaded concepts' tokens."""
    found = []
    for k, prompt in enumerate(prompts):
        named = [c for c in concepts if c.token in prompt]
        tokens = set(re.findall(r"<[^<>\s]+>", prompt))
        if tokens and tokens <= {c.token for c in named}:
            found.append((k, prompt, named))
        else:
            log.warning("task.multi_prompts[%d]=%r: skipped, names tokens %s that are not loaded", k, prompt,
                        sorted(tokens - {c.token for c in named}))
    return found


def generate_multi(pipe, prompts: list[tuple[int, str, list[Concept]]], folder: Path, *, seed: int,
                   **settings) -> dict[str, Path]:
    """<folder>/<k>/multi_prompt{k}_{i}.png for each multi-concept prompt; returns {multi_p<k>: folder}."""
    if not prompts:
        return {}
    tmp = fresh_dir(folder.with_name(f".{folder.name}.tmp"))
    for k, prompt, _ in prompts:
        draw(pipe, prompt, tmp / str(k), f"multi_prompt{k}", seed=seed * 100_003 + 99_000 + k, **settings)
    replace_dir(tmp, folder)
    return {f"multi_p{k}": folder / str(k) for k, _, _ in prompts}
