"""A run restarted from a mid-training checkpoint (what a SLURM requeue does) ends with the same weights,
bit for bit, as a run that was never interrupted."""
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import open_dict

from src.data.digits import digit_loaders
from src.data.embedded_digits import resolve_data_root
from src.runtime import seed_everything

pytestmark = pytest.mark.slow


class Stop(Exception):
    """Raised by a callback to cut a run short, as a time limit would."""


def _fit(cfg, out, ckpt_path=None, callbacks=None):
    """Train as task=digits does; `callbacks` default to a checkpoint at every step. A run cut short by Stop
    returns what it trained."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    seed_everything(cfg.seed)
    module = instantiate(cfg.model)(schedule=instantiate(cfg.scheduler))
    if callbacks is None:
        callbacks = [ModelCheckpoint(dirpath=out, filename="{step}", every_n_train_steps=1, save_top_k=-1)]
    trainer = instantiate(cfg.trainer, logger=False, callbacks=callbacks, default_root_dir=str(out),
                          enable_model_summary=False)
    d = cfg.data
    train, val = digit_loaders(resolve_data_root(d.root, cfg.paths.cache_dir, **d.embedded), domains=list(d.domains),
                               batch_size=d.batch_size, num_workers=d.num_workers, seed=cfg.seed)
    try:
        trainer.fit(module, train, val, ckpt_path=ckpt_path)
    except Stop:
        pass
    return module, len(train)


@pytest.mark.parametrize("resume_step", [3, 7])  # mid-epoch, and the last batch of the first epoch
def test_resumed_training_equals_uninterrupted(tiny_digits_cfg, tmp_path, resume_step):
    with open_dict(tiny_digits_cfg):
        tiny_digits_cfg.trainer.max_steps = 10
        tiny_digits_cfg.trainer.val_check_interval = 4
    whole, batches_per_epoch = _fit(tiny_digits_cfg, tmp_path / "whole")
    assert batches_per_epoch == 7  # 2 x 60 images in batches of 16: the run crosses an epoch boundary
    resumed, _ = _fit(tiny_digits_cfg, tmp_path / "resumed",
                      ckpt_path=tmp_path / "whole" / f"step={resume_step}.ckpt")
    assert resumed.global_step == whole.global_step == 10
    a, b = whole.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:3]


def test_resume_from_a_validation_checkpoint_at_an_epoch_boundary(tiny_digits_cfg, tmp_path):
    """What a requeue resumes: task=digits' last.ckpt, written when validation runs, here on the last batch of the
    first epoch (step 7 of 7); the run stopped at step 9 and resumed must end as the uninterrupted one."""
    from lightning.pytorch.callbacks import Callback, ModelCheckpoint

    class StopAt(Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step >= 9:
                raise Stop

    def fit(out, extra=(), ckpt_path=None):
        last = ModelCheckpoint(dirpath=out, filename="best-{step}", monitor="val/loss", save_last=True, save_top_k=1)
        return _fit(tiny_digits_cfg, out, ckpt_path, callbacks=[last, *extra])[0]

    with open_dict(tiny_digits_cfg):
        tiny_digits_cfg.trainer.max_steps = 12
        tiny_digits_cfg.trainer.val_check_interval = 7
    whole = fit(tmp_path / "whole")
    fit(tmp_path / "part", extra=[StopAt()])
    assert torch.load(tmp_path / "part" / "last.ckpt", weights_only=False)["global_step"] == 7
    resumed = fit(tmp_path / "resumed", ckpt_path=tmp_path / "part" / "last.ckpt")
    a, b = whole.state_dict(), resumed.state_dict()
    assert resumed.global_step == whole.global_step == 12
    assert all(torch.equal(a[k], b[k]) for k in a)
