"""Schemas of task=digits and task=evaluate: their task, data, model and judge options."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from omegaconf import MISSING

from src.config.schema import check

# The domains of the course's digits (src.data.digits.DOMAINS; not imported here: no torch at compose time).
DIGIT_DOMAINS = ("mnistm", "svhn")
# task.sample_precision: auto = bf16 where it is native (a CUDA device, a CPU with AVX512-BF16 or AMX)
PRECISIONS = ("fp32", "bf16", "auto")


@dataclass
class DigitsEmbeddedConfig:
    """The embedded stand-in for the course's digits, generated once into paths.cache_dir."""

    seed: int = 0
    n_train: int = 5000
    n_val: int = 1000

    def check(self, key: str) -> None:
        check(self.n_train >= 1, f"{key}.n_train", self.n_train, "an integer >= 1")
        check(self.n_val >= 1, f"{key}.n_val", self.n_val, "an integer >= 1")


@dataclass
class DigitsReferenceConfig:
    """The real digits (task=evaluate): the course layout <hw2_data>/digits, {mnistm,svhn}/{data/,train.csv,
    val.csv}, or with root null the embedded set; the judges train on it and FID compares against it."""

    root: Optional[str] = None
    domains: list[str] = field(default_factory=lambda: list(DIGIT_DOMAINS))
    embedded: DigitsEmbeddedConfig = field(default_factory=DigitsEmbeddedConfig)

    def check(self, key: str) -> None:
        domains = list(self.domains)
        check(bool(domains) and set(domains) <= set(DIGIT_DOMAINS) and len(set(domains)) == len(domains),
              f"{key}.domains", domains, f"a non-empty subset of {list(DIGIT_DOMAINS)}")
        self.embedded.check(f"{key}.embedded")


@dataclass
class DigitsDataConfig(DigitsReferenceConfig):
    """The real digits and how task=digits loads them for training."""

    batch_size: int = 64
    num_workers: int = 0

    def check(self, key: str) -> None:
        super().check(key)
        check(self.batch_size >= 1, f"{key}.batch_size", self.batch_size, "an integer >= 1")
        check(self.num_workers >= 0, f"{key}.num_workers", self.num_workers, "an integer >= 0")


@dataclass
class ConditionalUNetConfig:
    """diffusers UNet2DModel conditioned on digit + domain (src.models.conditional_unet)."""

    _target_: str = "src.models.conditional_unet.ConditionalUNet"
    image_size: int = 28
    in_channels: int = 3
    num_classes: int = 10
    num_domains: int = 2
    block_out_channels: list[int] = field(default_factory=lambda: [32, 64, 64])
    layers_per_block: int = 1
    attention_levels: list[bool] = field(default_factory=lambda: [False, False, True])
    norm_num_groups: int = 16

    def check(self, key: str) -> None:
        check(self.image_size >= 8, f"{key}.image_size", self.image_size, "an integer >= 8")
        check(self.in_channels == 3, f"{key}.in_channels", self.in_channels, "3 (the digits are RGB)")
        check(self.num_classes == 10, f"{key}.num_classes", self.num_classes, "10 (digits 0-9)")
        check(self.num_domains == len(DIGIT_DOMAINS), f"{key}.num_domains", self.num_domains,
              f"{len(DIGIT_DOMAINS)} (one id per domain of {list(DIGIT_DOMAINS)})")
        channels, levels = list(self.block_out_channels), list(self.attention_levels)
        check(bool(channels) and all(c >= 1 for c in channels), f"{key}.block_out_channels", channels,
              "a non-empty list of positive integers")
        check(len(levels) == len(channels), f"{key}.attention_levels", levels,
              f"one flag per entry of block_out_channels={channels}")
        check(self.layers_per_block >= 1, f"{key}.layers_per_block", self.layers_per_block, "an integer >= 1")
        check(self.norm_num_groups >= 1 and all(c % self.norm_num_groups == 0 for c in channels),
              f"{key}.norm_num_groups", self.norm_num_groups, f"a divisor of every block_out_channels={channels}")


