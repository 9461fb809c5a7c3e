"""The face models task=faces samples from: a FaceUNet from a plain state dict (the course's `UNet.pt`) or
a Lightning checkpoint of this project (its EMA weights), or a diffusers UNet2DModel folder.

UNet.pt alone cannot tell its architecture (norm groups and attention heads change no shape), so a
FaceUNet's arguments come from model.net, else from `unet.json` beside the weights (the embedded face
folder writes one), else the course's when the weights have its keys and shapes, else from `unet.json` in
the face folder; anything else is a one-line error naming the option to pass."""
from __future__ import annotations

import functools
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn

from src.data.faces import UNET_FILE
from src.errors import CheckpointError, DataError, first_line
from src.models.face_unet import FaceUNet, load_strict
from src.models.weights import read_state

ARCH_FILE = "unet.json"  # beside a UNet.pt: {"architecture": "FaceUNet", "arguments": {...}}
EMA_PREFIX = "ema.net."  # DiffusionModule keeps the EMA copy of the network under this name
PASS_NET = ("pass model.net={channel:..,channel_multiplier:[..],norm_groups:..} (FaceUNet's arguments; "
            "unnamed ones keep the course's values), or model=face_diffusers model.weights=<folder> for a "
            "diffusers UNet2DModel")


@dataclass
class FaceModel:
    """An eps-predicting network called net(x_t [B, C, H, W], t [B]) for images of image_shape [C, H, W]."""

    net: nn.Module
    image_shape: tuple[int, int, int]
    weights: Path
    architecture: str  # where the network's arguments came from, for the log


def write_architecture(folder: Path, arguments: dict[str, Any]) -> Path:
    """`<folder>/unet.json` naming the FaceUNet arguments of the UNet.pt beside it."""
    path = Path(folder) / ARCH_FILE
    path.write_text(json.dumps({"architecture": "FaceUNet", "arguments": arguments}, indent=2) + "\n")
    return path


def read_architecture(path: Path) -> dict[str, Any]:
    """The FaceUNet arguments a unet.json names; a one-line CheckpointError naming the file otherwise."""
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}: unreadable ({first_line(err)}); expected JSON written by "
                              "write_architecture") from err
    if not (isinstance(spec, dict) and spec.get("architecture") == "FaceUNet"
            and isinstance(spec.get("arguments"), dict)):
        raise CheckpointError(f"{path}: expected {{\"architecture\": \"FaceUNet\", \"arguments\": {{...}}}}")
    return spec["arguments"]


@functools.lru_cache(maxsize=1)
def course_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of the course's UNet.pt (FaceUNet's defaults), built on the meta device: no memory."""
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in FaceUNet().state_dict().items()}


def is_course_state(state: dict[str, Tensor]) -> bool:
    """Whether a state dict has exactly the course's keys and shapes."""
    course = course_shapes()
    return set(state) == set(course) and all(tuple(getattr(state[k], "shape", ())) == s for k, s in course.items())


def _architecture(net: Optional[dict], state: dict[str, Tensor], weights: Path,
                  face_dir: Path) -> tuple[dict, str]:
    """FaceUNet's arguments and where they came from (see the module's docstring for the order)."""
    if net is not None:
        return dict(net), "model.net"
    if (weights.parent / ARCH_FILE).is_file():
        return read_architecture(weights.parent / ARCH_FILE), str(weights.parent / ARCH_FILE)
    if is_course_state(state):
        return {}, "the course's keys and shapes"
    if (face_dir / ARCH_FILE).is_file():
        return read_architecture(face_dir / ARCH_FILE), str(face_dir / ARCH_FILE)
    raise CheckpointError(f"{weights}: not the course's UNet (its keys or shapes differ) and no {ARCH_FILE} "
                          f"beside it names its architecture; {PASS_NET}")


