"""difflab's own tiny CLIP: which captions count as positives, the loss, and a small build that loads in stock
transformers and classifies the embedded digits above chance through task=clip."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from src.models.embedded_clip import (CLIP_VERSION, N_ATTRS, digit_caption, embedded_clip, fits, multi_positive_loss,
                                      scene_caption_mask)

SMALL = 120  # training steps of the test build: the same model and data, fewer steps


def digit_attrs(digit, domain):
    a = np.full(N_ATTRS, -1)
    a[:3] = (0, digit, domain)
    return a


def test_a_caption_fits_every_image_it_describes_and_no_other():
    rng = np.random.default_rng(0)
    attrs = torch.tensor(np.stack([digit_attrs(7, 0), digit_attrs(7, 1), digit_attrs(8, 0)]))
    for _ in range(50):
        text, mention = digit_caption(7, 0, rng)
        ok = fits(attrs, attrs[:1], torch.tensor(mention)[None])[:, 0].tolist()
        assert "seven" in text
        # the domain named: only MNIST-M's seven; not named: both sevens; never the eight
        assert ok == [True, not mention[2], False]
        assert mention[2] == any(p in text for p in ("handwritten", "mnist-m"))
    scene = np.full(N_ATTRS, -1)
    scene[:8] = (1, -1, -1, 2, 1, 3, 0, 1)  # an outlined red star on stripes
    other = scene.copy()
    other[6] = 4  # a blue one
    for _ in range(50):
        text, mention = scene_caption_mask(scene, rng)
        ok = fits(torch.tensor(np.stack([scene, other])), torch.tensor(scene)[None], torch.tensor(mention)[None])
        assert "outlined" in text and "star" in text
        assert ok[:, 0].tolist() == [True, "red" not in text]


def test_the_loss_is_clips_when_each_caption_fits_only_its_image():
    torch.manual_seed(0)
    logits = torch.randn(6, 6)
    clip = (F.cross_entropy(logits, torch.arange(6)) + F.cross_entropy(logits.T, torch.arange(6))) / 2
    assert torch.allclose(multi_positive_loss(logits, torch.eye(6, dtype=torch.bool)), clip)
    # two images of one class: pulling both captions to both images is rewarded, not punished
    positive = torch.eye(4, dtype=torch.bool)
    positive[0, 1] = positive[1, 0] = True
    together = torch.full((4, 4), -5.0)
    together.fill_diagonal_(5.0)
    together[0, 1] = together[1, 0] = 5.0
    apart = together.clone()
    apart[0, 1] = apart[1, 0] = -5.0
    assert multi_positive_loss(together, positive) < multi_positive_loss(apart, positive)


@pytest.fixture(scope="module")
def small_clip(cache_dir):
    return embedded_clip(cache_dir, steps=SMALL)


@pytest.mark.slow
def test_a_small_build_is_a_stock_clip_folder_built_once(small_clip, cache_dir):
    from transformers import CLIPModel, CLIPProcessor

    assert small_clip.name == f"difflab-clip-v{CLIP_VERSION}-seed0-steps{SMALL}"
    build = json.loads((small_clip / "difflab_build.json").read_text())
    assert build["steps"] == SMALL and build["train_seconds"] > 0
    model, processor = CLIPModel.from_pretrained(small_clip), CLIPProcessor.from_pretrained(small_clip)
    assert model.config.vision_config.image_size == 32 and processor.image_processor.crop_size["height"] == 32
    assert processor.tokenizer("a red star next to a blue seven").input_ids[1:-1] == \
        processor.tokenizer.convert_tokens_to_ids(processor.tokenizer.tokenize("a red star next to a blue seven"))
    mtime = (small_clip / "model.safetensors").stat().st_mtime
    assert embedded_clip(cache_dir, steps=SMALL) == small_clip  # reused, not trained again
    assert (small_clip / "model.safetensors").stat().st_mtime == mtime


@pytest.mark.slow
def test_task_clip_with_model_weights_null_uses_it_as_its_build_scored_it(small_clip, cache_dir, tmp_path):
    """task=clip (prompt=single) on the embedded digits' val set gives the top-1 the build recorded with its own
    preprocessing: the build's number is the task's protocol, and the training lowered the loss."""
    from src.config import compose_config
    from src.run import run

    cfg = compose_config(["task=clip", "logger=none", "model.weights=null", f"model.embedded.steps={SMALL}",
                          f"paths.cache_dir={cache_dir}", f"paths.output_dir={tmp_path}"])
    metrics = run(cfg)
    build = json.loads((small_clip / "difflab_build.json").read_text())
    assert metrics["top1"] == pytest.approx(build["digits_val_top1"], abs=1e-3)
    assert build["last_loss"] < build["first_loss"] - 0.2
    assert (tmp_path / "predictions.csv").is_file()
