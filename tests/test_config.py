import re

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

from src.config import CONF_DIR, compose_config, validate
from src.errors import ConfigError
from src.tasks import TASKS, get_task

GROUPS = ["task", "data", "model", "scheduler", "sampler", "guidance", "trainer", "logger", "prompt", "judge"]


# the task that selects each data and model option
OWNER = {"data": {"digits": "digits", "digits_reference": "evaluate", "face": "faces", "clip_zeroshot": "clip",
                  "ti": "ti"},
         "model": {"digits_unet": "digits", "face_unet": "faces", "face_diffusers": "faces",
                   "clip": "clip", "sd": "ti"}}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_validates(group, option):
    extra = {"evaluate": ["task.folder=/tmp"], "digits_reference": ["task.folder=/tmp"],
             "face_diffusers": ["model.weights=/tmp"]}.get(option, [])
    # a group that task=digits does not select is composed with the task that does
    task = {"prompt": "task=clip", "data": None, "model": None}.get(group, "task=digits")
    base = [] if group == "task" else [task] if task else []
    if group in ("data", "model"):
        base = [f"task={OWNER[group][option]}"]
    cfg = compose_config([*base, f"{group}={option}", "paths.output_dir=/tmp/x", *extra])
    validate(cfg)
    assert cfg.task.name in TASKS


REQUIRED = {"optuna_digits": ["ckpt_path=x.ckpt"]}  # what a preset asks the command to name


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_preset_composes(experiment):
    validate(compose_config([f"+experiment={experiment}", "paths.output_dir=/tmp/x", *REQUIRED.get(experiment, [])]))


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


@pytest.mark.parametrize("task", ["digits", "evaluate", "clip", "faces", "ti"])
def test_the_course_preset_composes_for_every_task(task):
    cfg = compose_config([f"task={task}", "+experiment=course", "task.folder=/tmp" if task == "evaluate" else "seed=0",
                          "paths.output_dir=/tmp/x"])
    validate(cfg)
    assert task != "digits" or cfg.task.per_class == 50
    assert task not in ("digits", "evaluate") or cfg.judge.svhn_weights == "edadaltocg/resnet34_svhn"
    assert task != "clip" or cfg.model.weights == "openai/clip-vit-base-patch32"


def test_report_preset_is_the_reports_setting():
    cfg = compose_config(["task=digits", "+experiment=report", "paths.output_dir=/tmp/x"])
    assert (cfg.scheduler.steps, cfg.scheduler.beta_start, cfg.scheduler.beta_end) == (500, 1e-3, 1e-2)
    assert cfg.guidance.scale == 5


def test_report_betas_option_is_the_reports_range_at_any_T():
    # experiments/digits_ablation sweeps scheduler=linear,report_betas x scheduler.steps=1000,500,250
    for steps in (1000, 500):
        cfg = compose_config(["task=digits", "scheduler=report_betas", f"scheduler.steps={steps}",
                              "paths.output_dir=/tmp/x"])
        schedule = instantiate(cfg.scheduler)
        assert schedule.num_steps == steps
        assert (float(schedule.betas[0]), float(schedule.betas[-1])) == pytest.approx((1e-3, 1e-2), rel=1e-12)


@pytest.mark.parametrize("override,key", [
    ("sampler.eta=1.5", "sampler.eta=1.5"),
    ("scheduler.steps=1", "scheduler.steps=1"),
    ("scheduler.beta_end=1e-5", "scheduler.beta_end=1e-05"),
    ("guidance.scale=-1", "guidance.scale=-1.0"),
    ("trainer.precision=fp8", "trainer.precision='fp8'"),
    ("task.sample_precision=fp16", "task.sample_precision='fp16'"),
    ("model.lr_final=1.5", "model.lr_final=1.5"),
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
    ("task=ti", "model=sd_tiny", "use model=sd (task=ti's default"),
    ("task=ti", "model.tiny=true", "use model.weights=null (the random tiny stand-in)"),
    ("task=clip", "model.path=/tmp/clip", "use model.weights"),
    ("task=clip", "model.name=openai/clip-vit-base-patch32", "use model.weights"),
    ("task=clip", "model.batch_size=8", "use task.batch_size"),
    ("task=clip", "model.num_workers=2", "use task.num_workers"),
    ("task=faces", "model.format=project", "use model=<face_unet|face_diffusers>"),
    ("task=faces", "model=face_unet_small", "use data.embedded.net / data.embedded.train"),
    ("task=faces", "model.train.steps=10", "use data.embedded.train"),
    ("task=digits", "data.image_size=32", "use model.net.image_size"),
    ("task=digits", "data.channels=3", "use model.net.in_channels"),
    ("task=digits", "data.num_classes=10", "use model.net.num_classes"),
    ("task=digits", "data.num_domains=2", "use model.net.num_domains"),
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


LOOP_KEYS = {"max_steps", "val_check_interval", "limit_val_batches", "log_every_n_steps", "gradient_clip_val"}


@pytest.mark.parametrize("task", ["digits", "ti", "clip", "faces", "evaluate"])
def test_only_tasks_that_train_compose_the_training_loop(task):
    cfg = compose_config([f"task={task}", "task.folder=/tmp" if task == "evaluate" else "seed=0",
                          "paths.output_dir=/tmp/x"])
    trains = task in ("digits", "ti")
    assert (LOOP_KEYS <= set(cfg.trainer)) is trains and (LOOP_KEYS & set(cfg.trainer) == set()) is not trains
    assert {"accelerator", "devices", "precision"} <= set(cfg.trainer)
    if not trains:
        with pytest.raises(ConfigCompositionException, match="max_steps"):
            compose_config([f"task={task}", "trainer.max_steps=5"])


def test_evaluate_composes_only_the_data_keys_it_reads():
    cfg = compose_config(["task=evaluate", "task.folder=/tmp", "paths.output_dir=/tmp/x"])
    assert set(cfg.data) == {"root", "domains", "embedded"}
    assert set(compose_config(["task=digits"]).data) == {"root", "domains", "embedded", "batch_size", "num_workers"}


@pytest.mark.parametrize("task", ["clip", "faces"])
def test_tasks_without_a_training_loop_refuse_ddp(task):
    cfg = compose_config([f"task={task}", "trainer=ddp_cpu", "paths.output_dir=/tmp/x"])
    with pytest.raises(ConfigError, match=r"^trainer.devices=2: expected 1: this task runs in one process"):
        validate(cfg)
    validate(compose_config(["task=digits", "trainer=ddp_cpu", "paths.output_dir=/tmp/x"]))


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
    assert "sampler: ddim, ddpm, dpmpp\n" in out and "ti: custom_diffusion, textual_inversion\n" in out
    assert "_schema" not in out
