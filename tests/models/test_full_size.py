"""The real architectures at their real sizes, with random weights built offline (src/standins): Stable
Diffusion v1.4 from a diffusers folder and from one original-layout checkpoint read with the course's
v1-inference.yaml, CLIP ViT-B/32 with CLIP's real tokenizer, and the course's 256x256 face UNet. Slow: about
10 minutes and 10 GiB of memory on 2 CPU cores (deselect with -m 'not slow')."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from helpers.slurm import ROOT, run_src

pytestmark = pytest.mark.slow
COURSE_YAML = ROOT.parent / "shared" / "fixtures" / "course" / "v1-inference.yaml"


def src_run(args: list[str], cwd: Path):
    return run_src(args, cwd, dict(os.environ), timeout=1200)


@pytest.fixture(scope="module")
def sd_v1(tmp_path_factory) -> Path:
    """<dir>/diffusers (save_pretrained) and <dir>/sd-v1-4.ckpt (original layout) of one random SD v1.4."""
    from src.standins.sd_v1 import write_sd_v1

    folder = tmp_path_factory.mktemp("sd-v1")
    write_sd_v1(folder / "diffusers", single_file=folder / "sd-v1-4.ckpt")
    return folder


def test_the_real_clip_tokenizer_has_clips_ids_and_the_embedded_words_are_single_tokens():
    from transformers import CLIPTokenizer

    from src.standins.clip_tokenizer import VOCAB_SIZE, write_clip_tokenizer

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        tok = CLIPTokenizer.from_pretrained(write_clip_tokenizer(tmp))
    assert len(tok) == VOCAB_SIZE == 49408
    assert tok("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]  # as CLIP's
    for word in ("star", "diamond", "object", "painting"):  # the embedded default's initializer words, templates'
        assert len(tok(word, add_special_tokens=False)["input_ids"]) == 1, word


@pytest.mark.skipif(not COURSE_YAML.is_file(), reason=f"the course's v1-inference.yaml is not at {COURSE_YAML}")
def test_sd_v1_single_file_loads_with_the_courses_yaml_to_the_same_weights(sd_v1):
    from src.models.sd_pipeline import load_sd_pipeline

    folder = load_sd_pipeline(sd_v1 / "diffusers")
    single = load_sd_pipeline(sd_v1 / "sd-v1-4.ckpt", original_config=COURSE_YAML, config=sd_v1 / "diffusers")
    assert sum(p.numel() for p in folder.unet.parameters()) == 859_520_964
    for part in ("unet", "vae", "text_encoder"):  # every weight present and equal: nothing missing or extra
        a, b = getattr(folder, part).state_dict(), getattr(single, part).state_dict()
        assert a.keys() == b.keys(), part
        assert all(torch.equal(a[k], b[k].reshape(a[k].shape)) for k in a), part
    assert len(single.tokenizer) == 49408 and type(single.scheduler).__name__ == "PNDMScheduler"


@pytest.mark.parametrize("source", ["diffusers", "sd-v1-4.ckpt"])
def test_textual_inversion_at_512_from_the_folder_and_the_single_file(sd_v1, tmp_path, source):
    extra = [f"model.original_config={COURSE_YAML}"] if source.endswith(".ckpt") and COURSE_YAML.is_file() else []
    out = tmp_path / "run"
    done = src_run(["task=ti", f"model.weights={sd_v1 / source}", f"model.config={sd_v1 / 'diffusers'}", *extra,
                    "trainer.max_steps=2", "task.checkpoint_every=2", "task.images_per_prompt=1",
                    "task.num_inference_steps=2", "task.batch_size=1", "task.concepts=[0]", "task.multi_prompts=[]",
                    "data.repeats=1", "data.batch_size=1", "logger=none", "trainer.enable_progress_bar=false",
                    "scorer.embedded.steps=2", f"hydra.run.dir={out}"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["c0/train/steps"] == 2
    images = sorted((out / "samples" / "0").rglob("*.png"))
    assert images
    from PIL import Image

    assert Image.open(images[0]).size == (512, 512)


def test_clip_vit_b_32_with_the_real_tokenizer_classifies_a_course_folder(tmp_path, write_clip_course):
    from src.standins.random_clip import write_random_clip

    clip = write_random_clip(tmp_path / "clip-vit-b-32", size="vit-b-32")
    root = write_clip_course(tmp_path / "clip_zeroshot", {"0": "apple", "1": "bee"},
                             ["0_0.png", "0_1.png", "1_0.png", "1_1.png"])
    out = tmp_path / "run"
    done = src_run(["task=clip", f"model.weights={clip}", f"data.root={root}", "logger=none", "task.batch_size=4",
                    "trainer.enable_progress_bar=false", f"hydra.run.dir={out}"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 4 and 0.0 <= metrics["top1"] <= 1.0


def test_the_courses_face_unet_at_256_reproduces_its_gt_at_eta_0(tmp_path):
    from src.standins.course_face import write_course_face_folder

    face = write_course_face_folder(tmp_path / "face", image_size=256, n_noise=1, gt_steps=2)
    out = tmp_path / "run"
    done = src_run(["task=faces", f"data.root={face}", "sampler.num_steps=2", "sampler.eta=0", "task.figures=false",
                    "logger=none", "trainer.enable_progress_bar=false", f"hydra.run.dir={out}"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "course" in done.stdout + done.stderr  # recognised as the course's model by its keys and shapes
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mse"] == 0.0


@pytest.mark.skipif(not COURSE_YAML.is_file(), reason=f"the course's v1-inference.yaml is not at {COURSE_YAML}")
def test_a_yaml_that_does_not_match_the_checkpoint_is_one_line(sd_v1, tmp_path):
    """The course's sd-v1-4.ckpt read with an SD 2-style yaml (cross-attention of 1024, not 768)."""
    from src.errors import CheckpointError
    from src.models.sd_pipeline import load_sd_pipeline

    text = COURSE_YAML.read_text()
    assert "context_dim: 768" in text
    wrong = tmp_path / "v2-inference.yaml"
    wrong.write_text(text.replace("context_dim: 768", "context_dim: 1024"))
    with pytest.raises(CheckpointError, match=r"sd-v1-4.ckpt: cannot load as a single-file Stable Diffusion "
                                              r"checkpoint") as err:
        load_sd_pipeline(sd_v1 / "sd-v1-4.ckpt", original_config=wrong, config=sd_v1 / "diffusers")
    assert "\n" not in str(err.value)


def test_a_clip_folder_without_its_tokenizer_is_one_line_and_writes_nothing(tmp_path, write_clip_course):
    from src.standins.random_clip import write_random_clip

    clip = write_random_clip(tmp_path / "clip-vit-b-32", size="vit-b-32")
    for name in ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (clip / name).unlink(missing_ok=True)
    root = write_clip_course(tmp_path / "clip_zeroshot", {"0": "apple", "1": "bee"}, ["0_0.png", "1_0.png"])
    out = tmp_path / "run"
    done = src_run(["task=clip", f"model.weights={clip}", f"data.root={root}", "logger=none",
                    "trainer.enable_progress_bar=false", f"hydra.run.dir={out}"], tmp_path)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: model.weights={str(clip)!r}: ") and "tokenizer" in last, last
    assert not (out / "metrics.json").exists()
