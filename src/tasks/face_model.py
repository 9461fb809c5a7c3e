"""The one place task=faces loads its model from: the course's `UNet.pt` (a plain state dict), a
diffusers UNet2DModel folder, or a Lightning checkpoint of this project (its EMA weights)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from src.data.faces import UNET_FILE
from src.errors import CheckpointError, ConfigError
from src.models.face_unet import load_strict

FORMATS = ("course", "project", "diffusers")
EMA_PREFIX = "ema.net."  # DiffusionModule keeps the EMA copy of the network under this name


@dataclass
class FaceModel:
    """An eps-predicting network called net(x_t [B, C, H, W], t [B]) and the [C, H, W] it generates."""

    net: nn.Module
    image_shape: tuple[int, int, int]
    weights: Path


class DiffusersEps(nn.Module):
    """A diffusers UNet2DModel called as net(x_t, t) -> eps, like FaceUNet."""

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        return self.unet(x_t, t).sample


def load_face_model(cfg: DictConfig, data_root: Path) -> FaceModel:
    """The network named by cfg.model: `format` picks the loader, `weights` the file (course: null is
    <data root>/UNet.pt); key mismatches are one-line CheckpointErrors naming the file."""
    m = cfg.model
    if m.format not in FORMATS:
        raise ConfigError(f"model.format={m.format!r}: expected one of {', '.join(FORMATS)}")
    if m.weights is None and m.format != "course":
        what = "a diffusers UNet2DModel folder" if m.format == "diffusers" else "a .ckpt of this project"
        raise ConfigError(f"model.weights=None: expected {what} for model.format={m.format}")
    path = Path(m.weights).expanduser() if m.weights is not None else Path(data_root) / UNET_FILE
    if m.format == "diffusers":
        return _load_diffusers(path)
    state = _read(path)
    net = instantiate(m.net)
    shape = (int(m.net.in_channel), int(m.image_size), int(m.image_size))
    if m.format == "project":
        if "state_dict" not in state:
            raise CheckpointError(f"{path}: no 'state_dict'; expected a Lightning checkpoint of this project")
        state = {k[len(EMA_PREFIX):]: v for k, v in state["state_dict"].items() if k.startswith(EMA_PREFIX)}
    elif "state_dict" in state and "pytorch-lightning_version" in state:
        raise CheckpointError(f"{path}: a Lightning checkpoint; expected a plain state dict for "
                              "model.format=course (use model.format=project)")
    load_strict(net, state, path, _expected(m, hint=m.format == "course"))
    return FaceModel(net.eval(), shape, path)


def _expected(m: DictConfig, hint: bool) -> str:
    args = OmegaConf.to_container(m.net)
    name = args.pop("_target_").rsplit(".", 1)[-1]
    what = f"the state dict of {name}({', '.join(f'{k}={v}' for k, v in args.items())}) from model.net"
    return what + ("; model=face_unet fits the course's UNet.pt, model=face_unet_small the embedded one"
                   if hint else "")


def _read(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; expected the face UNet's weights")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpicklable, truncated, not a torch file: one user error
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(f"{path}: cannot be read with weights_only=True ({type(err).__name__}: "
                              f"{first[:120]}); expected a state dict saved with torch.save") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}; expected a state dict")
    return state


def _load_diffusers(folder: Path) -> FaceModel:
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{folder}: no config.json; expected a diffusers UNet2DModel folder "
                              "(save_pretrained: config.json + diffusion_pytorch_model.safetensors)")
    from diffusers import UNet2DModel

    try:
        unet = UNet2DModel.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, EnvironmentError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{folder}: {first[:200]}; expected a diffusers UNet2DModel folder") from err
    c = unet.config
    h, w = (c.sample_size, c.sample_size) if isinstance(c.sample_size, int) else c.sample_size
    return FaceModel(DiffusersEps(unet).eval(), (int(c.in_channels), int(h), int(w)), folder)
