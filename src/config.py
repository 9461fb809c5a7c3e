"""Structured schemas for every config group, registered in Hydra's ConfigStore.

Types are checked by OmegaConf when the config is composed; ranges by `validate`, which `src.run`
calls before any heavy import. Errors name the key, the value and what was expected.
"""
from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.experimental.callback import Callback
from omegaconf import MISSING, DictConfig, OmegaConf

from src.errors import ConfigError


def _check(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r}: expected {expected}")


@dataclass
class SchedulerConfig:
    """Linear beta noise schedule (DDPM, Ho et al. 2020, sec. 4), betas computed in float64."""

    _target_: str = "src.diffusion.schedules.NoiseSchedule.linear"
    steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 2e-2
    timestep_offset: int = 1  # DDIM's "leading" spacing: 50 of 1000 steps -> 981, 961, ..., 1

    def check(self, key: str) -> None:
        _check(self.steps >= 2, f"{key}.steps", self.steps, "an integer >= 2")
        _check(0.0 < self.beta_start < 1.0, f"{key}.beta_start", self.beta_start, "a value in (0, 1)")
        _check(self.beta_start < self.beta_end < 1.0, f"{key}.beta_end", self.beta_end,
               f"a value in (beta_start={self.beta_start}, 1)")
        _check(0 <= self.timestep_offset < self.steps, f"{key}.timestep_offset", self.timestep_offset,
               "an integer in [0, steps)")


@dataclass
class SamplerConfig:
    """How images are drawn: the algorithm, its steps, eta and classifier-free guidance."""

    name: str = "ddim"
    num_steps: int = 50
    eta: float = 0.0
    guidance_scale: float = 3.0
    clip_x0: bool = True
    per_class: int = 10
    batch_size: int = 250
    process_frames: int = 6

    def check(self, key: str) -> None:
        _check(self.name in ("ddpm", "ddim"), f"{key}.name", self.name, "one of ddpm, ddim")
        _check(self.num_steps >= 1, f"{key}.num_steps", self.num_steps, "an integer >= 1")
        _check(0.0 <= self.eta <= 1.0, f"{key}.eta", self.eta, "a value in [0, 1]")
        _check(self.guidance_scale >= 0.0, f"{key}.guidance_scale", self.guidance_scale, "a value >= 0")
        _check(self.per_class >= 1, f"{key}.per_class", self.per_class, "an integer >= 1")
        _check(self.batch_size >= 1, f"{key}.batch_size", self.batch_size, "an integer >= 1")
        _check(self.process_frames >= 2, f"{key}.process_frames", self.process_frames, "an integer >= 2")


