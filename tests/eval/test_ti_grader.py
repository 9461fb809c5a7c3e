"""The course's textual-inversion grading math on constructed embeddings with known answers."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from src.errors import CheckpointError, ConfigError
from src.eval.ti_grader import grade_images, grade_prompt, image_scores, load_scorer, text_scores


def _unit(angle_deg: float) -> torch.Tensor:
    a = math.radians(angle_deg)
    return torch.tensor([math.cos(a), math.sin(a), 0.0])


def test_image_score_is_100_cosine_averaged_over_references():
    gen = torch.stack([_unit(0), 3 * _unit(90)])  # the norm must not matter
    refs = torch.stack([_unit(0), _unit(60)])
    expected = torch.tensor([100 * (1 + 0.5) / 2, 100 * (0 + math.cos(math.radians(30))) / 2])
    assert torch.allclose(image_scores(gen, refs), expected, atol=1e-4)


def test_text_score_is_logit_scale_times_cosine():
    gen = torch.stack([_unit(0), _unit(60), _unit(90)])
    assert torch.allclose(text_scores(gen, 2 * _unit(0), logit_scale=100.0), torch.tensor([100.0, 50.0, 0.0]), atol=1e-4)


def test_top5_by_total_averaged_and_pass_needs_both_baselines():
    img = torch.tensor([90.0, 10, 80, 70, 60, 50, 40, 99])
    txt = torch.tensor([30.0, 90, 20, 20, 20, 20, 20, 0])
    # totals = img + 2.5 txt: 165, 235, 130, 120, 110, 100, 90, 99 -> best five: indices 1, 0, 2, 3, 4
    r = grade_prompt(img, txt, (60, 30))
    assert r["image_score"] == pytest.approx((10 + 90 + 80 + 70 + 60) / 5)
    assert r["text_score"] == pytest.approx((90 + 30 + 20 + 20 + 20) / 5)
    assert r["total"] == pytest.approx((235 + 165 + 130 + 120 + 110) / 5)
    assert r["pass"] == 1.0
    assert grade_prompt(img, txt, (62.1, 30))["pass"] == 0.0  # image average 62 < 62.1
    assert grade_prompt(img, txt, (60, 36.1))["pass"] == 0.0  # text average 36 < 36.1


def test_grade_images_agrees_with_clip_logits_per_image(tmp_path):
    from src.standins.random_clip import write_random_clip

    scorer = load_scorer(str(write_random_clip(tmp_path / "clip")), cache_dir=tmp_path)
    rng = np.random.default_rng(0)
    ims = [Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)) for _ in range(6)]
    r = grade_images(scorer, ims, ims[:2], "a photo of a cat", (0, -1e9))
    with torch.no_grad():
        inputs = scorer.processor(images=ims, text=["a photo of a cat"], return_tensors="pt", padding=True)
        logits = scorer.model(**inputs).logits_per_image[:, 0]
    gen = scorer.images(ims)
    img = image_scores(gen, scorer.images(ims[:2]))
    best = (img + 2.5 * logits).topk(5).indices
    assert r["text_score"] == pytest.approx(float(logits[best].mean()), abs=1e-4)
    assert r["image_score"] == pytest.approx(float(img[best].mean()), abs=1e-4)


def test_bad_clip_paths_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="scorer.weights="):
        load_scorer(str(tmp_path / "missing"), cache_dir=tmp_path)
    with pytest.raises(CheckpointError, match="CLIPModel") as err:
        load_scorer(str(tmp_path), cache_dir=tmp_path)
    assert "\n" not in str(err.value)


def test_no_weights_scores_with_difflabs_tiny_clip_built_once(cache_dir):
    first = load_scorer(None, cache_dir=cache_dir, embedded={"steps": 2})  # a small build of the default
    folder = cache_dir / "clip" / "difflab-clip-v2-seed0-steps2"
    assert (folder / "config.json").is_file() and (folder / "difflab_build.json").is_file()
    stamp = (folder / "config.json").stat().st_mtime_ns
    again = load_scorer(None, cache_dir=cache_dir, embedded={"steps": 2})
    assert (folder / "config.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()))