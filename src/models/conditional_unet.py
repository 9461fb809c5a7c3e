"""A diffusers UNet2DModel conditioned on a digit and a domain, each with a learned null token."""
from __future__ import annotations

from typing import Sequence

import torch
from diffusers import UNet2DModel
from torch import Tensor, nn


class ConditionalUNet(nn.Module):
    """eps_theta(x_t, t, cond) with cond [B, 2] = (digit, domain); digit=num_classes and
    domain=num_domains are the null condition of classifier-free guidance.

    The two embeddings are summed into the time embedding (UNet2DModel's class_embed_type="identity").
    """

    def __init__(
        self,
        image_size: int,
        in_channels: int,
        num_classes: int,
        num_domains: int,
        block_out_channels: Sequence[int] = (32, 64, 64),
        layers_per_block: int = 1,
        attention_levels: Sequence[bool] = (False, False, True),
        norm_num_groups: int = 16,
    ) -> None:
        super().__init__()
        if len(attention_levels) != len(block_out_channels):
            raise ValueError(f"attention_levels={list(attention_levels)}: expected one flag per block "
                             f"of block_out_channels={list(block_out_channels)}")
        self.num_classes, self.num_domains = num_classes, num_domains
        time_embed_dim = block_out_channels[0] * 4
        self.unet = UNet2DModel(
            sample_size=image_size,
            in_channels=in_channels,
            out_channels=in_channels,
            block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block,
            down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attention_levels),
            up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention_levels)),
            norm_num_groups=norm_num_groups,
            attention_head_dim=8,
            class_embed_type="identity",
        )
        self.digit_embed = nn.Embedding(num_classes + 1, time_embed_dim)
        self.domain_embed = nn.Embedding(num_domains + 1, time_embed_dim)

    @property
    def null_cond(self) -> Tensor:
        """The null condition [2] = (num_classes, num_domains)."""
        return torch.tensor([self.num_classes, self.num_domains], device=self.digit_embed.weight.device)

    def forward(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """x_t [B, C, H, W], t [B] int64, cond [B, 2] int64 -> eps [B, C, H, W]."""
        class_emb = self.digit_embed(cond[:, 0]) + self.domain_embed(cond[:, 1])  # [B, D]
        return self.unet(x_t, t, class_labels=class_emb).sample
