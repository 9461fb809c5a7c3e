import math

import pytest
import torch
import torch.nn.functional as F

from src.data.clip_data import ImageSet, image_loader, open_rgb
from src.errors import CheckpointError, ConfigError
from src.eval.zero_shot import classification_metrics, confusion_matrix, metric_names, topk_hits
from src.models.clip import check_tokenizer, load_clip
from src.models.clip_zeroshot import (average_templates, build_text_classifier, encode_images, fill_templates,
                                      text_encoder, zero_shot_logits)
from src.standins.random_clip import train_tokenizer


def one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


# ----------------------------------------------------------------------------- loading


def test_load_clip_from_a_save_pretrained_folder(tiny_clip):
    assert (tiny_clip / "bpe" / "vocab.json").is_file() and (tiny_clip / "bpe" / "merges.txt").is_file()
    model, processor = load_clip(str(tiny_clip))
    tok = processor.tokenizer
    assert not model.training and len(tok) == model.config.text_config.vocab_size == 300
    assert tok.model_max_length == 77
    ids = tok(["A photo of seven."])["input_ids"][0]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id and len(ids) > 4
    text = text_encoder(model, tok, torch.device("cpu"))(["a photo of a cat.", "itap of a dog."])
    assert text.shape == (2, 16) and text.dtype == torch.float32


def test_a_local_folder_wins_over_the_hub_id_of_the_same_name(tiny_clip, tmp_path, monkeypatch):
    (tmp_path / "openai").mkdir()
    (tmp_path / "openai" / "clip-vit-base-patch32").symlink_to(tiny_clip)
    monkeypatch.chdir(tmp_path)
    model, _ = load_clip("openai/clip-vit-base-patch32")
    assert model.config.projection_dim == 16


def test_no_weights_says_what_to_pass():
    with pytest.raises(ConfigError) as err:
        load_clip(None)
    assert one_line(err).startswith("model.weights=None: expected a CLIP folder saved with save_pretrained or a Hub id")


def test_uncached_hub_name_is_one_line_not_a_download():
    with pytest.raises(CheckpointError) as err:
        load_clip("difflab-tests/no-such-clip")
    msg = one_line(err)
    assert msg.startswith("model.weights='difflab-tests/no-such-clip': not in the local Hugging Face cache")
    assert "model.weights=<a CLIP folder saved with save_pretrained>" in msg


def test_a_missing_path_is_not_looked_up_on_the_hub(tmp_path):
    with pytest.raises(ConfigError, match="no such folder") as err:
        load_clip(str(tmp_path / "nope"), key="scorer.weights")
    assert one_line(err).startswith(f"scorer.weights={str(tmp_path / 'nope')!r}")


def test_folder_without_config_names_it(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json") as err:
        load_clip(str(tmp_path))
    assert str(tmp_path) in one_line(err)


def test_a_tokenizer_of_only_special_tokens_is_rejected(tiny_clip, tmp_path):
    """What CLIPTokenizer.from_pretrained returns for an uncached hub name: two tokens, no error."""
    from transformers import CLIPModel, CLIPProcessor, CLIPTokenizer

    model = CLIPModel.from_pretrained(tiny_clip)
    processor = CLIPProcessor.from_pretrained(tiny_clip)
    empty = CLIPTokenizer()
    assert len(empty) == 2
    model.save_pretrained(tmp_path)
    CLIPProcessor(image_processor=processor.image_processor, tokenizer=empty).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="tokenizer has 2 tokens") as err:
        load_clip(str(tmp_path))
    one_line(err)


def test_tokenizer_built_from_scratch_gets_the_context_length():
    from transformers import CLIPTextConfig

    tok = train_tokenizer()
    tok.model_max_length = int(1e30)
    check_tokenizer(tok, CLIPTextConfig(vocab_size=len(tok)), "test")
    assert tok.model_max_length == 77


# ----------------------------------------------------------------------------- the classifier, exactly


def test_templates_fill_class_major():
    assert fill_templates(["cat", "dog"], ["a {}.", "{} art"]) == ["a cat.", "cat art", "a dog.", "dog art"]


def test_ensemble_normalises_each_template_then_renormalises():
    # class 0: templates (3, 4, 0) and (0, 0, 2) -> unit (0.6, 0.8, 0), (0, 0, 1) -> mean (0.3, 0.4, 0.5),
    # norm sqrt(0.5). Averaging before normalising would give (1.5, 2, 1) / sqrt(7.25) instead.
    # class 1: one direction at two lengths -> that direction.
    e = torch.tensor([[[3.0, 4.0, 0.0], [0.0, 0.0, 2.0]],
                      [[0.0, 5.0, 0.0], [0.0, 0.1, 0.0]]], dtype=torch.float64)  # [K=2, T=2, D=3]
    w = average_templates(e)  # [D, K]
    expected = torch.tensor([[0.3, 0.0], [0.4, 1.0], [0.5, 0.0]], dtype=torch.float64)
    expected[:, 0] /= math.sqrt(0.5)
    assert w.shape == (3, 2)
    torch.testing.assert_close(w, expected, rtol=0, atol=1e-15)
    assert torch.equal(w, F.normalize(F.normalize(e, dim=-1).mean(dim=1), dim=-1).T)


