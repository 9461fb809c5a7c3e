"""Randomly initialised CLIP folders in the save_pretrained layout, built offline: a BPE tokenizer trained
with the `tokenizers` library, a CLIPModel from a config, a CLIPImageProcessor. For tests, speed
benchmarks, smoke runs and the TI grader's default where no real CLIP weights are at hand (their accuracy is
chance)."""
from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path

import torch

from src.data.clip_data import DIGIT_NAMES

# A corpus for the tokenizer: prompt words and digit names, so that prompts become real subwords.
DEFAULT_CORPUS = tuple(f"{t} {name}." for name in (*DIGIT_NAMES, "cat", "dog", "bird", "car", "house")
                       for t in ("a photo of a", "a blurry photo of the", "itap of a", "a drawing of a"))
# hidden 32, 2 layers, 32x32 images in 8x8 patches, 16-d projection: ~0.1M parameters, loads in ~0.1 s.
TINY = dict(text=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4),
            vision=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                        image_size=32, patch_size=8),
            projection_dim=16)


def train_tokenizer(corpus: Iterable[str] = DEFAULT_CORPUS, vocab_size: int = 300, folder: Path | None = None):
    """A CLIPTokenizer from BPE vocab.json + merges.txt trained on `corpus` (written into `folder`), with
    CLIP's normaliser, pre-tokeniser, special tokens and '</w>' word ends; model_max_length 77."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    template = CLIPTokenizer().backend_tokenizer  # CLIP's text pipeline around an empty vocabulary
    bpe = Tokenizer(models.BPE(unk_token="<|endoftext|>", end_of_word_suffix="</w>"))
    bpe.normalizer, bpe.pre_tokenizer = template.normalizer, template.pre_tokenizer
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|startoftext|>", "<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), end_of_word_suffix="</w>",
                                  show_progress=False)
    bpe.train_from_iterator(list(corpus), trainer)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(folder or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        bpe.model.save(str(folder))  # vocab.json, merges.txt
        vocab = json.loads((folder / "vocab.json").read_text())
        merges = [tuple(line.split()) for line in (folder / "merges.txt").read_text().splitlines()
                  if line and not line.startswith("#version")]
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def random_clip_config(tokenizer, size: str = "tiny"):
    """CLIPConfig for `tokenizer`: size 'tiny' (TINY) or 'vit-b-32' (CLIPConfig's defaults, ViT-B/32 shapes)."""
    from transformers import CLIPConfig

    if size not in ("tiny", "vit-b-32"):
        raise ValueError(f"size={size!r}: expected tiny or vit-b-32")
    shapes = TINY if size == "tiny" else dict(text={}, vision={})
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    text = dict(vocab_size=len(tokenizer), max_position_embeddings=77, **ids, **shapes["text"])
    extra = {"projection_dim": shapes["projection_dim"]} if "projection_dim" in shapes else {}
    return CLIPConfig(text_config=text, vision_config=shapes["vision"], **extra)


def write_random_clip(folder: Path, *, size: str = "tiny", seed: int = 0) -> Path:
    """Save a random CLIPModel and its CLIPProcessor (image processor at the model's image size) into
    `folder` with save_pretrained; returns the folder. 'tiny': a tokenizer trained on a few prompts;
    'vit-b-32': openai/clip-vit-base-patch32's shapes (151M parameters) and CLIP's real 49,408-token
    tokenizer (src.standins.clip_tokenizer)."""
    from transformers import CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    from src.standins.clip_tokenizer import write_clip_tokenizer

    folder = Path(folder)
    if size == "vit-b-32":
        with tempfile.TemporaryDirectory() as tmp:
            tokenizer = CLIPTokenizer.from_pretrained(write_clip_tokenizer(tmp))
    else:
        tokenizer = train_tokenizer(folder=folder / "bpe")
    config = random_clip_config(tokenizer, size)
    torch.manual_seed(seed)
    model = CLIPModel(config)
    s = config.vision_config.image_size
    image_processor = CLIPImageProcessor(size={"shortest_edge": s}, crop_size={"height": s, "width": s})
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder
