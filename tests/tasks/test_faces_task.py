import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from src.config import compose_config
from src.errors import CheckpointError, ConfigError, DataError
from src.run import run
from helpers.overrides import TINY_FACES, TINY_FACES_SAMPLING

pytestmark = pytest.mark.slow

# A two-level 16x16 FaceUNet trained 4 steps, 4 noise files, DDIM of 4 steps, 3 interpolation points.
SAMPLING = ["task=faces", *TINY_FACES_SAMPLING, "logger=none"]
TINY = ["task=faces", *TINY_FACES, "logger=none"]
NAMES = ["00", "01", "02", "03"]


def tiny_cfg(cache: Path, out: Path, *extra: str):
    return compose_config([*TINY, f"paths.cache_dir={cache}", f"paths.output_dir={out}", *extra])


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """One tiny run on a fresh cache: builds the embedded face folder, then samples and scores."""
    cache, out = tmp_path_factory.mktemp("faces-cache"), tmp_path_factory.mktemp("faces-run")
    metrics = run(tiny_cfg(cache, out))
    (face,) = cache.glob("faces-v*/face")
    return cache, out, face, metrics


def course_copy(face: Path, dest: Path) -> Path:
    """A course-layout folder (noise/, GT/, UNet.pt) copied from the embedded one, to break on purpose."""
    return Path(shutil.copytree(face, dest / "face"))


def test_tiny_run_writes_course_files_figures_and_metrics(first_run):
    cache, out, face, metrics = first_run
    assert sorted(p.name for p in out.glob("*.png")) == [f"{n}.png" for n in NAMES]
    img = Image.open(out / "02.png")
    assert img.size == (16, 16) and img.mode == "RGB"
    for fig in ("eta_grid.png", "interpolation.png"):
        assert (out / "figures" / fig).stat().st_size > 1000
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == pytest.approx(metrics)
    assert saved["sampler/eta"] == 0.0 and saved["sampler/num_steps"] == 4
    assert saved["mse"] == pytest.approx(sum(saved[f"mse/{n}"] for n in NAMES) / 4)
    assert saved["mse"] < 0.5  # GT is the reference DDIM at eta 0, which our loop reproduces
    # the embedded folder in the course layout, with the project's own checkpoint beside it
    assert sorted(p.name for p in (face / "noise").iterdir()) == [f"{n}.pt" for n in NAMES]
    assert sorted(p.name for p in (face / "GT").iterdir()) == [f"{n}.png" for n in NAMES]
    z = torch.load(face / "noise" / "00.pt", weights_only=True)
    assert z.shape == (1, 3, 16, 16) and z.dtype == torch.float32
    assert (face.parent / "model.ckpt").is_file() and (face.parent / "info.json").is_file()
    assert not list(cache.glob(".faces-*"))


def test_gt_pixels_equal_the_outputs_at_eta_0_and_mse_grows_with_eta(first_run, tmp_path):
    cache, out, face, metrics = first_run
    for n in NAMES:
        assert (Image.open(out / f"{n}.png").tobytes() == Image.open(face / "GT" / f"{n}.png").tobytes())
    mses = [run(tiny_cfg(cache, tmp_path / str(eta), f"sampler.eta={eta}", "task.figures=false"))["mse"]
            for eta in (0.5, 1.0)]
    assert metrics["mse"] < mses[0] < mses[1]
    assert len(list(cache.glob("faces-v*"))) == 1  # built once, reused


def test_the_projects_checkpoint_gives_the_images_of_its_unet_pt(first_run, tmp_path):
    cache, out, face, _ = first_run
    # a Lightning .ckpt is told apart from a state dict by content; its architecture from the face folder
    metrics = run(tiny_cfg(cache, tmp_path, f"model.weights={face.parent / 'model.ckpt'}", "task.figures=false"))
    assert metrics["mse"] < 0.5
    assert (tmp_path / "03.png").read_bytes() == (out / "03.png").read_bytes()


def test_a_course_folder_given_as_data_root(first_run, tmp_path):
    cache, out, face, _ = first_run
    root = course_copy(face, tmp_path)
    shutil.rmtree(root / "GT")
    (root / "noise" / "00.pt").rename(root / "noise" / "07.pt")
    run(tiny_cfg(cache, tmp_path / "run", f"data.root={root}", "task.score=false", "task.figures=false"))
    assert sorted(p.name for p in (tmp_path / "run").glob("*.png")) == ["01.png", "02.png", "03.png", "07.png"]
    moved, first = (np.asarray(Image.open(p), dtype=float) for p in (tmp_path / "run" / "07.png", out / "00.png"))
    assert np.abs(moved - first).max() <= 1  # the same noise, now fourth in the batch


