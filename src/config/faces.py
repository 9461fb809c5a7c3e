"""Schemas of task=faces: its task, data and model options."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, List, Optional

from src.config.schema import check as _check

LFW_IMAGES = 200  # the embedded set: lfw_subset's 100 faces and their mirror images


@dataclass
class FaceUNetArgs:
    """Arguments of src.models.face_unet.FaceUNet; the defaults are the course's architecture."""

    in_channel: int = 3
    channel: int = 128
    channel_multiplier: List[int] = field(default_factory=lambda: [1, 1, 2, 2, 4, 4])
    n_res_blocks: int = 2
    attn_strides: List[int] = field(default_factory=lambda: [16])
    attn_heads: int = 1
    dropout: float = 0.0
    norm_groups: int = 32

    def check(self, key: str) -> None:
        _check(self.in_channel >= 1, f"{key}.in_channel", self.in_channel, "an integer >= 1")
        _check(self.channel >= 1, f"{key}.channel", self.channel, "an integer >= 1")
        mults = list(self.channel_multiplier)
        _check(len(mults) >= 1 and min(mults) >= 1, f"{key}.channel_multiplier", mults,
               "a non-empty list of integers >= 1")
        _check(self.n_res_blocks >= 1, f"{key}.n_res_blocks", self.n_res_blocks, "an integer >= 1")
        _check(self.norm_groups >= 1 and all(self.channel * m % self.norm_groups == 0 for m in mults),
               f"{key}.norm_groups", self.norm_groups, f"a divisor of every level's channels (channel={self.channel} "
               f"x channel_multiplier={mults})")
        _check(self.attn_heads >= 1 and all(self.channel * m % self.attn_heads == 0 for m in mults),
               f"{key}.attn_heads", self.attn_heads, "a divisor of every level's channels")
        _check(0.0 <= self.dropout < 1.0, f"{key}.dropout", self.dropout, "a value in [0, 1)")


def small_face_unet() -> FaceUNetArgs:
    """The embedded face model: 32x32 faces, four levels, attention at 8x8 and 4x4, 1.6M parameters."""
    return FaceUNetArgs(channel=32, channel_multiplier=[1, 2, 2, 2], n_res_blocks=1, attn_strides=[4, 8],
                        norm_groups=8)


@dataclass
class FaceTrainConfig:
    """Lightning training of the embedded face model (DiffusionModule: eps loss, min-SNR weighting, EMA)."""

    steps: int = 2000
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.0
    warmup_steps: int = 50
    ema_decay: float = 0.999
    # Min-SNR-gamma loss weighting (Hang et al. 2023); null = the plain eps MSE.
    min_snr_gamma: Optional[float] = 5.0
    # Gradient norm clipping; null = none.
    gradient_clip_val: Optional[float] = 1.0

    def check(self, key: str) -> None:
        _check(self.steps >= 1, f"{key}.steps", self.steps, "an integer >= 1")
        _check(1 <= self.batch_size <= LFW_IMAGES, f"{key}.batch_size", self.batch_size,
               f"an integer in [1, {LFW_IMAGES}] (the embedded set has {LFW_IMAGES} images)")
        _check(self.lr > 0, f"{key}.lr", self.lr, "a value > 0")
        _check(self.weight_decay >= 0, f"{key}.weight_decay", self.weight_decay, "a value >= 0")
        _check(self.warmup_steps >= 0, f"{key}.warmup_steps", self.warmup_steps, "an integer >= 0")
        _check(0.0 <= self.ema_decay < 1.0, f"{key}.ema_decay", self.ema_decay, "a value in [0, 1)")
        _check(self.min_snr_gamma is None or self.min_snr_gamma > 0, f"{key}.min_snr_gamma", self.min_snr_gamma,
               "a value > 0 or null")
        _check(self.gradient_clip_val is None or self.gradient_clip_val > 0, f"{key}.gradient_clip_val",
               self.gradient_clip_val, "a value > 0 or null")


