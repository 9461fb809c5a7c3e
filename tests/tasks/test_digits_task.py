import json
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import open_dict
import torch
from PIL import Image

from src.errors import ConfigError
from src.run import run
from src.runtime import use_bf16
from omegaconf import OmegaConf

pytestmark = pytest.mark.slow


def test_tiny_digits_run_writes_course_files_figures_and_metrics(tiny_digits_cfg, tmp_path):
    metrics = run(tiny_digits_cfg)
    for domain in ("mnistm", "svhn"):
        files = sorted(p.name for p in (tmp_path / "samples" / domain).iterdir())
        assert files == [f"{d}_{i:03d}.png" for d in range(10) for i in range(2)]
        img = Image.open(tmp_path / "samples" / domain / "7_001.png")
        assert img.size == (28, 28) and img.mode == "RGB"
        assert (tmp_path / "figures" / f"grid_{domain}.png").stat().st_size > 1000
    assert (tmp_path / "figures" / "process.png").is_file()
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == pytest.approx(metrics)
    for key in ("mnistm/acc", "svhn/acc", "mean_acc", "mnistm/fid", "train/loss", "val/loss"):
        assert key in saved
    assert saved["mean_acc"] == pytest.approx((saved["mnistm/acc"] + saved["svhn/acc"]) / 2)
    assert saved["mnistm/n"] == 20 and saved["train/steps"] == 4
    assert not (tmp_path / ".samples.tmp").exists()


def test_same_seed_same_samples_and_sampling_from_a_checkpoint(tiny_digits_cfg, tmp_path):
    with open_dict(tiny_digits_cfg):
        tiny_digits_cfg.model.ema_decay = 0.999  # a checkpoint whose EMA differs from its trained weights
    run(tiny_digits_cfg)
    first = (tmp_path / "samples" / "svhn" / "3_000.png").read_bytes()
    again = tmp_path / "again"
    with open_dict(tiny_digits_cfg):
        tiny_digits_cfg.task.train = False
        tiny_digits_cfg.ckpt_path = str(tmp_path / "checkpoints" / "last.ckpt")
        tiny_digits_cfg.paths.output_dir = str(again)
    run(tiny_digits_cfg)
    assert (again / "samples" / "svhn" / "3_000.png").read_bytes() == first

    # model.ema_decay=0 samples the checkpoint's trained weights, not their EMA: other images
    with open_dict(tiny_digits_cfg):
        tiny_digits_cfg.model.ema_decay = 0.0
        tiny_digits_cfg.paths.output_dir = str(tmp_path / "trained_weights")
    run(tiny_digits_cfg)
    assert (tmp_path / "trained_weights" / "samples" / "svhn" / "3_000.png").read_bytes() != first
    with open_dict(tiny_digits_cfg):
        tiny_digits_cfg.model.ema_decay = 0.999

    # the same checkpoint in fp32 and in bf16: every course file; the default (auto) is one of the two here
    drawn = {}
    for precision in ("fp32", "bf16"):
        with open_dict(tiny_digits_cfg):
            tiny_digits_cfg.task.sample_precision = precision
            tiny_digits_cfg.paths.output_dir = str(tmp_path / precision)
        run(tiny_digits_cfg)
        assert len(list((tmp_path / precision / "samples" / "mnistm").glob("*.png"))) == 20
        drawn[precision] = (tmp_path / precision / "samples" / "svhn" / "3_000.png").read_bytes()
    assert drawn["bf16" if use_bf16("auto", torch.device("cpu")) else "fp32"] == first

    # the same checkpoint sampled with DPM-Solver++: every course file, other images, its name on the figures
    with open_dict(tiny_digits_cfg):
        tiny_digits_cfg.sampler = {"_target_": "src.diffusion.samplers.dpmpp_sample", "_partial_": True,
                                   "num_steps": 3, "order": 2}
        tiny_digits_cfg.paths.output_dir = str(tmp_path / "dpmpp")
    metrics = run(tiny_digits_cfg)
    assert len(list((tmp_path / "dpmpp" / "samples" / "svhn").glob("*.png"))) == 20
    assert (tmp_path / "dpmpp" / "samples" / "svhn" / "3_000.png").read_bytes() != first
    assert 0.0 <= metrics["mean_acc"] <= 1.0