def test_wrong_noise_shape_is_one_line_naming_the_file(first_run, tmp_path):
    root = course_copy(first_run[2], tmp_path)
    torch.save(torch.randn(1, 3, 8, 8), root / "noise" / "02.pt")
    with pytest.raises(DataError) as err:
        run(tiny_cfg(first_run[0], tmp_path / "run", f"data.root={root}"))
    msg = str(err.value)
    assert msg == (f"{root / 'noise' / '02.pt'}: shape [1, 3, 8, 8] torch.float32; "
                   "expected a float tensor of shape [1, 3, 16, 16]")


def test_missing_gt_is_one_line_naming_the_file(first_run, tmp_path):
    root = course_copy(first_run[2], tmp_path)
    (root / "GT" / "01.png").unlink()
    with pytest.raises(DataError, match=r"GT/01.png: no such file; expected the ground truth") as err:
        run(tiny_cfg(first_run[0], tmp_path / "run", f"data.root={root}"))
    assert "\n" not in str(err.value)
    # without scoring, no GT is needed
    metrics = run(tiny_cfg(first_run[0], tmp_path / "run", f"data.root={root}", "task.score=false",
                           "task.figures=false"))
    assert "mse" not in metrics and (tmp_path / "run" / "01.png").is_file()


def test_unet_with_missing_and_unexpected_keys_is_one_line(first_run, tmp_path):
    root = course_copy(first_run[2], tmp_path)
    state = torch.load(root / "UNet.pt", weights_only=True)
    state.pop("down2.resblocks.conv1.weight")
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, root / "UNet.pt")
    with pytest.raises(CheckpointError) as err:
        run(tiny_cfg(first_run[0], tmp_path / "run", f"data.root={root}"))
    msg = str(err.value)
    assert msg.startswith(f"{root / 'UNet.pt'}: missing keys down2.resblocks.conv1.weight; "
                          "unexpected keys extra.weight; expected the state dict of FaceUNet(")
    assert "\n" not in msg


def test_course_model_on_small_weights_names_the_option(first_run, tmp_path):
    root = course_copy(first_run[2], tmp_path)
    # model.net={} names the course's architecture (FaceUNet's defaults) whatever the folder says
    cfg = compose_config(["task=faces", "model.net={}", f"data.root={root}", "logger=none",
                          f"paths.cache_dir={first_run[0]}", f"paths.output_dir={tmp_path / 'run'}"])
    with pytest.raises(CheckpointError, match=r"UNet.pt: missing keys .*; unexpected keys .*; shape mismatches "
                       r".*; expected the state dict of FaceUNet\(in_channel=3, channel=128, "):
        run(cfg)


def test_a_folder_without_unet_json_and_not_the_courses_names_the_option(first_run, tmp_path):
    root = course_copy(first_run[2], tmp_path)
    (root / "unet.json").unlink()
    with pytest.raises(CheckpointError) as err:
        run(tiny_cfg(first_run[0], tmp_path / "run", f"data.root={root}"))
    msg = str(err.value)
    assert msg.startswith(f"{root / 'UNet.pt'}: not the course's UNet (its keys or shapes differ) and no unet.json "
                          "beside it names its architecture; pass model.net={")
    assert "model=face_diffusers" in msg and "\n" not in msg
    # an explicit model.net still works
    net = json.loads((first_run[2] / "unet.json").read_text())["arguments"]
    given = "{" + ",".join(f"{k}:{v}".replace(" ", "") for k, v in net.items()) + "}"
    metrics = run(tiny_cfg(first_run[0], tmp_path / "run", f"data.root={root}", f"model.net={given}",
                           "task.figures=false"))
    assert metrics["mse"] < 0.5


def course_shaped_folder(root: Path, size: int, count: int = 2) -> Path:
    """A course face folder without unet.json: a UNet.pt of the course's keys and shapes (constant weights
    stored as expanded views, a few bytes each) and `count` noise files of size x size."""
    from src.models.face_unet import FaceUNet

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in FaceUNet().state_dict().items()}
    (root / "noise").mkdir(parents=True)
    torch.save({k: torch.full((), 0.01).expand(s) for k, s in shapes.items()}, root / "UNet.pt")
    for i in range(count):
        torch.save(torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(i)),
                   root / "noise" / f"{i:02d}.pt")
    return root


