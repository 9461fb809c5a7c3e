"""What every Lightning fit of the project shares: a progress that counts the user's max_steps (a bar in a
terminal, a log line every ~30 s in a log), and Lightning's console output tamed to what a user can act on."""
from __future__ import annotations

import logging
import warnings

import lightning.pytorch as pl

from src.progress import Progress


class StepProgress(pl.Callback):
    """Training progress in optimizer steps of trainer.max_steps, with the latest training loss."""

    def __init__(self, stage: str = "training") -> None:
        self.stage = stage
        self.progress: Progress | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.progress = Progress(self.stage, trainer.max_steps, initial=trainer.global_step,
                                 enabled=trainer.is_global_zero)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        stats = {"loss": float(loss)} if loss is not None else {}
        self.progress.update(trainer.global_step - self.progress.n, **stats)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.progress.close()


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def tame_lightning_logging() -> None:
    """One copy of each Lightning message (through Hydra's handlers, into run.log), without its advertising
    tips and without warnings a user cannot act on: the EMA copy is in eval mode on purpose, and Lightning's
    hint to launch with srun on a machine where SLURM is installed is wrong for a run started without it."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropTips())
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r"(?s).*The `srun` command is available on your system but is not used.*")
