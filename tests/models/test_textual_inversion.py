"""Textual inversion on a tiny SD written in the diffusers layout: frozen rows, saved embeddings, resume."""
import pytest
import torch
from torch.utils.data import DataLoader

from src.errors import CheckpointError, ConfigError
from src.models.sd_pipeline import load_sd_pipeline
from src.models.textual_inversion import (OBJECT_TEMPLATES, TextualInversionModule, expand_placeholder,
                                          save_learned_embeds)
from src.standins.tiny_sd import write_tiny_sd


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    return write_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny_sd", image_size=32)


def _batches(n_vectors: int, token: str = "<new1>"):
    torch.manual_seed(0)
    pixels = torch.rand(8, 3, 32, 32) * 2 - 1
    prompts = [t.format(expand_placeholder(token, token, n_vectors)) for t in OBJECT_TEMPLATES[:8]]
    return DataLoader(list(zip(pixels, prompts)), batch_size=4)


def _fit(module, loader, tmp_path, steps, ckpt_path=None):
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint

    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=2)
    trainer = pl.Trainer(accelerator="cpu", max_steps=steps, logger=False, callbacks=[ckpt],
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, loader, ckpt_path=ckpt_path)
    return trainer


def test_only_the_new_rows_change_and_saved_embeds_load_into_a_fresh_pipeline(sd_dir, tmp_path):
    pipe = load_sd_pipeline(sd_dir)
    before = pipe.text_encoder.get_input_embeddings().weight.detach().clone()
    frozen = {k: v.clone() for k, v in {**pipe.unet.state_dict(), **pipe.vae.state_dict()}.items()}
    module = TextualInversionModule(pipe, "<new1>", "cat", num_vectors=2, lr=1e-1)
    init = pipe.text_encoder.get_input_embeddings().weight[module.new_ids].detach().clone()
    _fit(module, _batches(2), tmp_path, steps=3)
    learned = module.finish()["<new1>"]
    after = pipe.text_encoder.get_input_embeddings().weight.detach()
    assert after.shape[0] == before.shape[0] + 2
    assert torch.equal(after[:before.shape[0]], before)  # every old row bit-identical
    assert not torch.equal(learned, init) and torch.equal(after[module.new_ids], learned)
    assert all(torch.equal(frozen[k], v) for k, v in {**pipe.unet.state_dict(), **pipe.vae.state_dict()}.items())

    path = save_learned_embeds("<new1>", learned, tmp_path / "emb" / "learned_embeds.safetensors")
    fresh = load_sd_pipeline(sd_dir)
    fresh.load_textual_inversion(str(path), local_files_only=True)  # stock diffusers API
    prompt = "a photo of a <new1> on a park bench"
    ours, _ = pipe.encode_prompt(prompt, "cpu", 1, False)
    theirs, _ = fresh.encode_prompt(prompt, "cpu", 1, False)
    assert torch.equal(ours, theirs)
    plain, _ = load_sd_pipeline(sd_dir).encode_prompt("a photo of a cat on a park bench", "cpu", 1, False)
    assert not torch.equal(ours, plain)


def test_resume_from_a_checkpoint_continues_where_it_stopped(sd_dir, tmp_path):
    module = TextualInversionModule(load_sd_pipeline(sd_dir), "<new1>", "cat", lr=1e-1)
    _fit(module, _batches(1), tmp_path / "b", steps=2)
    ckpt = torch.load(tmp_path / "b" / "ckpt" / "last.ckpt", weights_only=False)
    assert ckpt["state_dict"] and all(k.endswith("new_embeds") for k in ckpt["state_dict"])  # only the learned rows
    resumed = TextualInversionModule(load_sd_pipeline(sd_dir), "<new1>", "cat", lr=1e-1)
    trainer = _fit(resumed, _batches(1), tmp_path / "b", steps=4, ckpt_path=tmp_path / "b" / "ckpt" / "last.ckpt")
    assert trainer.global_step == 4
    assert not torch.equal(resumed.embedding.new_embeds, module.embedding.new_embeds)