def test_build_text_classifier_encodes_every_prompt_once_in_batches():
    vectors = {}
    calls = []

    def encode(prompts):
        calls.append(len(prompts))
        return torch.stack([vectors.setdefault(p, torch.randn(8, dtype=torch.float64)) for p in prompts])

    torch.manual_seed(0)
    names, templates = ["zero", "one", "two"], ["A photo of {}.", "art of the {}.", "a drawing of a {}."]
    w = build_text_classifier(encode, names, templates, batch_size=4)
    assert calls == [4, 4, 1] and len(vectors) == 9
    e = torch.stack([torch.stack([vectors[t.replace("{}", n)] for t in templates]) for n in names])  # [K, T, D]
    assert torch.equal(w, average_templates(e))
    assert torch.equal(build_text_classifier(encode, names, templates, batch_size=100), w)
    torch.testing.assert_close(w.norm(dim=0), torch.ones(3, dtype=torch.float64))
    # one template: the classifier is that template's unit embedding
    single = build_text_classifier(encode, names, templates[:1])
    torch.testing.assert_close(single, F.normalize(e[:, 0], dim=-1).T)


def test_known_answers_give_exact_top1_top5_and_per_class_accuracy():
    # An identity classifier over K=6 classes: an image's logits are its feature's coordinates, so the
    # rank of the true class is set by hand. Ranks of the true class: 1, 3, 6, 5, 1, 2.
    classifier = torch.eye(6, dtype=torch.float64)  # [D, K]
    scores = torch.tensor([[9, 1, 2, 3, 4, 5],   # label 0: rank 1
                           [9, 7, 8, 1, 2, 3],   # label 1: rank 3
                           [9, 8, 1, 7, 6, 5],   # label 2: rank 6 (last)
                           [9, 8, 7, 5, 6, 1],   # label 3: rank 5
                           [1, 2, 3, 4, 9, 5],   # label 4: rank 1
                           [1, 2, 3, 4, 9, 8]],  # label 5: rank 2
                          dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    logits = zero_shot_logits(scores, classifier, logit_scale=1.0)
    torch.testing.assert_close(logits, F.normalize(scores, dim=-1))
    assert topk_hits(logits, labels, 1).tolist() == [True, False, False, False, True, False]
    assert topk_hits(logits, labels, 5).tolist() == [True, True, False, True, True, True]
    names = ["zero", "one", "two", "three", "four", "five"]
    m = classification_metrics(logits, labels, names)
    assert (m["top1"], m["top5"], m["n"]) == (2 / 6, 5 / 6, 6.0)
    assert [m[f"acc/{n}"] for n in names] == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    matrix = confusion_matrix(logits.argmax(1), labels, 6)
    assert matrix.sum() == 6 and matrix[:, 0].sum() == 4 and matrix.diagonal().tolist() == [1, 0, 0, 0, 1, 0]


def test_top5_with_fewer_than_five_classes_is_one_and_absent_classes_have_no_key():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])
    m = classification_metrics(logits, torch.tensor([0, 0]), ["a", "b", "c"])
    assert m == {"top1": 0.5, "top5": 1.0, "n": 2.0, "acc/a": 0.5}


def test_metric_names_are_unique():
    assert metric_names(["crane", "cat/dog", "crane"]) == ["acc/crane_0", "acc/cat_dog", "acc/crane_2"]


# ----------------------------------------------------------------------------- against plain transformers


def test_batched_pipeline_equals_a_plain_transformers_loop(tiny_clip, tmp_path):
    """Our DataLoader (uint8 crops in workers, normalised per batch) gives the embeddings of the
    processor + get_image_features loop on the same images."""
    import numpy as np
    from PIL import Image

    model, processor = load_clip(str(tiny_clip))
    rng = np.random.default_rng(0)
    files = []
    for i, (h, w) in enumerate([(28, 28), (40, 30), (32, 50), (64, 64), (20, 33)]):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(files[-1])
    images = ImageSet(tmp_path, tuple(files), (0, 1, 0, 1, 0), ("a", "b"))
    loader = image_loader(images, processor.image_processor, batch_size=2, num_workers=1)
    ours, labels, index = encode_images(model, loader, torch.device("cpu"))
    with torch.no_grad():
        x = processor(images=[open_rgb(f) for f in files], return_tensors="pt")["pixel_values"]
        ref = F.normalize(model.get_image_features(pixel_values=x).pooler_output, dim=-1)
    assert labels.tolist() == [0, 1, 0, 1, 0] and index.tolist() == [0, 1, 2, 3, 4]
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


def test_weights_of_another_model_are_rejected_not_randomly_initialised(tiny_clip, tmp_path):
    from transformers import BertConfig, BertModel, CLIPProcessor

    BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                         vocab_size=300)).save_pretrained(tmp_path)
    CLIPProcessor.from_pretrained(tiny_clip).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="not a CLIP") as err:
        load_clip(str(tmp_path))
    one_line(err)
