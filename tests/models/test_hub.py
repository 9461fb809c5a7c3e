"""Models named by Hub id: downloaded on first use from a stand-in of the Hub's HTTP API on 127.0.0.1
(HF_ENDPOINT), reused offline from the cache, and one-line errors when they cannot be had."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers.hub_server import HubServer
from helpers.slurm import ROOT
from src.errors import CheckpointError, ConfigError

CLIP_ID, SD_ID = "openai/clip-vit-base-patch32", "CompVis/stable-diffusion-v1-4"
SVHN_ID = "edadaltocg/resnet34_svhn"
COURSE_CLASSIFIER = ROOT.parent / "shared" / "fixtures" / "course" / "Classifier.pth"


@pytest.fixture(scope="module")
def hub(tmp_path_factory, tiny_clip):
    """The Hub stand-in serving the tiny CLIP as openai/clip-vit-base-patch32 and the tiny SD as
    CompVis/stable-diffusion-v1-4 (both in the layout save_pretrained writes, as on the Hub), and a
    random-weight resnet34_svhn as edadaltocg/resnet34_svhn (its pytorch_model.bin, as detectors publishes it)."""
    import torch

    from src.eval.resnet_svhn import ResNet34SVHN
    from src.standins.tiny_sd import write_tiny_sd

    sd = write_tiny_sd(tmp_path_factory.mktemp("hub") / "sd", image_size=32)
    svhn = tmp_path_factory.mktemp("hub") / "resnet34_svhn"
    svhn.mkdir()
    torch.manual_seed(0)
    torch.save(ResNet34SVHN().state_dict(), svhn / "pytorch_model.bin")
    with HubServer({CLIP_ID: tiny_clip, SD_ID: sd, SVHN_ID: svhn}) as server:
        yield server


def python(args: list[str], cwd, *, hf_home, endpoint: str, offline: bool = False) -> subprocess.CompletedProcess:
    """`python <args>` with the Hub at `endpoint` (HF_ENDPOINT) and its cache in hf_home (HF_HOME)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(PYTHONPATH=str(ROOT), HF_HOME=str(hf_home), HF_ENDPOINT=endpoint, WANDB_MODE="offline",
               HF_HUB_DISABLE_TELEMETRY="1", **({"HF_HUB_OFFLINE": "1"} if offline else {}))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def src_run(args: list[str], cwd, **hub) -> subprocess.CompletedProcess:
    """`python -m src.run <args>` as a user runs it."""
    return python(["-m", "src.run", *args], cwd, **hub)


def last_line(done: subprocess.CompletedProcess) -> str:
    return done.stderr.strip().splitlines()[-1]