def test_initializer_must_be_one_token_and_placeholder_new(sd_dir):
    with pytest.raises(ConfigError, match="single token"):
        TextualInversionModule(load_sd_pipeline(sd_dir), "<new1>", "cat dog")
    pipe = load_sd_pipeline(sd_dir)
    TextualInversionModule(pipe, "<new1>", "cat")
    with pytest.raises(ConfigError, match="already in the tokenizer"):
        TextualInversionModule(pipe, "<new1>", "dog")


def test_bad_pipeline_paths_are_one_line_errors(sd_dir, tmp_path):
    with pytest.raises(ConfigError, match="model.weights=.*: no such file or folder") as err:
        load_sd_pipeline(tmp_path / "missing")
    assert "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match="model_index.json"):
        load_sd_pipeline(tmp_path)
    bad = tmp_path / "sd-v1-4.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="single-file") as err:
        load_sd_pipeline(bad)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="original_config"):
        load_sd_pipeline(bad, original_config=tmp_path / "v1-inference.yaml")
    with pytest.raises(ConfigError, match="expected a folder or a file ending"):
        load_sd_pipeline(_touch(tmp_path / "x.bin"))


def _touch(path):
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize("name", ["sd-tiny.ckpt", "sd-tiny.safetensors"])
def test_a_single_file_checkpoint_in_the_original_layout_loads_like_the_folder(sd_dir, tmp_path, name):
    from src.standins.sd_single_file import write_single_file

    import shutil

    path = write_single_file(sd_dir, tmp_path / name)
    configs = shutil.copytree(sd_dir, tmp_path / "configs",  # what model.config needs: configs and tokenizer
                              ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    folder, single = load_sd_pipeline(sd_dir), load_sd_pipeline(path, config=configs)
    for part in ("unet", "vae", "text_encoder"):
        a, b = getattr(folder, part).state_dict(), getattr(single, part).state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k].reshape(a[k].shape)) for k in a)
    assert single.tokenizer.model_max_length == 77 and single.safety_checker is None
    with pytest.raises(CheckpointError, match="model.config") as err:  # offline, nothing cached: one line
        load_sd_pipeline(path)
    assert "\n" not in str(err.value)


def test_custom_diffusion_trains_only_tokens_and_cross_attention_kv_and_reloads(sd_dir, tmp_path):
    from src.models.custom_diffusion import CustomDiffusionModule, load_custom_diffusion, save_custom_diffusion

    pipe = load_sd_pipeline(sd_dir)
    unet_before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    module = CustomDiffusionModule(pipe, ["<new1>", "<new2>"], ["cat", "painting"], lr=1e-1, kv_lr=1e-1)
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith("new_embeds") or "custom_diffusion" in n for n in trainable)
    assert not any("attn1" in n for n in trainable)
    kv_before = [p.detach().clone() for p in module.kv_params]
    prompts = ["a photo of a <new1>", "a painting in the style of <new2>"] * 4
    loader = DataLoader(list(zip(torch.rand(8, 3, 32, 32) * 2 - 1, prompts)), batch_size=4)
    _fit(module, loader, tmp_path, steps=2)
    assert any(not torch.equal(a, b) for a, b in zip(kv_before, module.kv_params))
    learned = module.finish()
    assert all(torch.equal(unet_before[k], v) for k, v in pipe.unet.state_dict().items() if k in unet_before)

    weights = save_custom_diffusion(pipe.unet, tmp_path / "cd")
    fresh = load_sd_pipeline(sd_dir)
    load_custom_diffusion(fresh, weights.parent)
    for token, embeds in learned.items():
        fresh.load_textual_inversion(str(save_learned_embeds(token, embeds, tmp_path / token / "e.safetensors")))
    prompt = "a <new1> next to a <new2>"
    ours, _ = pipe.encode_prompt(prompt, "cpu", 1, False)
    theirs, _ = fresh.encode_prompt(prompt, "cpu", 1, False)
    assert torch.equal(ours, theirs)
    x, t = torch.randn(1, 4, 8, 8), torch.tensor([10])
    with torch.no_grad():
        assert torch.equal(pipe.unet(x, t, ours).sample, fresh.unet(x, t, theirs).sample)


