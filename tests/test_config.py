import re

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

from src.config import CONF_DIR, compose_config, validate
from src.errors import ConfigError
from src.tasks import TASKS, get_task

GROUPS = ["task", "data", "model", "scheduler", "sampler", "guidance", "trainer", "logger", "prompt", "judge"]


# the task that selects each data and model option
OWNER = {"data": {"digits": "digits", "face": "faces", "clip_zeroshot": "clip", "ti": "ti"},
         "model": {"digits_unet": "digits", "face_unet": "faces", "face_diffusers": "faces",
                   "clip": "clip", "sd": "ti", "sd_tiny": "ti"}}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_validates(group, option):
    extra = {"evaluate": ["task.folder=/tmp"], "face_diffusers": ["model.weights=/tmp"]}.get(option, [])
    # a group that task=digits does not select is composed with the task that does
    task = {"prompt": "task=clip", "data": None, "model": None}.get(group, "task=digits")
    base = [] if group == "task" else [task] if task else []
    if group in ("data", "model"):
        base = [f"task={OWNER[group][option]}"]
    cfg = compose_config([*base, f"{group}={option}", "paths.output_dir=/tmp/x", *extra])
    validate(cfg)
    assert cfg.task.name in TASKS


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_preset_composes(experiment):
    validate(compose_config([f"+experiment={experiment}", "paths.output_dir=/tmp/x"]))


def test_objects_instantiate_from_the_default_config():
    cfg = compose_config(["task=digits", "paths.output_dir=/tmp/x"])
    schedule = instantiate(cfg.scheduler)
    assert schedule.num_steps == 1000 and abs(float(schedule.betas[-1]) - 2e-2) < 1e-12
    net = instantiate(cfg.model.net)
    assert net.null_cond.tolist() == [10, 2]


def test_users_command_overrides_verbatim():
    cfg = compose_config(["task=digits", "scheduler.steps=500", "paths.output_dir=/tmp/x"])
    validate(cfg)
    assert cfg.scheduler.steps == 500


def test_report_preset_is_the_reports_setting():
    cfg = compose_config(["task=digits", "+experiment=report", "paths.output_dir=/tmp/x"])
    assert (cfg.scheduler.steps, cfg.scheduler.beta_start, cfg.scheduler.beta_end) == (500, 1e-3, 1e-2)
    assert cfg.guidance.scale == 5


@pytest.mark.parametrize("override,key", [
    ("sampler.eta=1.5", "sampler.eta=1.5"),
    ("scheduler.steps=1", "scheduler.steps=1"),
    ("scheduler.beta_end=1e-5", "scheduler.beta_end=1e-05"),
    ("guidance.scale=-1", "guidance.scale=-1.0"),
    ("trainer.precision=fp8", "trainer.precision='fp8'"),
])
def test_bad_values_name_key_value_and_expectation(override, key):
    cfg = compose_config(["task=digits", override, "paths.output_dir=/tmp/x"])
    with pytest.raises(ConfigError, match="expected") as err:
        validate(cfg)
    assert str(err.value).startswith(key)
    assert "\n" not in str(err.value)


def test_ddpm_sampler_has_no_step_count_to_set():
    with pytest.raises(ConfigCompositionException, match="num_steps"):
        compose_config(["sampler=ddpm", "sampler.num_steps=10", "paths.output_dir=/tmp/x"])


@pytest.mark.parametrize("task,override,replacement", [
    ("task=digits", "sampler.guidance_scale=5", "use guidance.scale"),
    ("task=digits", "sampler.per_class=50", "use task.per_class"),
    ("task=digits", "scheduler=ddim", "use scheduler=linear"),
    ("task=digits", "logger.name=csv", "use logger=<wandb|csv|none>"),
    ("task=ti", "ti.method=custom_diffusion", "use ti=<textual_inversion|custom_diffusion>"),
    ("task=ti", "ti.embeds=/tmp/emb", "use task.weights"),
    ("task=ti", "ti.clip_path=/tmp/clip", "use scorer.weights"),
    ("task=ti", "ti.steps=10", "use trainer.max_steps"),
    ("task=ti", "ti.train=false", "use task.train"),
    ("task=ti", "ti.images_per_prompt=5", "use task.images_per_prompt"),
    ("task=ti", "ti.multi_prompts=[]", "use task.multi_prompts"),
    ("task=ti", "model.path=/tmp/sd.ckpt", "use model.weights"),
    ("task=ti", "model.tiny=true", "use model=sd_tiny"),
    ("task=clip", "model.path=/tmp/clip", "use model.weights"),
    ("task=clip", "model.name=openai/clip-vit-base-patch32", "use model.weights"),
    ("task=clip", "model.batch_size=8", "use task.batch_size"),
    ("task=clip", "model.num_workers=2", "use task.num_workers"),
    ("task=faces", "model.format=project", "use model=<face_unet|face_diffusers>"),
    ("task=faces", "model=face_unet_small", "use data.embedded.net / data.embedded.train"),
    ("task=faces", "model.train.steps=10", "use data.embedded.train"),
    ("task=evaluate", "task.classifier.epochs=3", "use judge.*"),
    ("task=evaluate", "task.classifier.course_mnistm=/c/Classifier.pth", "use judge.mnistm_weights"),
])
def test_removed_keys_name_their_replacement(task, override, replacement):
    with pytest.raises(ConfigError, match=re.escape(replacement)) as err:
        compose_config([task, override])
    assert str(err.value).startswith(override) and "\n" not in str(err.value)


def test_a_task_composes_only_the_groups_it_reads():
    assert set(compose_config(["task=clip", "paths.output_dir=/tmp/x"])) >= {"prompt", "model", "data"}
    assert "sampler" not in compose_config(["task=clip", "paths.output_dir=/tmp/x"])
    assert "prompt" not in compose_config(["task=digits", "paths.output_dir=/tmp/x"])
    assert "guidance" not in compose_config(["task=faces", "paths.output_dir=/tmp/x"])


def test_wrong_type_fails_at_compose():
    with pytest.raises(ConfigCompositionException):
        compose_config(["scheduler.steps=many"])


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="expected one of clip, digits, evaluate"):
        get_task("digitz")


def test_composing_imports_neither_lightning_nor_diffusers():
    import subprocess
    import sys

    code = ("import sys, src.run, src.config, src.tasks; "
            "print(sorted(m for m in ('lightning', 'diffusers', 'torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_lists_each_groups_options_without_the_schemas():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "src.run", "--help"], capture_output=True, text=True, check=True).stdout
    assert "sampler: ddim, ddpm\n" in out and "ti: custom_diffusion, textual_inversion\n" in out
    assert "_schema" not in out
