"""difflab's tiny text-to-image model (work in progress): its training captions, and the mechanics of a few-step
build: the three stages run, the result is a stock StableDiffusionPipeline folder, and it draws 32x32 images."""
import numpy as np
import pytest
import torch

from src.data.embedded_scenes import BACKGROUNDS, COLOURS, FIGURES, SceneSet
from src.models import embedded_sd as E


def test_a_training_prompt_names_the_figures_inside_one_of_the_frames():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(300):
        prompt = E.scene_prompt([(FIGURES.index("seven"), list(COLOURS).index("red"), 0),
                                 (FIGURES.index("star"), list(COLOURS).index("blue"), 1)], 2, rng)
        assert "seven next to " in prompt and "outlined" in prompt and "star" in prompt
        assert "a a " not in prompt and "the a " not in prompt and "my a " not in prompt
        seen.add(prompt.replace(" on stripes", "").split("seven")[0].replace("red ", ""))
    assert len(seen) == len(E.FRAMES) + len(E.ARTICLE_FRAMES)  # every frame drawn, each its own prefix


def _scenes(n, rng):
    figures = np.full((n, 2, 3), -1)
    figures[:, 0] = np.stack([rng.integers(len(FIGURES), size=n), rng.integers(len(COLOURS), size=n),
                              np.zeros(n, int)], 1)
    return SceneSet(images=rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8), captions=("",) * n,
                    background=rng.integers(len(BACKGROUNDS), size=n), n_figures=np.ones(n, int), figures=figures)


@pytest.mark.slow
def test_a_few_step_build_saves_a_stock_pipeline_that_draws(tmp_path):
    from diffusers import StableDiffusionPipeline

    from src.standins.random_clip import train_tokenizer

    scenes = _scenes(16, np.random.default_rng(0))
    images = E.downsample(scenes.images)
    assert images.shape == (16, 3, 32, 32) and -1 <= images.min() and images.max() <= 1
    vae = E.train_vae(images, steps=2, batch_size=4)
    latents = E.encode(vae, images)
    side = E.IMAGE_SIZE // 2 ** (len(E.ARCH["vae"]["block_out_channels"]) - 1)
    assert latents.shape == (16, E.ARCH["vae"]["latent_channels"], side, side)
    assert latents.std().item() == pytest.approx(1.0, rel=1e-3)  # the scaling factor was fitted on these images
    tokenizer = train_tokenizer(E._corpus(np.random.default_rng(0), n=50), vocab_size=300)
    tokenizer.model_max_length = E.MAX_TOKENS
    pipe = E.build_pipeline(vae, tokenizer)
    losses = E.train_denoiser(pipe, latents, scenes, steps=2, batch_size=4)
    assert len(losses) == 2 and all(np.isfinite(losses))
    pipe.save_pretrained(tmp_path)
    loaded = StableDiffusionPipeline.from_pretrained(tmp_path, local_files_only=True)
    assert loaded.vae.config.scaling_factor == pytest.approx(vae.config.scaling_factor)
    loaded.set_progress_bar_config(disable=True)
    drawn = E.draw(loaded, ["a photo of a red seven", "a blue star on dots"], steps=2)
    assert drawn.shape == (2, 32, 32, 3) and drawn.dtype == np.uint8
    assert torch.equal(torch.from_numpy(drawn), torch.from_numpy(E.draw(loaded, ["a photo of a red seven",
                                                                               "a blue star on dots"], steps=2)))