def test_checkpoint_of_another_model_is_a_one_line_error(tiny_digits_cfg, tmp_path):
    import torch

    from src.errors import CheckpointError

    bad = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"net.unet.conv_in.weight": torch.zeros(1)}}, bad)
    with open_dict(tiny_digits_cfg):
        tiny_digits_cfg.task.train = False
        tiny_digits_cfg.ckpt_path = str(bad)
    with pytest.raises(CheckpointError, match="other.ckpt: not a task=digits checkpoint") as err:
        run(tiny_digits_cfg)
    assert "\n" not in str(err.value)


def test_missing_checkpoint_is_a_config_error(tiny_digits_cfg, tmp_path):
    with open_dict(tiny_digits_cfg):
        tiny_digits_cfg.task.train = False
        tiny_digits_cfg.ckpt_path = str(tmp_path / "nope.ckpt")
    with pytest.raises(ConfigError, match="nope.ckpt"):
        run(tiny_digits_cfg)


def test_multirun_of_two_jobs_writes_metrics_per_job(tmp_path, cache_dir, tiny_overrides):
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "src.run", "-m", "task=digits", "guidance.scale=0,3", *tiny_overrides,
           f"paths.cache_dir={cache_dir}", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [j.name for j in jobs] == ["0", "1"]
    scales = [OmegaConf.load(j / ".hydra" / "config.yaml").guidance.scale for j in jobs]
    assert scales == [0.0, 3.0]
    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        assert 0.0 <= metrics["mean_acc"] <= 1.0 and metrics["mnistm/n"] == 20


def test_bad_value_exits_nonzero_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "src.run", "task=digits", "sampler.eta=2",
                           f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == "error: sampler.eta=2.0: expected a value in [0, 1]"
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_training_resumes_from_the_run_directory(tiny_digits_cfg, tmp_path):
    with open_dict(tiny_digits_cfg):
        tiny_digits_cfg.trainer.max_steps = 2
    run(tiny_digits_cfg)
    with open_dict(tiny_digits_cfg):
        tiny_digits_cfg.trainer.max_steps = 4
    metrics = run(tiny_digits_cfg)  # picks up <run>/checkpoints/last.ckpt at step 2
    assert metrics["train/steps"] == 4
    state = __import__("torch").load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 4 and int(state["state_dict"]["ema.num_updates"]) == 4


def test_wandb_offline_run_is_written(tmp_path, cache_dir, tiny_overrides):
    from src.config import compose_config

    overrides = [o for o in tiny_overrides if not o.startswith("logger=")]
    cfg = compose_config(["task=digits", *overrides, "logger=wandb", "logger.mode=offline", "logger.tags=[guidance]",
                          f"paths.cache_dir={cache_dir}", f"paths.output_dir={tmp_path}"])
    run(cfg)
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


def test_course_layout_data_root(tmp_path, cache_dir, tiny_overrides):
    """data.root pointing at a folder in the course layout (here: a copy of a tiny embedded set)."""
    import shutil

    from src.config import compose_config
    from src.data.embedded_digits import generate_digits

    course = generate_digits(tmp_path / "hw2_data" / "digits", seed=1, n_train=60, n_val=40)
    shutil.rmtree(course / "svhn")
    cfg = compose_config(["task=digits", *tiny_overrides, f"data.root={course}", "data.domains=[mnistm]",
                          f"paths.cache_dir={cache_dir}", f"paths.output_dir={tmp_path / 'run'}"])
    metrics = run(cfg)
    assert metrics["mnistm/n"] == 20 and "svhn/acc" not in metrics
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == ["mnistm"]


def test_training_is_reproducible_for_a_seed(tmp_path, cache_dir, tiny_overrides):
    from src.config import compose_config

    outs = []
    for name in ("a", "b"):
        cfg = compose_config(["task=digits", *tiny_overrides, f"paths.cache_dir={cache_dir}",
                              f"paths.output_dir={tmp_path / name}"])
        outs.append(run(cfg))
    assert outs[0]["train/loss"] == outs[1]["train/loss"]
    for domain in ("mnistm", "svhn"):
        a = sorted((tmp_path / "a" / "samples" / domain).iterdir())
        b = sorted((tmp_path / "b" / "samples" / domain).iterdir())
        assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_model_option_builds_the_module_around_the_schedule():
    from hydra.utils import instantiate

    from src.config import compose_config

    cfg = compose_config(["task=digits", "scheduler.steps=50", "paths.output_dir=/tmp/x"])
    module = instantiate(cfg.model)(schedule=instantiate(cfg.scheduler))
    assert type(module).__name__ == "DiffusionModule" and type(module.net).__name__ == "ConditionalUNet"
    assert module.schedule.num_steps == 50 and (module.lr, module.cond_drop_prob) == (2e-3, 0.1)
