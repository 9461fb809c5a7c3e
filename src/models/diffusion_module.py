"""LightningModule for conditional DDPM training with classifier-free guidance dropout and EMA."""
from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.diffusion.schedules import NoiseSchedule
from src.models.ema import EMA


class DiffusionModule(pl.LightningModule):
    """Owns the network, its EMA, the eps-prediction loss (Ho et al. 2020, eq. 14) and the optimizer.

    Batches are (x_0 [B, C, H, W] in [-1, 1], digit [B], domain [B]) for a conditional net called
    net(x_t, t, cond), or (x_0,) for an unconditional one called net(x_t, t). Sampling lives in
    src.diffusion.
    """

    def __init__(self, net: nn.Module, schedule: NoiseSchedule, *, lr: float, weight_decay: float = 0.0,
                 warmup_steps: int = 0, lr_final: float = 1.0, cond_drop_prob: float = 0.1,
                 ema_decay: float = 0.999, min_snr_gamma: float | None = None) -> None:
        super().__init__()
        self.net, self.schedule = net, schedule
        self.ema = EMA(net, ema_decay)
        self.lr, self.weight_decay, self.warmup_steps, self.lr_final = lr, weight_decay, warmup_steps, lr_final
        self.cond_drop_prob = cond_drop_prob
        # Min-SNR-gamma weighting (Hang et al. 2023, eq. 9, eps-prediction): w_t = min(SNR_t, gamma) / SNR_t
        # spends the gradient on the noisy steps that decide the digit's shape; None weighs all steps 1.
        self.register_buffer("loss_weight", min_snr_weight(schedule.alphas_cumprod, min_snr_gamma).float(),
                             persistent=False)

    def _loss(self, net: nn.Module, batch: tuple[Tensor, Tensor, Tensor], generator=None) -> Tensor:
        x_0, labels = batch[0], batch[1:]
        b = x_0.shape[0]
        t = torch.randint(0, self.schedule.num_steps, (b,), device=x_0.device, generator=generator)
        eps = torch.randn(x_0.shape, device=x_0.device, generator=generator)
        x_t = self.schedule.q_sample(x_0, t, eps)  # eq. 4
        if labels:
            cond = torch.stack(list(labels), dim=1)  # [B, 2] = (digit, domain)
            drop = torch.rand(b, device=x_0.device, generator=generator) < self.cond_drop_prob
            cond = torch.where(drop[:, None], net.null_cond.to(cond.device), cond)
            eps_pred = net(x_t, t, cond)
        else:
            eps_pred = net(x_t, t)
        per_image = F.mse_loss(eps_pred, eps, reduction="none").mean(dim=(1, 2, 3))  # [B]
        return (self.loss_weight[t] * per_image).mean()

    def training_step(self, batch, batch_idx: int) -> Tensor:
        loss = self._loss(self.net, batch)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def optimizer_step(self, *args, **kwargs) -> None:
        # EMA right after the weights change, before any callback (a checkpoint) sees this step
        super().optimizer_step(*args, **kwargs)
        self.ema.update(self.net)

    def validation_step(self, batch, batch_idx: int) -> None:
        # Fixed t and noise per batch so that val/loss compares checkpoints, not noise draws.
        g = torch.Generator(device=batch[0].device).manual_seed(batch_idx)
        self.log("val/loss", self._loss(self.ema.net, batch, generator=g), prog_bar=True, sync_dist=True)

    # Exact resume (SLURM requeue): the global RNG draws t, noise and the condition dropout, so its state
    # travels with the checkpoint and is put back just before the first resumed step.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["rng_state"] = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng_state"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._rng_to_restore = checkpoint.get("rng_state")

    def on_train_start(self) -> None:
        state = getattr(self, "_rng_to_restore", None)
        if state is not None:
            torch.set_rng_state(state["cpu"])
            if "cuda" in state and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda"])
            self._rng_to_restore = None

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        total = max(int(self.trainer.max_steps), 1)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: warmup_cosine(step, warmup=self.warmup_steps, total=total, final=self.lr_final))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def min_snr_weight(alphas_cumprod: Tensor, gamma: float | None) -> Tensor:
    """Min-SNR-gamma loss weights per timestep for epsilon-prediction, min(SNR_t, gamma) / SNR_t; 1 for None."""
    snr = alphas_cumprod / (1 - alphas_cumprod)
    return snr.clamp(max=gamma) / snr if gamma else torch.ones_like(snr)


def warmup_cosine(step: int, *, warmup: int, total: int, final: float) -> float:
    """The learning rate's factor at `step`: linear warmup over `warmup` steps, then a cosine from 1 down to
    `final` at `total` steps (final=1: constant)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))