@dataclass
class DigitsUNetConfig:
    """The DiffusionModule (built with the schedule at run time) and the training settings of task=digits."""

    _target_: str = "src.models.diffusion_module.DiffusionModule"
    _partial_: bool = True
    net: ConditionalUNetConfig = field(default_factory=ConditionalUNetConfig)
    cond_drop_prob: float = 0.1
    ema_decay: float = 0.999
    min_snr_gamma: Optional[float] = 5.0
    lr: float = 2e-3
    weight_decay: float = 0.0
    warmup_steps: int = 50
    lr_final: float = 1.0

    def check(self, key: str) -> None:
        self.net.check(f"{key}.net")
        check(0.0 <= self.cond_drop_prob <= 1.0, f"{key}.cond_drop_prob", self.cond_drop_prob, "a value in [0, 1]")
        check(0.0 <= self.ema_decay < 1.0, f"{key}.ema_decay", self.ema_decay, "a value in [0, 1)")
        check(self.min_snr_gamma is None or self.min_snr_gamma > 0, f"{key}.min_snr_gamma", self.min_snr_gamma,
              "a value > 0, or null for the plain eps MSE")
        check(self.lr > 0, f"{key}.lr", self.lr, "a value > 0")
        check(self.weight_decay >= 0, f"{key}.weight_decay", self.weight_decay, "a value >= 0")
        check(self.warmup_steps >= 0, f"{key}.warmup_steps", self.warmup_steps, "an integer >= 0")
        check(0.0 <= self.lr_final <= 1.0, f"{key}.lr_final", self.lr_final, "a value in [0, 1]")


@dataclass
class DigitClassifiersConfig:
    """The judges of generated digits: one DigitNet per domain trained once on real images (cached), or the
    course grader's: its MNIST-M LeNet (mnistm_weights: Classifier.pth), its SVHN ResNet-34 (svhn_weights: a
    pytorch_model.bin or the Hub id edadaltocg/resnet34_svhn)."""

    _target_: str = "src.eval.judges.load_judges"
    _partial_: bool = True
    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    min_val_acc: float = 0.98
    mnistm_weights: Optional[str] = None
    svhn_weights: Optional[str] = None

    def check(self, key: str) -> None:
        check(self.epochs >= 1, f"{key}.epochs", self.epochs, "an integer >= 1")
        check(self.batch_size >= 1, f"{key}.batch_size", self.batch_size, "an integer >= 1")
        check(self.lr > 0, f"{key}.lr", self.lr, "a value > 0")
        check(0.0 <= self.min_val_acc <= 1.0, f"{key}.min_val_acc", self.min_val_acc, "a value in [0, 1]")


@dataclass
class DigitsTaskConfig:
    """task=digits: train (or load ckpt_path), sample per digit and domain, score."""

    name: str = "digits"
    main_metric: str = "mean_acc"
    train: bool = True
    per_class: int = 10
    sample_batch_size: int = 250
    process_frames: int = 6
    compile: bool = True
    sample_precision: str = "auto"

    def check(self, key: str) -> None:
        check(self.sample_precision in PRECISIONS, f"{key}.sample_precision", self.sample_precision,
              f"one of {', '.join(PRECISIONS)}")
        check(self.per_class >= 1, f"{key}.per_class", self.per_class, "an integer >= 1")
        check(self.sample_batch_size >= 1, f"{key}.sample_batch_size", self.sample_batch_size, "an integer >= 1")
        check(self.process_frames >= 2, f"{key}.process_frames", self.process_frames, "an integer >= 2")


@dataclass
class EvaluateTaskConfig:
    """task=evaluate: score <folder>/{mnistm,svhn}/{digit}_{index:03d}.png."""

    name: str = "evaluate"
    main_metric: str = "mean_acc"
    folder: str = MISSING

    def check(self, key: str) -> None:
        pass


SCHEMAS = [
    ("task", "digits_schema", DigitsTaskConfig),
    ("task", "evaluate_schema", EvaluateTaskConfig),
    ("data", "digits_schema", DigitsDataConfig),
    ("data", "digits_reference_schema", DigitsReferenceConfig),
    ("model", "digits_unet_schema", DigitsUNetConfig),
    ("judge", "digit_classifiers_schema", DigitClassifiersConfig),
]
