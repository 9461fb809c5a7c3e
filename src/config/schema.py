"""Schemas shared by every task: noise schedule, samplers, guidance, trainer, logger, prompt.

Each option file of a group starts with `defaults: [<schema name>, _self_]`, so OmegaConf checks its
keys and types when the config is composed; `check(key)` checks ranges before any heavy import. Options
that build something name their builder with `_target_` (`_partial_` where the caller adds arguments).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from src.errors import ConfigError


def check(ok: bool, key: str, value: Any, expected: str) -> None:
    """Raise ConfigError('<key>=<value>: expected <expected>') unless ok."""
    if not ok:
        raise ConfigError(f"{key}={value!r}: expected {expected}")


@dataclass
class LinearScheduleConfig:
    """Linear beta noise schedule (DDPM, Ho et al. 2020, sec. 4), betas computed in float64."""

    _target_: str = "src.diffusion.schedules.NoiseSchedule.linear"
    steps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 2e-2
    timestep_offset: int = 1  # DDIM's "leading" spacing: 50 of 1000 steps -> 981, 961, ..., 1

    def check(self, key: str) -> None:
        check(self.steps >= 2, f"{key}.steps", self.steps, "an integer >= 2")
        check(0.0 < self.beta_start < 1.0, f"{key}.beta_start", self.beta_start, "a value in (0, 1)")
        check(self.beta_start < self.beta_end < 1.0, f"{key}.beta_end", self.beta_end,
              f"a value in (beta_start={self.beta_start}, 1)")
        check(0 <= self.timestep_offset < self.steps, f"{key}.timestep_offset", self.timestep_offset,
              "an integer in [0, steps)")


@dataclass
class DDIMSamplerConfig:
    """DDIM (Song et al. 2021, eq. 12): num_steps of the schedule's steps; eta 0 deterministic."""

    _target_: str = "src.diffusion.samplers.ddim_sample"
    _partial_: bool = True
    num_steps: int = 50
    eta: float = 0.0
    clip_x0: bool = True

    def check(self, key: str) -> None:
        check(self.num_steps >= 1, f"{key}.num_steps", self.num_steps, "an integer >= 1")
        check(0.0 <= self.eta <= 1.0, f"{key}.eta", self.eta, "a value in [0, 1]")


@dataclass
class DPMSolverSamplerConfig:
    """DPM-Solver++ (Lu et al. 2022), multistep and deterministic, from diffusers: num_steps of the schedule."""

    _target_: str = "src.diffusion.samplers.dpmpp_sample"
    _partial_: bool = True
    num_steps: int = 20
    order: int = 2
    clip_x0: bool = True

    def check(self, key: str) -> None:
        check(self.num_steps >= 1, f"{key}.num_steps", self.num_steps, "an integer >= 1")
        check(self.order in (1, 2, 3), f"{key}.order", self.order, "1, 2 or 3")


@dataclass
class DDPMSamplerConfig:
    """Ancestral DDPM (Ho et al. 2020, Algorithm 2) over every step of the schedule."""

    _target_: str = "src.diffusion.samplers.ddpm_sample"
    _partial_: bool = True
    clip_x0: bool = True

    def check(self, key: str) -> None:
        pass


@dataclass
class GuidanceConfig:
    """Classifier-free guidance (Ho & Salimans 2022): scale 0 unconditional, 1 conditional."""

    _target_: str = "src.diffusion.guidance.ClassifierFreeGuidance"
    _partial_: bool = True
    scale: float = 3.0

    def check(self, key: str) -> None:
        check(self.scale >= 0.0, f"{key}.scale", self.scale, "a value >= 0")


@dataclass
class TrainerConfig:
    """Where a task runs (the options of the trainer group: cpu, gpu, ddp_cpu), as arguments of
    lightning.pytorch.Trainer. Tasks without a training loop of their own (clip, evaluate, faces) run in one
    process; their Lightning fits (the embedded face model) take accelerator and precision from here."""

    _target_: str = "lightning.pytorch.Trainer"
    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    # Progress of long stages: a bar in a terminal, else a log line every ~30 s.
    enable_progress_bar: bool = True

    def check(self, key: str) -> None:
        self.check_device(key)
        check(self.devices == 1, f"{key}.devices", self.devices,
              "1: this task runs in one process (DDP is for task=digits and task=ti)")
        check(self.num_nodes == 1, f"{key}.num_nodes", self.num_nodes, "1: this task runs in one process")

    def check_device(self, key: str) -> None:
        check(self.accelerator in ("cpu", "gpu", "cuda", "mps", "auto"), f"{key}.accelerator",
              self.accelerator, "one of cpu, gpu, cuda, mps, auto")
        check(self.precision in ("32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "64-true"),
              f"{key}.precision", self.precision, "one of 32-true, bf16-mixed, 16-mixed, bf16-true, 64-true")


@dataclass
class FitTrainerConfig(TrainerConfig):
    """The Trainer of a task that trains (digits, ti): where it runs plus the training loop, whose length,
    trainer.max_steps, is the task's one training-length key."""

    max_steps: int = 1500
    max_epochs: int = -1
    val_check_interval: Any = 500
    check_val_every_n_epoch: Optional[int] = None
    limit_val_batches: Any = 4
    log_every_n_steps: int = 25
    gradient_clip_val: Optional[float] = 1.0
    enable_model_summary: bool = False
    num_sanity_val_steps: int = 0
    deterministic: bool = False
    benchmark: Optional[bool] = None

    def check(self, key: str) -> None:  # any number of processes (DDP)
        self.check_device(key)
        check(self.max_steps >= 0, f"{key}.max_steps", self.max_steps, "an integer >= 0")


@dataclass
class WandbLoggerConfig:
    """Weights & Biases through Lightning's WandbLogger."""

    _target_: str = "src.loggers.wandb_logger"
    _partial_: bool = True
    project: str = "difflab"
    mode: str = "offline"
    group: Optional[str] = None
    tags: list = field(default_factory=list)

    def check(self, key: str) -> None:
        check(self.mode in ("offline", "online", "disabled"), f"{key}.mode", self.mode,
              "one of offline, online, disabled (or set WANDB_MODE)")


@dataclass
class CsvLoggerConfig:
    """Lightning's CSVLogger into <run>/csv/metrics.csv."""

    _target_: str = "src.loggers.csv_logger"
    _partial_: bool = True

    def check(self, key: str) -> None:
        pass


@dataclass
class NoLoggerConfig:
    """No experiment logger: results stay in the run directory."""

    def check(self, key: str) -> None:
        pass


@dataclass
class PathsConfig:
    cache_dir: str = "???"
    output_dir: str = "???"


SCHEMAS = [
    ("scheduler", "linear_schema", LinearScheduleConfig),
    ("sampler", "ddim_schema", DDIMSamplerConfig),
    ("sampler", "ddpm_schema", DDPMSamplerConfig),
    ("sampler", "dpmpp_schema", DPMSolverSamplerConfig),
    ("guidance", "classifier_free_schema", GuidanceConfig),
    ("trainer", "trainer_schema", TrainerConfig),
    ("trainer", "fit_trainer_schema", FitTrainerConfig),
    ("logger", "wandb_schema", WandbLoggerConfig),
    ("logger", "csv_schema", CsvLoggerConfig),
    ("logger", "none_schema", NoLoggerConfig),
]
