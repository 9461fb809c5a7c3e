"""task=ti end to end on the project's tiny SD and tiny CLIP: course layout and count, metrics, reloading."""
import json

import pytest
from hydra.utils import instantiate

from src.config import compose_config, validate
from src.errors import CheckpointError, ConfigError
from src.run import run
from helpers.overrides import TINY_TI

pytestmark = pytest.mark.slow



@pytest.fixture
def ti_cfg(tmp_path, cache_dir):
    return compose_config([*TINY_TI, f"paths.cache_dir={cache_dir}", f"paths.output_dir={tmp_path / 'run'}"])


def test_defaults_are_the_courses():
    cfg = compose_config(["task=ti", "paths.output_dir=/tmp/x"])
    validate(cfg)
    assert cfg.task.images_per_prompt == 25 and cfg.trainer.max_steps == 2000
    assert cfg.model._target_ == "src.models.sd_pipeline.load_sd_pipeline" and cfg.model.weights is None
    assert cfg.scorer.weights is None  # difflab's own tiny SD and tiny CLIP
    assert cfg.model.embedded.steps == 1800 and cfg.scorer.embedded.steps == 1500
    course = compose_config(["task=ti", "+experiment=course", "paths.output_dir=/tmp/x"])
    assert course.model.weights == course.model.config == "CompVis/stable-diffusion-v1-4"
    assert course.scorer.weights == "openai/clip-vit-base-patch32"
    assert cfg.ti._target_ == "src.models.textual_inversion.TextualInversionModule"
    gpu = compose_config(["task=ti", "trainer=gpu", "trainer.max_steps=7", "paths.output_dir=/tmp/x"])
    assert gpu.trainer.precision == "bf16-mixed" and gpu.trainer.max_steps == 7  # fp32 master weights


def test_ti_run_writes_25_images_per_prompt_in_the_course_layout(ti_cfg, tmp_path):
    metrics = run(ti_cfg)
    out = tmp_path / "run"
    for c in ("0", "1"):
        assert sorted(p.name for p in (out / "samples" / c).iterdir()) == ["0", "1"]
        for p in ("0", "1"):
            files = {f.name for f in (out / "samples" / c / p).iterdir()}
            assert files == {f"source{c}_prompt{p}_{i}.png" for i in range(25)}
        assert (out / "embeddings" / c / "learned_embeds.safetensors").is_file()
        assert (out / "checkpoints" / c / "last.ckpt").is_file()
    assert not (out / ".samples.tmp").exists()
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == pytest.approx(metrics)
    for key in ("image_score", "text_score", "total", "pass", "image_baseline", "text_baseline"):
        assert f"c1/p1/{key}" in saved
    assert saved["c0/train/steps"] == 4 and saved["grade/embedded_clip"] == 1.0
    assert 0.0 <= saved["pass_rate"] <= 1.0 and (out / "figures" / "c1_p0.png").is_file()
    # the multi-concept prompt, both embeddings loaded, scored against each concept's references
    assert {f.name for f in (out / "samples_multi" / "0").iterdir()} == {f"multi_prompt0_{i}.png" for i in range(25)}
    for c in ("0", "1"):
        assert f"multi/p0/c{c}/image_score" in saved


def test_embeddings_of_a_run_are_reloaded_instead_of_trained(ti_cfg, tmp_path):
    run(ti_cfg)
    first = (tmp_path / "run" / "samples" / "0" / "1" / "source0_prompt1_3.png").read_bytes()
    again = compose_config([*TINY_TI, f"paths.cache_dir={ti_cfg.paths.cache_dir}", "task.train=false",
                            f"task.weights={tmp_path / 'run' / 'embeddings'}",
                            f"paths.output_dir={tmp_path / 'again'}"])
    metrics = run(again)
    assert "c0/train/steps" not in metrics
    assert (tmp_path / "again" / "samples" / "0" / "1" / "source0_prompt1_3.png").read_bytes() == first


def _touch(path):
    path.write_bytes(b"")
    return path


def test_bad_model_and_concept_values_are_one_line_errors(tmp_path, cache_dir):
    base = [*TINY_TI, f"paths.cache_dir={cache_dir}", f"paths.output_dir={tmp_path}"]
    with pytest.raises(ConfigError, match="model.weights="):
        run(compose_config([*base, "model=sd", f"model.weights={tmp_path / 'nope'}"]))
    with pytest.raises(ConfigError, match=r"^model.config='/nowhere/configs': no such folder"):
        run(compose_config([*base, f"model.weights={_touch(tmp_path / 'sd.ckpt')}", "model.config=/nowhere/configs"]))
    with pytest.raises(ConfigError, match=r"task.concepts=\['7'\]"):
        run(compose_config([*base, "task.concepts=[7]"]))
    with pytest.raises(ConfigError, match="task.train=false needs task.weights"):
        run(compose_config([*base, "task.train=false"]))
    with pytest.raises(ConfigError, match=r"ti.method=dreambooth: ti.method was removed; use ti=<textual_inversion"):
        compose_config([*base, "ti.method=dreambooth"])