def test_clip_by_hub_id_downloads_once_then_runs_offline_from_the_cache(hub, tmp_path, cache_dir, write_clip_course):
    root = write_clip_course(tmp_path / "clip_zeroshot", {"0": "apple", "1": "bee"}, ["0_0.png", "1_0.png"])
    args = ["task=clip", f"model.weights={CLIP_ID}", f"data.root={root}", "logger=none",
            f"paths.cache_dir={cache_dir}", "trainer.enable_progress_bar=false"]
    hf_home = tmp_path / "hf"
    first = src_run([*args, f"hydra.run.dir={tmp_path / 'first'}"], tmp_path, hf_home=hf_home, endpoint=hub.url)
    assert first.returncode == 0, first.stderr[-2000:]
    assert 0.0 <= json.loads((tmp_path / "first" / "metrics.json").read_text())["top1"] <= 1.0
    fetched = {path.rsplit("/", 1)[-1] for method, path in hub.requests if method == "GET" and "/resolve/" in path}
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json"} <= fetched
    assert list((hf_home / "hub").glob("models--openai--clip-vit-base-patch32/snapshots/*/model.safetensors"))

    asked = len(hub.requests)
    again = src_run([*args, f"hydra.run.dir={tmp_path / 'again'}"], tmp_path, hf_home=hf_home, endpoint=hub.url,
                    offline=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(hub.requests) == asked  # HF_HUB_OFFLINE=1: nothing asked, all from the cache
    first_metrics = json.loads((tmp_path / "first" / "metrics.json").read_text())
    again_metrics = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again_metrics["top1"] == first_metrics["top1"]

    unknown = src_run([*args, "model.weights=nobody/no-such-model", f"hydra.run.dir={tmp_path / 'x'}"], tmp_path,
                      hf_home=hf_home, endpoint=hub.url)
    assert unknown.returncode != 0
    assert last_line(unknown) == (f"error: model.weights='nobody/no-such-model': no such model on {hub.url}; expected "
                                  "a Hub id such as owner/name, or model.weights=<a CLIP folder saved with "
                                  "save_pretrained>")
    assert not (tmp_path / "x" / "metrics.json").exists()


def test_the_course_preset_runs_ti_on_sd_and_the_graders_clip_by_hub_id(hub, tmp_path, cache_dir):
    """task=ti +experiment=course: SD v1.4 and CLIP ViT-B/32 by id (here the tiny models the stand-in serves),
    downloaded on the first run; the second, with HF_HUB_OFFLINE=1, asks nothing and draws the same images."""
    args = ["task=ti", "+experiment=course", "trainer.max_steps=2", "task.checkpoint_every=2",
            "task.num_inference_steps=2", "task.batch_size=5", "task.images_per_prompt=5", "task.concepts=[0]",
            "task.multi_prompts=[]", "data.embedded.size=32", "data.repeats=1", "logger=none",
            "task.initializer_tokens=[cat]",  # a word of the served random SD's small vocabulary
            "trainer.enable_progress_bar=false", f"paths.cache_dir={cache_dir}"]
    hf_home, start = tmp_path / "hf", len(hub.requests)
    done = src_run([*args, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, hf_home=hf_home, endpoint=hub.url)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["grade/embedded_clip"] == 0.0 and "c0/p0/image_score" in metrics
    repos = {path.split("/resolve/")[0].strip("/") for _, path in hub.requests[start:] if "/resolve/" in path}
    assert {SD_ID, CLIP_ID} <= repos
    assert "random tiny Stable Diffusion" not in done.stderr

    asked = len(hub.requests)
    again = src_run([*args, f"hydra.run.dir={tmp_path / 'again'}"], tmp_path, hf_home=hf_home, endpoint=hub.url,
                    offline=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(hub.requests) == asked  # SD and the grader's CLIP from the cache, nothing asked
    image = "samples/0/1/source0_prompt1_4.png"
    assert (tmp_path / "again" / image).read_bytes() == (tmp_path / "run" / image).read_bytes()
    scores = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert {k: scores[k] for k in metrics if "score" in k} == pytest.approx({k: v for k, v in metrics.items()
                                                                           if "score" in k})


def test_the_course_preset_scores_a_folder_with_the_graders_classifiers(hub, tmp_path, cache_dir, tiny_overrides):
    """task=evaluate +experiment=course: SVHN judged by resnet34_svhn fetched by Hub id (once), MNIST-M by the
    course's Classifier.pth; a second run offline from the cache gives the same scores."""
    from src.data.embedded_digits import resolve_data_root
    from tests.tasks.test_evaluate_task import write_real_as_generated

    data = [o for o in tiny_overrides if o.startswith("data.embedded.")]
    n = {o.split("=")[0].rsplit(".", 1)[1]: int(o.split("=")[1]) for o in data}
    write_real_as_generated(resolve_data_root(None, cache_dir, seed=0, **n), tmp_path / "generated")
    args = ["task=evaluate", "+experiment=course", f"task.folder={tmp_path / 'generated'}", *data,
            f"judge.mnistm_weights={COURSE_CLASSIFIER}", f"paths.cache_dir={cache_dir}"]
    hf_home, start = tmp_path / "hf", len(hub.requests)
    done = src_run([*args, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, hf_home=hf_home, endpoint=hub.url)
    assert done.returncode == 0, done.stderr[-2000:]
    assert ("GET", f"/{SVHN_ID}/resolve/main/pytorch_model.bin") in hub.requests[start:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["mnistm/n"] == metrics["svhn/n"] == 20 and metrics["mnistm/acc"] >= 0.8  # the real LeNet
    assert "svhn/classifier_val_acc" not in metrics and "mnistm/classifier_val_acc" not in metrics

    asked = len(hub.requests)
    again = src_run([*args, f"hydra.run.dir={tmp_path / 'again'}"], tmp_path, hf_home=hf_home, endpoint=hub.url,
                    offline=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(hub.requests) == asked
    scores = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert {k: v for k, v in scores.items() if not k.startswith("time/")} == \
        {k: v for k, v in metrics.items() if not k.startswith("time/")}

    empty = src_run([*args, f"hydra.run.dir={tmp_path / 'none'}"], tmp_path, hf_home=tmp_path / "hf2",
                    endpoint=hub.url, offline=True)
    assert empty.returncode == 1 and last_line(empty).startswith(
        f"error: judge.svhn_weights='{SVHN_ID}': not in the local Hugging Face cache and HF_HUB_OFFLINE=1")
    assert not (tmp_path / "none" / "metrics.json").exists()


def test_a_single_file_takes_its_configs_from_the_sd_repo_without_its_weights(hub, tmp_path):
    """model.weights=<sd .ckpt> with model.config at its default, CompVis/stable-diffusion-v1-4: the component
    configs and tokenizer come from that repo, the weights from the file (as the course's sd-v1-4.ckpt)."""
    from src.standins.sd_single_file import write_single_file

    folder = hub.repos[SD_ID].files["model_index.json"].parent
    ckpt = write_single_file(folder, tmp_path / "sd-tiny.ckpt")
    code = ("import sys, torch; from src.models.sd_pipeline import load_sd_pipeline; "
            "a = load_sd_pipeline(sys.argv[1]).unet.state_dict(); "
            "b = load_sd_pipeline(sys.argv[2]).unet.state_dict(); "
            "assert a.keys() == b.keys() and all(torch.equal(a[k], b[k].reshape(a[k].shape)) for k in a); print('same')")
    start = len(hub.requests)
    done = python(["-c", code, str(ckpt), str(folder)], tmp_path, hf_home=tmp_path / "hf", endpoint=hub.url)
    assert done.returncode == 0 and done.stdout.strip() == "same", done.stderr[-2000:]
    fetched = [path for method, path in hub.requests[start:] if method == "GET" and "/resolve/" in path]
    assert any(p.endswith("tokenizer/tokenizer.json") for p in fetched)
    assert any(p.endswith("unet/config.json") for p in fetched)
    assert not [p for p in fetched if p.endswith((".safetensors", ".bin"))]  # the weights come from the file


def test_offline_and_not_cached_is_one_line_naming_the_id_and_what_to_pass():
    from src.models.clip import load_clip

    with pytest.raises(CheckpointError) as err:
        load_clip("difflab-tests/never-cached", key="scorer.weights")
    assert str(err.value) == ("scorer.weights='difflab-tests/never-cached': not in the local Hugging Face cache and "
                              "HF_HUB_OFFLINE=1 forbids downloading it; pass scorer.weights=<a CLIP folder saved "
                              "with save_pretrained>, or download it where the Hub is reachable "
                              "(hf download difflab-tests/never-cached)")


def test_an_unreachable_hub_fails_at_once_in_one_line(monkeypatch):
    """No network and no HF_HUB_OFFLINE: one request, refused, and one line (no minutes of retries)."""
    from huggingface_hub import constants

    from src.models.clip import load_clip

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: connection refused
    with pytest.raises(CheckpointError, match=r"^model.weights='difflab-tests/x': not in the local Hugging Face "
                                              r"cache and http://127.0.0.1:9 cannot be reached \(ConnectError") as err:
        load_clip("difflab-tests/x")
    assert "\n" not in str(err.value) and "HF_HUB_OFFLINE=1" in str(err.value)


def test_a_path_that_is_not_a_hub_id_is_a_missing_folder(tmp_path):
    from src.models.clip import load_clip

    with pytest.raises(ConfigError, match=r"no such folder; expected a folder saved with save_pretrained or a CLIP"):
        load_clip(str(tmp_path / "a" / "b"))
