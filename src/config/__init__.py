"""The composed config: schemas registered in Hydra's ConfigStore, range checks, removed keys, sweep names.

Types and unknown keys are checked by OmegaConf when the config is composed (every option file names its
schema first in its defaults list); ranges by `validate`, which `src.run` calls before any heavy import.
Errors name the key, the value and what was expected. Nothing here imports torch.
"""
from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import is_dataclass
from pathlib import Path
from typing import Any, Iterable

from hydra.core.config_store import ConfigStore
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from src.config import clip, digits, faces, schema, ti
from src.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
SCHEMAS = [*schema.SCHEMAS, *digits.SCHEMAS, *faces.SCHEMAS, *clip.SCHEMAS, *ti.SCHEMAS]

# Keys that moved: a user who types the old one gets one line naming the new one (the schemas stay strict,
# no silent aliases). Matched on the override's key, so `sampler.guidance_scale=5` and `+...` alike.
REMOVED_KEYS: dict[str, str] = {
    "sampler.guidance_scale": "guidance.scale",
    "sampler.name": "sampler=<ddim|dpmpp|ddpm>",
    "sampler.per_class": "task.per_class",
    "sampler.batch_size": "task.sample_batch_size",
    "sampler.process_frames": "task.process_frames",
    "logger.name": "logger=<wandb|csv|none>",
    # task=digits and task=evaluate: the judges of generated digits are a group of their own
    "task.classifier.course_mnistm": "judge.mnistm_weights",
    # task=digits: the network's input size and condition counts are the model's
    "data.image_size": "model.net.image_size",
    "data.channels": "model.net.in_channels",
    "data.num_classes": "model.net.num_classes",
    "data.num_domains": "model.net.num_domains",
    "task.classifier": "judge.* (judge.epochs, judge.batch_size, judge.lr, judge.min_val_acc)",
    # task=clip and task=ti: one weights key per slot (a local path when it exists, else a Hub id)
    "model.path": "model.weights",
    "model.name": "model.weights",
    "model.tiny": "model.weights=null (the random tiny stand-in) or model.weights=<...>",
    "model.batch_size": "task.batch_size",
    "model.num_workers": "task.num_workers",
    "ti.method": "ti=<textual_inversion|custom_diffusion>",
    "ti.embeds": "task.weights",
    "ti.clip_path": "scorer.weights",
    "ti.steps": "trainer.max_steps",
    "ti.train": "task.train",
    "ti.concepts": "task.concepts",
    "ti.templates": "task.templates",
    "ti.initializer_tokens": "task.initializer_tokens",
    "ti.checkpoint_every": "task.checkpoint_every",
    "ti.images_per_prompt": "task.images_per_prompt",
    "ti.batch_size": "task.batch_size",
    "ti.num_inference_steps": "task.num_inference_steps",
    "ti.guidance_scale": "task.guidance_scale",
    "ti.multi_prompts": "task.multi_prompts",
    # task=faces: a FaceUNet's weights (state dict or .ckpt) are told apart by content; the embedded face
    # model's architecture and training live in the data option, its size comes from the noise files
    "model.format": "model=<face_unet|face_diffusers>",
    "model.train": "data.embedded.train",
}
REMOVED_OPTIONS: dict[str, str] = {
    "scheduler=ddpm": "scheduler=linear (the one schedule; DDIM's timesteps come from sampler=ddim)",
    "scheduler=ddim": "scheduler=linear (the one schedule; DDIM's timesteps come from sampler=ddim)",
    "model=sd_tiny": "model=sd (task=ti's default; its model.weights=null is the random tiny stand-in)",
    "model=face_unet_small": "data.embedded.net / data.embedded.train / data.embedded.image_size (the embedded "
                             "face model; model=face_unet loads it)",
}

# conf/hydra/launcher/submitit_{slurm,local}.yaml keep the plugin's names, so Hydra validates them against
# the plugin's schemas of the same name and says so in a deprecation warning each time, also in every SLURM
# job (which imports this module but does not run src/run.py's top level).
warnings.filterwarnings("ignore", message=r"(?s).*is validated against ConfigStore schema with the same name")


def check_removed_keys(overrides: Iterable[str]) -> None:
    """A ConfigError naming the replacement of the first override that sets a removed key or option."""
    for override in overrides:
        text = str(override).lstrip("+~")
        key = text.split("=", 1)[0]
        option = REMOVED_OPTIONS.get(text.split(",", 1)[0])
        if option is not None:
            raise ConfigError(f"{override}: this option was removed; use {option}")
        for old, new in REMOVED_KEYS.items():
            if key == old or key.startswith(old + "."):
                raise ConfigError(f"{override}: {old} was removed; use {new}")


def compose_config(overrides: Iterable[str] = ()) -> DictConfig:
    """The config `python -m src.run <overrides>` composes, for notebooks and tests (no Hydra run dir:
    pass paths.output_dir)."""
    from hydra import compose, initialize_config_dir

    overrides = list(overrides)
    check_removed_keys(overrides)
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose(config_name="config", overrides=overrides)