@dataclass
class EmbeddedFacesConfig:
    """The embedded face folder (data.root null): its FaceUNet, trained as `train` on image_size faces,
    n_noise noise files drawn from seed, and their GT by diffusers' DDIM (eta 0) of gt_steps."""

    seed: int = 0
    n_noise: int = 10
    gt_steps: int = 50
    image_size: int = 32
    net: FaceUNetArgs = field(default_factory=small_face_unet)
    train: FaceTrainConfig = field(default_factory=FaceTrainConfig)

    def check(self, key: str) -> None:
        _check(self.n_noise >= 1, f"{key}.n_noise", self.n_noise, "an integer >= 1")
        _check(self.gt_steps >= 1, f"{key}.gt_steps", self.gt_steps, "an integer >= 1")
        self.net.check(f"{key}.net")
        stride = 2 ** (len(self.net.channel_multiplier) - 1)
        _check(self.image_size >= stride and self.image_size % stride == 0, f"{key}.image_size", self.image_size,
               f"a multiple of {stride} (2 ** (levels - 1) of {key}.net.channel_multiplier)")
        self.train.check(f"{key}.train")


@dataclass
class FaceDataConfig:
    """The course layout <hw2_data>/face (noise/NN.pt, GT/NN.png, UNet.pt), or (root null) the embedded one."""

    root: Optional[str] = None
    embedded: EmbeddedFacesConfig = field(default_factory=EmbeddedFacesConfig)

    def check(self, key: str) -> None:
        self.embedded.check(f"{key}.embedded")


@dataclass
class FaceUNetLoaderConfig:
    """A FaceUNet from `weights` (null: <face folder>/UNet.pt), a plain state dict or a Lightning .ckpt of
    this project (its EMA weights); `net` null: the architecture from the folder (unet.json, or the
    course's when UNet.pt has its keys and shapes)."""

    _target_: str = "src.models.face_loading.load_face_unet"
    _partial_: bool = True
    weights: Optional[str] = None
    # A mapping of FaceUNetArgs (unnamed ones keep the course's values); Any because OmegaConf cannot merge
    # `model.net={...}` into a null dataclass node.
    net: Any = None

    def check(self, key: str) -> None:
        if self.net is None:
            return
        names = [f.name for f in fields(FaceUNetArgs)]
        _check(isinstance(self.net, dict) and set(self.net) <= set(names), f"{key}.net", self.net,
               f"null or a mapping of FaceUNet arguments ({', '.join(names)})")
        FaceUNetArgs(**self.net).check(f"{key}.net")


@dataclass
class FaceDiffusersConfig:
    """A diffusers UNet2DModel folder (save_pretrained), loaded offline."""

    _target_: str = "src.models.face_loading.load_face_diffusers"
    _partial_: bool = True
    weights: Optional[str] = None

    def check(self, key: str) -> None:
        _check(self.weights is not None, f"{key}.weights", self.weights,
               "a diffusers UNet2DModel folder (save_pretrained: config.json + weights)")


@dataclass
class FacesTaskConfig:
    """task=faces: what is scored and drawn besides the NN.png files."""

    name: str = "faces"
    main_metric: str = "mse"
    score: bool = True
    figures: bool = True
    figure_etas: List[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    grid_noises: int = 4
    interp_alphas: List[float] = field(default_factory=lambda: [i / 10 for i in range(11)])
    sample_batch_size: int = 64

    def check(self, key: str) -> None:
        etas = list(self.figure_etas)
        _check(len(etas) >= 1 and all(0.0 <= e <= 1.0 for e in etas), f"{key}.figure_etas", etas,
               "values in [0, 1]")
        _check(self.grid_noises >= 1, f"{key}.grid_noises", self.grid_noises, "an integer >= 1")
        _check(len(self.interp_alphas) >= 1, f"{key}.interp_alphas", list(self.interp_alphas), "a non-empty list")
        _check(self.sample_batch_size >= 1, f"{key}.sample_batch_size", self.sample_batch_size, "an integer >= 1")


SCHEMAS = [
    ("task", "faces_schema", FacesTaskConfig),
    ("data", "face_schema", FaceDataConfig),
    ("model", "face_unet_schema", FaceUNetLoaderConfig),
    ("model", "face_diffusers_schema", FaceDiffusersConfig),
]