def test_scorer_weights_load_a_clip_folder_with_the_zero_shot_loader(tmp_path, cache_dir, tiny_clip):
    from src.eval.ti_grader import load_scorer
    from src.models.clip import load_clip

    cfg = compose_config(["task=ti", f"scorer.weights={tiny_clip}", f"paths.cache_dir={cache_dir}",
                          "paths.output_dir=/tmp/x"])
    scorer = instantiate(cfg.scorer)(device="cpu")
    model, _ = load_clip(str(tiny_clip))
    assert scorer.model.config.to_dict() == model.config.to_dict()
    with pytest.raises(CheckpointError, match=r"^scorer.weights='.*': no config.json there"):
        instantiate(compose_config(["task=ti", f"scorer.weights={tmp_path}", "paths.output_dir=/tmp/x"]).scorer)()
    small = load_scorer(None, cache_dir=cache_dir, embedded={"steps": 2})  # difflab's tiny CLIP, a small build
    assert (cache_dir / "clip" / "difflab-clip-v2-seed0-steps2" / "difflab_build.json").is_file()
    assert small.model.config.projection_dim == 64


def test_custom_diffusion_trains_jointly_saves_processors_and_reloads(tmp_path, cache_dir):
    base = [*TINY_TI, f"paths.cache_dir={cache_dir}", "ti=custom_diffusion", "task.images_per_prompt=5",
            "task.batch_size=5"]
    metrics = run(compose_config([*base, f"paths.output_dir={tmp_path / 'run'}"]))
    emb = tmp_path / "run" / "embeddings"
    assert metrics["joint/train/steps"] == 4 and (emb / "custom_diffusion" / "pytorch_custom_diffusion_weights.bin").is_file()
    assert "multi/p0/c1/image_score" in metrics
    first = (tmp_path / "run" / "samples_multi" / "0" / "multi_prompt0_2.png").read_bytes()
    run(compose_config([*base, "task.train=false", f"task.weights={emb}", f"paths.output_dir={tmp_path / 'again'}"]))
    assert (tmp_path / "again" / "samples_multi" / "0" / "multi_prompt0_2.png").read_bytes() == first


def test_wandb_gets_the_score_table_and_image_grids(tmp_path, cache_dir):
    base = [*TINY_TI, f"paths.cache_dir={cache_dir}", "task.images_per_prompt=5", "task.batch_size=5",
            "trainer.max_steps=1", "logger=wandb", "logger.mode=offline", "task.concepts=[1]",
            f"paths.output_dir={tmp_path}"]
    metrics = run(compose_config(base))
    assert "multi/p0/c1/image_score" not in metrics  # <new1> is not loaded: the multi-concept prompt is skipped
    media = next((tmp_path / "wandb").glob("offline-run-*")) / "files" / "media"
    assert list((media / "table").rglob("*.table.json")) and list((media / "images").rglob("*.png"))


def test_training_loss_streams_to_the_logger_one_curve_per_concept(tmp_path, cache_dir):
    import csv

    cfg = compose_config([*TINY_TI, "logger=csv", "trainer.log_every_n_steps=1", "task.multi_prompts=[]",
                          f"paths.cache_dir={cache_dir}", f"paths.output_dir={tmp_path / 'run'}"])
    run(cfg)
    rows = list(csv.DictReader((tmp_path / "run" / "csv" / "metrics.csv").open()))
    for c in ("c0", "c1"):
        losses = [float(r[f"{c}/train/loss"]) for r in rows if r.get(f"{c}/train/loss")]
        assert len(losses) >= 4 and all(loss > 0 for loss in losses)  # every step, and the final metrics


def test_bf16_mixed_trains_and_draws_with_the_frozen_nets_in_bf16(tmp_path, cache_dir):
    """trainer=gpu's precision on this CPU: the run trains, draws in bf16 and scores like a fp32 run."""
    cfg = compose_config([*TINY_TI, f"paths.cache_dir={cache_dir}", "trainer.precision=bf16-mixed",
                          "task.images_per_prompt=3", "task.batch_size=3", f"paths.output_dir={tmp_path / 'run'}"])
    metrics = run(cfg)
    assert metrics["c0/train/steps"] == 4 and 0.0 <= metrics["pass_rate"] <= 1.0
    assert {f.name for f in (tmp_path / "run" / "samples" / "1" / "0").iterdir()} == {
        f"source1_prompt0_{i}.png" for i in range(3)}
    assert (tmp_path / "run" / "embeddings" / "0" / "learned_embeds.safetensors").is_file()