_typed_overrides: list[str] = []


class RememberSweepOverrides(Callback):
    """Hydra callback (conf/config.yaml): keeps the multirun's overrides as typed for sweep_name()."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _typed_overrides[:] = [str(o) for o in config.hydra.overrides.task]


def own_overrides(overrides) -> list[str]:
    """The overrides that shape the experiment: all but Hydra's own (hydra.*, hydra/..., also with + or ~)
    and how the sweep goes (sweep.dry_run, sweep.fail_fast, sweep.wait)."""
    return [str(o) for o in overrides if not str(o).lstrip("+~").startswith(("hydra.", "hydra/", "sweep."))]


def sweep_name() -> str:
    """The name of a sweep's directory: its overrides as typed, minus task= and hydra's own. Running the
    same multirun command again lands in the same directory and skips the jobs that finished.

    Resolved once, in the launching process (sampler.eta=0,0.5,1); jobs get the value from Hydra's
    resolver cache, as they do for ${now:...}: each job sees only its own overrides (sampler.eta=0.5).
    """
    overrides = [o for o in own_overrides(_typed_overrides) if not o.startswith("task=")]
    name = re.sub(r"[^A-Za-z0-9._,=+-]", "_", ",".join(overrides)) or "default"
    if len(name) > 80:
        name = f"{name[:64]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
    return name


def hydra_error_line(err: BaseException) -> str:
    """Hydra's multi-line composition errors as one line: the message, the OmegaConf error under it, lists of
    options joined ("Available options in 'hydra/launcher': basic, submitit_local, submitit_slurm"), the
    search path and OmegaConf's key dumps left out, and the `+key=value` hint last."""
    text = "\n".join([str(err).split("Config search path:")[0], str(err.__cause__ or "")])
    lines = [line.strip() for line in text.splitlines() if line.strip()
             and not line.strip().startswith(("full_key:", "object_type=", "reference_type=", "Set the environment"))]
    parts: list[str] = []
    listing = False
    for line in dict.fromkeys(lines):
        if listing and not line.endswith(":"):
            if not line.endswith("_schema"):  # the schemas of a group are not options to choose
                parts[-1] += (" " if parts[-1].endswith(":") else ", ") + line
            continue
        parts.append(line.rstrip("."))
        listing = line.endswith(":")
    hints = [p for p in parts if p.startswith("To append")]
    return "; ".join([p for p in parts if p not in hints] + hints)


def option_list() -> str:
    """`group: option, option` for each config group under conf/ (--help; the schemas are not options, and
    task_preset is chosen by +experiment and task, not by the user)."""
    groups = sorted(p for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in ("hydra", "task_preset"))
    return "\n".join(f"{g.name}: {', '.join(sorted(f.stem for f in g.glob('*.yaml')))}" for g in groups)


def register_configs() -> None:
    """Store every group's schemas (option files name them first) and the difflab.sweep_name resolver."""
    store = ConfigStore.instance()
    for group, name, node in SCHEMAS:
        store.store(group=group, name=name, node=node)
    if not OmegaConf.has_resolver("difflab.sweep_name"):
        OmegaConf.register_new_resolver("difflab.sweep_name", sweep_name, use_cache=True)
    if not OmegaConf.has_resolver("difflab.options"):
        OmegaConf.register_new_resolver("difflab.options", option_list)


ROOT_KEYS = {"task", "data", "model", "scheduler", "sampler", "guidance", "judge", "scorer", "trainer", "logger",
             "prompt", "ti", "paths", "seed", "skip_finished", "ckpt_path", "sweep"}


def validate(cfg: DictConfig) -> None:
    """Check every group's ranges; raises ConfigError naming the first bad key."""
    unknown = sorted(set(cfg.keys()) - ROOT_KEYS)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown top-level key; expected one of {', '.join(sorted(ROOT_KEYS))}")
    if "name" not in cfg.get("task", {}):
        raise ConfigError("task.name is missing: every conf/task/*.yaml sets it")
    schema.check(isinstance(cfg.seed, int) and not isinstance(cfg.seed, bool), "seed", cfg.seed, "an integer")
    schema.check(isinstance(cfg.skip_finished, bool), "skip_finished", cfg.skip_finished, "true or false")
    for key in ("dry_run", "fail_fast", "wait"):
        schema.check(isinstance(cfg.sweep[key], bool), f"sweep.{key}", cfg.sweep[key], "true or false")
    if cfg.task.name == "digits" and cfg.task.train is False and cfg.get("ckpt_path") is None:
        raise ConfigError("task.train=false needs ckpt_path=<a checkpoint of task=digits>")
    try:
        obj = OmegaConf.to_object(cfg)
    except MissingMandatoryValue as err:  # a ??? that the command did not set (task.folder of task=evaluate)
        raise ConfigError(f"{err.full_key}: no value; expected {err.full_key}=<value> on the command line") from None
    for key, value in obj.items():
        if is_dataclass(value) and hasattr(value, "check"):
            value.check(key)