def test_image_size_sets_the_resolution_the_pipeline_draws_at(sd_dir):
    from src.models.sd_pipeline import pipeline_image_size

    assert pipeline_image_size(load_sd_pipeline(sd_dir)) == 32
    pipe = load_sd_pipeline(sd_dir, image_size=64)
    assert pipeline_image_size(pipe) == 64
    assert pipe("a cat", num_inference_steps=1, output_type="np").images.shape == (1, 64, 64, 3)
    with pytest.raises(ConfigError, match="model.image_size=30: expected a multiple"):
        load_sd_pipeline(sd_dir, image_size=30)


def test_a_checkpoint_that_is_not_stable_diffusion_is_one_line(sd_dir, tmp_path):
    """The course's face UNet.pt handed over as model.weights: a torch zip, but no SD weights in it."""
    import shutil

    from src.models.face_unet import FaceUNet

    net = FaceUNet(in_channel=3, channel=32, channel_multiplier=[1, 2], n_res_blocks=1, attn_strides=[2],
                   attn_heads=1, dropout=0.0, norm_groups=8)
    torch.save(net.state_dict(), tmp_path / "UNet.ckpt")
    configs = shutil.copytree(sd_dir, tmp_path / "configs", ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    with pytest.raises(CheckpointError, match=r"UNet.ckpt: cannot load as a single-file Stable Diffusion "
                                              r"checkpoint .*Weights for this component appear to be missing") as err:
        load_sd_pipeline(tmp_path / "UNet.ckpt", config=configs)
    assert "\n" not in str(err.value)


def test_gradient_checkpointing_gives_the_same_loss_and_gradient(sd_dir):
    grads = []
    for checkpointing in (False, True):
        module = TextualInversionModule(load_sd_pipeline(sd_dir), "<new1>", "cat", gradient_checkpointing=checkpointing)
        module.train()
        assert module.unet.is_gradient_checkpointing is checkpointing
        torch.manual_seed(0)
        loss = module.training_step(next(iter(_batches(1))), 0)
        loss.backward()
        grads.append((loss.detach(), module.embedding.new_embeds.grad.clone()))
    (loss_a, grad_a), (loss_b, grad_b) = grads
    assert torch.allclose(loss_a, loss_b) and torch.allclose(grad_a, grad_b, atol=1e-6) and grad_a.abs().sum() > 0


@pytest.mark.parametrize("module_name", ["textual_inversion", "custom_diffusion"])
def test_under_mixed_precision_the_frozen_nets_are_held_in_bf16_and_the_trained_weights_in_fp32(sd_dir, module_name):
    """diffusers' textual_inversion example: frozen UNet and VAE in the mixed-precision dtype, half their memory."""
    from src.models.custom_diffusion import CustomDiffusionModule
    from src.models.textual_inversion import frozen_dtype

    cls = {"textual_inversion": TextualInversionModule, "custom_diffusion": CustomDiffusionModule}[module_name]
    losses, grads = [], []
    for precision in ("32-true", "bf16-mixed"):
        pipe = load_sd_pipeline(sd_dir)
        fp32_bytes = sum(p.numel() * p.element_size() for p in pipe.unet.parameters())
        module = cls(pipe, ["<new1>"], ["cat"], frozen_dtype=frozen_dtype(precision))
        half = precision == "bf16-mixed"
        frozen = [p for p in [*pipe.unet.parameters(), *pipe.vae.parameters()] if not p.requires_grad]
        assert {p.dtype for p in frozen} == {torch.bfloat16 if half else torch.float32}
        trained = [p for p in module.parameters() if p.requires_grad]
        assert trained and all(p.dtype == torch.float32 for p in trained)
        assert pipe.text_encoder.dtype == torch.float32
        frozen_bytes = sum(p.numel() * p.element_size() for p in pipe.unet.parameters() if not p.requires_grad)
        assert frozen_bytes == (fp32_bytes // 2 if half else fp32_bytes)
        torch.manual_seed(0)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=half):
            loss = module.training_step(next(iter(_batches(1))), 0)
        loss.backward()
        losses.append(loss.item())
        grads.append(module.embedding.new_embeds.grad.clone())
    assert losses[1] == pytest.approx(losses[0], rel=0.05)  # the same loss, to bf16's precision
    assert grads[1].abs().sum() > 0
    assert torch.nn.functional.cosine_similarity(grads[0].flatten(), grads[1].flatten(), dim=0) > 0.9
    assert frozen_dtype("16-mixed") == torch.float16 and frozen_dtype("32-true") is None