@dataclass
class TrainerConfig:
    """Arguments of lightning.pytorch.Trainer that the project sets."""

    _target_: str = "lightning.pytorch.Trainer"
    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    max_steps: int = 1500
    max_epochs: int = -1
    val_check_interval: Any = 500
    check_val_every_n_epoch: Optional[int] = None
    limit_val_batches: Any = 4
    log_every_n_steps: int = 25
    gradient_clip_val: Optional[float] = 1.0
    enable_progress_bar: bool = True
    enable_model_summary: bool = False
    num_sanity_val_steps: int = 0
    deterministic: bool = False
    benchmark: Optional[bool] = None

    def check(self, key: str) -> None:
        _check(self.accelerator in ("cpu", "gpu", "cuda", "mps", "auto"), f"{key}.accelerator",
               self.accelerator, "one of cpu, gpu, cuda, mps, auto")
        _check(self.max_steps >= 0, f"{key}.max_steps", self.max_steps, "an integer >= 0")
        _check(self.precision in ("32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "64-true"),
               f"{key}.precision", self.precision, "one of 32-true, bf16-mixed, 16-mixed, bf16-true, 64-true")


@dataclass
class LoggerConfig:
    """Which experiment logger Lightning writes to: wandb, csv or none."""

    name: str = "none"
    project: str = "difflab"
    mode: str = "offline"
    group: Optional[str] = None
    tags: list = field(default_factory=list)

    def check(self, key: str) -> None:
        _check(self.name in ("wandb", "csv", "none"), f"{key}.name", self.name, "one of wandb, csv, none")
        _check(self.mode in ("offline", "online", "disabled"), f"{key}.mode", self.mode,
               "one of offline, online, disabled (or set WANDB_MODE)")


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


@dataclass
class TIConfig:
    """Textual inversion / Custom Diffusion (task=ti): what trains, how long, how images are drawn and scored."""

    method: str = "textual_inversion"
    train: bool = True
    # A folder of an earlier run's embeddings (<c>/learned_embeds.safetensors) to load instead of training.
    embeds: Optional[str] = None
    # Concept ids of input.json to run; empty = all.
    concepts: list = field(default_factory=list)
    templates: str = "auto"
    initializer_tokens: Optional[list] = None
    num_vectors: int = 1
    lr: float = 5e-3
    # custom_diffusion: learning rate of the cross-attention key/value projections
    kv_lr: float = 1e-5
    steps: int = 2000
    checkpoint_every: int = 500
    images_per_prompt: int = 25
    batch_size: int = 5
    num_inference_steps: int = 50
    guidance_scale: float = 7.5
    clip_path: Optional[str] = None
    # Prompts naming several concepts' tokens, drawn with all their embeddings loaded (skipped if one is not).
    multi_prompts: list = field(default_factory=lambda: ["a <new1> next to a <new2>"])

    def check(self, key: str) -> None:
        _check(self.method in ("textual_inversion", "custom_diffusion"), f"{key}.method", self.method,
               "one of textual_inversion, custom_diffusion")
        _check(self.kv_lr > 0, f"{key}.kv_lr", self.kv_lr, "a value > 0")
        _check(self.templates in ("auto", "object", "style"), f"{key}.templates", self.templates,
               "one of auto, object, style")
        _check(self.num_vectors >= 1, f"{key}.num_vectors", self.num_vectors, "an integer >= 1")
        _check(self.lr > 0, f"{key}.lr", self.lr, "a value > 0")
        _check(self.steps >= 0, f"{key}.steps", self.steps, "an integer >= 0")
        _check(self.checkpoint_every >= 1, f"{key}.checkpoint_every", self.checkpoint_every, "an integer >= 1")
        _check(self.images_per_prompt >= 1, f"{key}.images_per_prompt", self.images_per_prompt, "an integer >= 1")
        _check(self.batch_size >= 1, f"{key}.batch_size", self.batch_size, "an integer >= 1")
        _check(self.num_inference_steps >= 1, f"{key}.num_inference_steps", self.num_inference_steps,
               "an integer >= 1")
        _check(self.guidance_scale >= 0, f"{key}.guidance_scale", self.guidance_scale, "a value >= 0")


@dataclass
class PathsConfig:
    cache_dir: str = MISSING
    output_dir: str = MISSING


@dataclass
class Config:
    """The composed config; task/data/model are free-form per task and checked by the task."""

    task: Any = MISSING
    data: Any = MISSING
    model: Any = MISSING
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    ti: TIConfig = field(default_factory=TIConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 0
    ckpt_path: Optional[str] = None
    # In a multirun, a job whose metrics.json already exists is not run again (resumable sweeps).
    skip_finished: bool = True


CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

# conf/hydra/launcher/submitit_{slurm,local}.yaml keep the plugin's names, so Hydra validates them against
# the plugin's schemas of the same name and says so in a deprecation warning each time, also in every SLURM
# job (which imports this module but does not run src/run.py's top level).
warnings.filterwarnings("ignore", message=r"(?s).*is validated against ConfigStore schema with the same name")


def compose_config(overrides: list[str] = ()) -> DictConfig:
    """The config `python -m src.run <overrides>` composes, for notebooks and tests (no Hydra run dir:
    pass paths.output_dir)."""
    from hydra import compose, initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose(config_name="config", overrides=list(overrides))


_typed_overrides: list[str] = []


class RememberSweepOverrides(Callback):
    """Hydra callback (conf/config.yaml): keeps the multirun's overrides as typed for sweep_name()."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _typed_overrides[:] = [str(o) for o in config.hydra.overrides.task]


def own_overrides(overrides) -> list[str]:
    """The overrides that shape the experiment: all but Hydra's own (hydra.*, hydra/..., also with + or ~)."""
    return [str(o) for o in overrides if not str(o).lstrip("+~").startswith(("hydra.", "hydra/"))]


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


def register_configs() -> None:
    """Store our schema (conf/config.yaml names it first) and register the difflab.sweep_name resolver."""
    ConfigStore.instance().store(name="config_schema", node=Config)
    if not OmegaConf.has_resolver("difflab.sweep_name"):
        OmegaConf.register_new_resolver("difflab.sweep_name", sweep_name, use_cache=True)


def validate(cfg: DictConfig) -> None:
    """Check every group's ranges; raises ConfigError naming the first bad key."""
    obj = OmegaConf.to_object(cfg)
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value) and hasattr(value, "check"):
            value.check(f.name)
    if "name" not in cfg.task:
        raise ConfigError("task.name is missing: every conf/task/*.yaml sets it")
    if obj.sampler.name == "ddpm" and obj.sampler.num_steps != obj.scheduler.steps:
        raise ConfigError(f"sampler.num_steps={obj.sampler.num_steps}: ancestral DDPM runs every step, "
                          f"expected scheduler.steps={obj.scheduler.steps} (or use sampler=ddim)")