def _read(path: Path) -> dict[str, Tensor]:
    """A state dict from a plain torch.save file or (told apart by content) a Lightning .ckpt's EMA weights."""
    state = read_state(path, "the face UNet's weights (model.weights)")
    if "state_dict" in state and "pytorch-lightning_version" in state:
        ema = {k[len(EMA_PREFIX):]: v for k, v in state["state_dict"].items() if k.startswith(EMA_PREFIX)}
        if not ema:
            raise CheckpointError(f"{path}: a Lightning checkpoint without {EMA_PREFIX}* weights; expected a "
                                  "plain state dict or a .ckpt of this project's DiffusionModule")
        return ema
    return state


def _full(args: dict) -> dict[str, Any]:
    """FaceUNet's arguments in signature order, its defaults (the course's) filled in."""
    params = inspect.signature(FaceUNet).parameters
    unknown = sorted(set(args) - set(params))
    if unknown:
        raise ValueError(f"unknown argument {unknown[0]!r}; expected some of {', '.join(params)}")
    full = {k: args.get(k, p.default) for k, p in params.items()}
    return {k: list(v) if isinstance(v, (tuple, list)) else v for k, v in full.items()}


def _describe(args: dict, source: str) -> str:
    return f"FaceUNet({', '.join(f'{k}={v}' for k, v in args.items())}) from {source}"


def _check_image_shape(face_dir: Path, image_shape: Sequence[int], channels: int, stride: int, what: str) -> None:
    c, h, w = (int(s) for s in image_shape)
    if c != channels or h % stride or w % stride:
        raise DataError(f"{face_dir}: noise of shape [{c}, {h}, {w}]; expected {channels} channels and a height "
                        f"and width divisible by {stride} for {what}")


def load_face_unet(face_dir: Path, image_shape: Sequence[int], *, weights: Optional[str] = None,
                   net: Optional[dict] = None) -> FaceModel:
    """A FaceUNet in eval mode from `weights` (None: <face_dir>/UNet.pt) for images of image_shape [C, H, W]
    (the noise files'); key and shape mismatches are one-line CheckpointErrors naming the file."""
    path = Path(weights).expanduser() if weights is not None else Path(face_dir) / UNET_FILE
    state = _read(path)
    args, source = _architecture(net, state, path, Path(face_dir))
    try:
        full = _full(args)
    except ValueError as err:
        raise CheckpointError(f"{source}: {first_line(err)}") from err
    what = _describe(full, source)
    try:
        model = FaceUNet(**full)
    except (TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{source}: {first_line(err)}; expected FaceUNet's arguments") from err
    hint = "" if source == "model.net" else f"; or {PASS_NET}"
    load_strict(model, state, path, f"the state dict of {what}{hint}")
    _check_image_shape(face_dir, image_shape, full["in_channel"], 2 ** (len(full["channel_multiplier"]) - 1), what)
    return FaceModel(model.eval(), tuple(int(s) for s in image_shape), path, what)


class DiffusersEps(nn.Module):
    """A diffusers UNet2DModel called as net(x_t, t) -> eps, like FaceUNet."""

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        return self.unet(x_t, t).sample


def load_face_diffusers(face_dir: Path, image_shape: Sequence[int], *, weights: str) -> FaceModel:
    """A diffusers UNet2DModel folder (save_pretrained), offline; its config must fit image_shape [C, H, W]."""
    folder = Path(weights).expanduser()
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{folder}: no config.json; expected a diffusers UNet2DModel folder "
                              "(save_pretrained: config.json + diffusion_pytorch_model.safetensors)")
    from diffusers import UNet2DModel

    try:
        unet = UNet2DModel.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, EnvironmentError) as err:
        raise CheckpointError(f"{folder}: {first_line(err)}; expected a diffusers UNet2DModel folder") from err
    c = unet.config
    h, w = (c.sample_size, c.sample_size) if isinstance(c.sample_size, int) else c.sample_size
    shape = (int(c.in_channels), int(h), int(w))
    if tuple(int(s) for s in image_shape) != shape:
        raise DataError(f"{face_dir}: noise of shape {[int(s) for s in image_shape]}; expected {list(shape)}, "
                        f"the in_channels and sample_size of {folder / 'config.json'}")
    return FaceModel(DiffusersEps(unet).eval(), shape, folder, f"diffusers UNet2DModel {folder}")
