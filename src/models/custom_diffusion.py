"""Custom Diffusion (Kumari et al. 2023): new tokens plus the key and value projections of every
cross-attention layer, trained jointly on several concepts; saved in diffusers' attention-processor format
(`unet.save_attn_procs`, reloaded by `unet.load_attn_procs`)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from src.errors import ConfigError
from src.images import fresh_dir, replace_dir
from src.models.textual_inversion import TextualInversionModule

WEIGHT_NAME = "pytorch_custom_diffusion_weights.bin"


def install_custom_diffusion(unet) -> list[torch.nn.Parameter]:
    """diffusers' CustomDiffusionAttnProcessor on every attention layer: cross-attention (attn2) gets trainable
    copies of its to_k / to_v (float32 even when the UNet is held in half precision), self-attention trains
    nothing; returns the trainable parameters."""
    from diffusers.models.attention_processor import CustomDiffusionAttnProcessor

    procs, params = {}, []
    for name in unet.attn_processors:
        attn = unet.get_submodule(name.removesuffix(".processor"))
        if name.endswith("attn1.processor"):
            procs[name] = CustomDiffusionAttnProcessor(train_kv=False, train_q_out=False)
            continue
        proc = CustomDiffusionAttnProcessor(train_kv=True, train_q_out=False, hidden_size=attn.to_k.out_features,
                                            cross_attention_dim=attn.to_k.in_features)
        with torch.no_grad():
            proc.to_k_custom_diffusion.weight.copy_(attn.to_k.weight)
            proc.to_v_custom_diffusion.weight.copy_(attn.to_v.weight)
        proc.to(attn.to_k.weight.device)
        procs[name] = proc
        params += [proc.to_k_custom_diffusion.weight, proc.to_v_custom_diffusion.weight]
    unet.set_attn_processor(procs)
    return params


class CustomDiffusionModule(TextualInversionModule):
    """Textual inversion of several tokens at once plus the cross-attention K/V projections (lr `kv_lr`), all
    concepts in one module (trains_jointly); the K/V weights are <folder>/custom_diffusion/<WEIGHT_NAME>."""

    trains_jointly = True

    def __init__(self, pipe, tokens: list[str], initializers: list[str], *, num_vectors: int = 1,
                 lr: float = 5e-3, kv_lr: float = 1e-5, gradient_checkpointing: bool = False,
                 frozen_dtype: Optional[torch.dtype] = None):
        super().__init__(pipe, tokens, initializers, num_vectors=num_vectors, lr=lr,
                         gradient_checkpointing=gradient_checkpointing, frozen_dtype=frozen_dtype)
        self.kv_params = install_custom_diffusion(self.unet)
        self.kv_lr = kv_lr

    def trained_key(self, key: str) -> bool:
        return key.endswith("new_embeds") or "custom_diffusion" in key

    def configure_optimizers(self):
        return torch.optim.AdamW([{"params": [self.embedding.new_embeds], "lr": self.lr},
                                  {"params": self.kv_params, "lr": self.kv_lr}], weight_decay=self.weight_decay)

    def save_weights(self, folder: Path, concept_ids: list[str]) -> None:
        super().save_weights(folder, concept_ids)
        save_custom_diffusion(self.unet, Path(folder) / "custom_diffusion")

    @classmethod
    def saved_in(cls, folder: Path, concept_ids: list[str]) -> bool:
        return super().saved_in(folder, concept_ids) and (Path(folder) / "custom_diffusion" / WEIGHT_NAME).is_file()

    @classmethod
    def load_weights(cls, pipe, folder: Path, concept_ids: list[str], key: str = "task.weights") -> None:
        super().load_weights(pipe, folder, concept_ids, key)
        if not (Path(folder) / "custom_diffusion" / WEIGHT_NAME).is_file():
            raise ConfigError(f"{key}={str(folder)!r}: no custom_diffusion/{WEIGHT_NAME} in it (ti=custom_diffusion)")
        load_custom_diffusion(pipe, Path(folder) / "custom_diffusion")


def save_custom_diffusion(unet, folder: str | Path) -> Path:
    """The attention processors as <folder>/pytorch_custom_diffusion_weights.bin, written beside and renamed."""
    folder = Path(folder)
    tmp = fresh_dir(folder.with_name(f".{folder.name}.tmp"))
    unet.save_attn_procs(tmp, weight_name=WEIGHT_NAME, safe_serialization=False)
    replace_dir(tmp, folder)
    return folder / WEIGHT_NAME


def load_custom_diffusion(pipe, folder: str | Path) -> None:
    """Load processors saved by save_custom_diffusion (or diffusers' train_custom_diffusion.py) into pipe.unet."""
    # diffusers 0.42's load_attn_procs installs the processors only when given the pipeline
    pipe.unet.load_attn_procs(str(folder), weight_name=WEIGHT_NAME, local_files_only=True, _pipeline=pipe)