def test_a_course_folder_alone_is_the_course_model_at_the_noise_size(tmp_path):
    root = course_shaped_folder(tmp_path / "face", 32)
    assert (root / "UNet.pt").stat().st_size < 1_000_000
    cfg = compose_config(["task=faces", f"data.root={root}", "logger=none", "sampler.num_steps=2",
                          "task.score=false", "task.figures=false", f"paths.cache_dir={tmp_path / 'cache'}",
                          f"paths.output_dir={tmp_path / 'run'}"])
    run(cfg)
    assert Image.open(tmp_path / "run" / "01.png").size == (32, 32)
    assert not (tmp_path / "cache").exists()  # nothing embedded was built


def test_a_course_model_needs_noise_of_a_size_it_can_halve_five_times(tmp_path):
    root = course_shaped_folder(tmp_path / "face", 16, count=1)
    cfg = compose_config(["task=faces", f"data.root={root}", "logger=none", "task.score=false",
                          f"paths.cache_dir={tmp_path}", f"paths.output_dir={tmp_path / 'run'}"])
    with pytest.raises(DataError, match=r"noise of shape \[3, 16, 16\]; expected 3 channels and a height and width "
                       r"divisible by 32 for FaceUNet\(in_channel=3, channel=128, .*\) from the course's keys"):
        run(cfg)


def test_diffusers_folder_and_course_noise_without_gt(tmp_path):
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16),
                       layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4)
    unet.save_pretrained(tmp_path / "unet")
    root = tmp_path / "face" / "noise"
    root.mkdir(parents=True)
    for i in range(2):
        torch.save(torch.randn(1, 3, 8, 8), root / f"{i:02d}.pt")
    cfg = compose_config([*SAMPLING, "model=face_diffusers", f"model.weights={tmp_path / 'unet'}",
                          f"data.root={root.parent}", "task.score=false", f"paths.cache_dir={tmp_path}",
                          f"paths.output_dir={tmp_path / 'run'}"])
    metrics = run(cfg)
    assert sorted(p.name for p in (tmp_path / "run").glob("*.png")) == ["00.png", "01.png"]
    assert (tmp_path / "run" / "figures" / "interpolation.png").is_file() and metrics["sampler/eta"] == 0.0


def test_diffusers_without_weights_is_a_config_error(tmp_path):
    cfg = compose_config([*SAMPLING, "model=face_diffusers", f"paths.cache_dir={tmp_path}",
                          f"paths.output_dir={tmp_path / 'run'}", f"data.root={tmp_path}"])
    with pytest.raises(ConfigError, match="model.weights=None: expected a diffusers UNet2DModel folder"):
        run(cfg)


def test_eta_sweep_with_the_basic_launcher(first_run, tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "src.run", "-m", *TINY, "sampler.eta=0,1", "task.figures=false",
           f"paths.cache_dir={first_run[0]}", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    metrics = [json.loads((j / "metrics.json").read_text()) for j in jobs]
    assert [m["sampler/eta"] for m in metrics] == [0.0, 1.0]
    assert [OmegaConf.load(j / ".hydra" / "config.yaml").sampler.eta for j in jobs] == [0.0, 1.0]
    assert metrics[0]["mse"] < metrics[1]["mse"]
    assert all((j / "00.png").is_file() for j in jobs)


def test_figures_and_metrics_go_to_an_offline_wandb_run(first_run, tmp_path):
    cache = first_run[0]
    run(tiny_cfg(cache, tmp_path, "logger=wandb", "logger.mode=offline"))
    (wandb_run,) = (tmp_path / "wandb").glob("offline-run-*")
    assert list(wandb_run.glob("*.wandb"))
    assert {p.name.split("_")[0] for p in (wandb_run / "files" / "media" / "images").glob("*.png")} == {
        "eta", "interpolation"}


def test_mse_is_on_uint8_pixels_per_image_and_mean():
    from src.eval.face_scores import mse_metrics

    images = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    gt = torch.stack([torch.full((3, 4, 4), 2, dtype=torch.uint8), torch.full((3, 4, 4), 255, dtype=torch.uint8)])
    assert mse_metrics(images, gt, ["00", "01"]) == {"mse/00": 4.0, "mse/01": 65025.0, "mse": 32514.5}
