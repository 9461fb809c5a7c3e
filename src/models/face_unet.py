"""The course's face UNet: an unconditional DDPM UNet in the style of rosinality's
denoising-diffusion-pytorch (Ho et al. 2020, appendix B), state-dict compatible with `UNet.pt`.

Layers are registered as flat attributes `down1..downN`, `mid1, mid2`, `up1..upM` in forward order,
which is how the course's checkpoint names them (shared/fixtures/hw2_face_unet/keys.tsv). The course
model is `FaceUNet()` (channel 128, multipliers 1,1,2,2,4,4, two res blocks per level, attention at
stride 16: 113,673,219 parameters for 256x256 images); the embedded default is a small instance.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.errors import CheckpointError


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of integer timesteps [B] -> [B, dim] (sin half, then cos half)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("inv_freq", torch.exp(torch.arange(0, dim, 2, dtype=torch.float32)
                                                   * (-math.log(10000) / dim)))

    def forward(self, t: Tensor) -> Tensor:
        angles = torch.outer(t.reshape(-1).float(), self.inv_freq)  # [B, dim / 2]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, plus the time embedding as a per-channel bias, GroupNorm-SiLU-conv; skip."""

    def __init__(self, in_channel: int, out_channel: int, time_dim: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channel)
        self.conv1 = nn.Conv2d(in_channel, out_channel, 3, padding=1)
        self.time = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, out_channel))
        self.norm2 = nn.GroupNorm(groups, out_channel)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channel, out_channel, 3, padding=1)
        self.skip = nn.Conv2d(in_channel, out_channel, 1) if in_channel != out_channel else None

    def forward(self, x: Tensor, time: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.norm2(h + self.time(time)[:, :, None, None])
        h = self.conv2(self.dropout(F.silu(h)))
        return h + (self.skip(x) if self.skip is not None else x)


class SelfAttention(nn.Module):
    """Multi-head self-attention over all H*W positions, scaled by 1/sqrt(C) as the course model is."""

    def __init__(self, channel: int, n_head: int, groups: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.norm = nn.GroupNorm(groups, channel)
        self.qkv = nn.Conv2d(channel, channel * 3, 1)
        self.out = nn.Conv2d(channel, channel, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).view(b, self.n_head, 3 * c // self.n_head, h * w)
        q, k, v = qkv.chunk(3, dim=2)  # [B, heads, C / heads, HW] each
        attn = torch.softmax(torch.einsum("bncq,bnck->bnqk", q, k) / math.sqrt(c), dim=-1)  # [B, n, HW, HW]
        out = torch.einsum("bnqk,bnck->bncq", attn, v).reshape(b, c, h, w)
        return x + self.out(out)


class ResAttnBlock(nn.Module):
    """A ResBlock, optionally followed by self-attention (the checkpoint's `resblocks`/`attention`)."""

    def __init__(self, in_channel: int, out_channel: int, time_dim: int, dropout: float, groups: int,
                 use_attention: bool = False, n_head: int = 1) -> None:
        super().__init__()
        self.resblocks = ResBlock(in_channel, out_channel, time_dim, dropout, groups)
        self.attention = SelfAttention(out_channel, n_head, groups) if use_attention else None

    def forward(self, x: Tensor, time: Tensor) -> Tensor:
        x = self.resblocks(x, time)
        return self.attention(x) if self.attention is not None else x


class FaceUNet(nn.Module):
    """eps_theta(x_t, t): x_t [B, C, H, W], integer t [B] -> eps [B, C, H, W].

    Level i works at stride 2**i with `channel * channel_multiplier[i]` channels and `n_res_blocks`
    res blocks down (`n_res_blocks + 1` up, each fed a skip); attention where 2**i is in `attn_strides`.
    H and W must be divisible by 2**(levels - 1).
    """

    def __init__(self, in_channel: int = 3, channel: int = 128,
                 channel_multiplier: Sequence[int] = (1, 1, 2, 2, 4, 4), n_res_blocks: int = 2,
                 attn_strides: Sequence[int] = (16,), attn_heads: int = 1, dropout: float = 0.0,
                 norm_groups: int = 32) -> None:
        super().__init__()
        time_dim, levels = channel * 4, len(channel_multiplier)
        self.time = nn.Sequential(TimeEmbedding(channel), nn.Linear(channel, time_dim), nn.SiLU(),
                                  nn.Linear(time_dim, time_dim))

        def block(c_in: int, c_out: int, level: int) -> ResAttnBlock:
            return ResAttnBlock(c_in, c_out, time_dim, dropout, norm_groups, 2**level in attn_strides, attn_heads)

        down: list[nn.Module] = [nn.Conv2d(in_channel, channel, 3, padding=1)]
        skips, c = [channel], channel  # channels of every down output, consumed in reverse by the up path
        for i, mult in enumerate(channel_multiplier):
            for _ in range(n_res_blocks):
                down.append(block(c, channel * mult, i))
                c = channel * mult
                skips.append(c)
            if i != levels - 1:
                down.append(nn.Sequential(nn.Conv2d(c, c, 3, stride=2, padding=1)))
                skips.append(c)
        mid = [ResAttnBlock(c, c, time_dim, dropout, norm_groups, True, attn_heads),
               ResAttnBlock(c, c, time_dim, dropout, norm_groups, False, attn_heads)]
        up: list[nn.Module] = []
        for i in reversed(range(levels)):
            for _ in range(n_res_blocks + 1):
                up.append(block(c + skips.pop(), channel * channel_multiplier[i], i))
                c = channel * channel_multiplier[i]
            if i != 0:
                up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)))
        for prefix, layers in (("down", down), ("mid", mid), ("up", up)):
            for k, layer in enumerate(layers, start=1):
                self.add_module(f"{prefix}{k}", layer)
        self.n_down, self.n_mid, self.n_up = len(down), len(mid), len(up)
        self.out = nn.Sequential(nn.GroupNorm(norm_groups, c), nn.SiLU(), nn.Conv2d(c, in_channel, 3, padding=1))

    def _layers(self, prefix: str, n: int) -> list[nn.Module]:
        return [getattr(self, f"{prefix}{k}") for k in range(1, n + 1)]

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        time = self.time(t)  # [B, 4 * channel]
        feats, h = [], x
        for layer in self._layers("down", self.n_down):
            h = layer(h, time) if isinstance(layer, ResAttnBlock) else layer(h)
            feats.append(h)
        for layer in self._layers("mid", self.n_mid):
            h = layer(h, time)
        for layer in self._layers("up", self.n_up):
            h = layer(torch.cat([h, feats.pop()], dim=1), time) if isinstance(layer, ResAttnBlock) else layer(h)
        return self.out(h)


def _few(keys: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(keys[:n])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > n else shown


def load_strict(net: nn.Module, state: dict[str, Tensor], path: Path, expected: str) -> nn.Module:
    """load_state_dict(strict=True), with missing, unexpected, non-tensor and mis-shaped keys reported in one
    line."""
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    not_tensors = [f"{k} ({type(state[k]).__name__})" for k in own if k in state and not isinstance(state[k], Tensor)]
    shapes = [f"{k} {list(state[k].shape)} vs {list(own[k].shape)}" for k in own
              if k in state and isinstance(state[k], Tensor) and state[k].shape != own[k].shape]
    problems = [f"missing keys {_few(missing)}" if missing else "",
                f"unexpected keys {_few(unexpected)}" if unexpected else "",
                f"not tensors {_few(not_tensors)}" if not_tensors else "",
                f"shape mismatches {_few(shapes, 2)}" if shapes else ""]
    problems = [p for p in problems if p]
    if problems:
        raise CheckpointError(f"{path}: {'; '.join(problems)}; expected {expected}")
    net.load_state_dict(state, strict=True)
    return net
