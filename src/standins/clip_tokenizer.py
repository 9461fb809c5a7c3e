"""The real CLIP tokenizer (49,408 tokens: SD v1's and CLIP ViT-B/32's), built offline from CLIP's BPE merges.

data/bpe_simple_vocab_16e6.txt.gz is OpenAI CLIP's merge list as open_clip ships it in its wheel (licence in
data/LICENSE-open_clip); taken from there, not installed (open_clip needs torchvision). The vocabulary is
built as CLIP's SimpleTokenizer builds it: 256 byte symbols, the same with `</w>`, one token per merge, the
two special tokens.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

BPE_FILE = Path(__file__).parent / "data" / "bpe_simple_vocab_16e6.txt.gz"
NUM_MERGES = 49152 - 256 - 2  # CLIP keeps the first 48,894 merges
VOCAB_SIZE = 49408


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map of the 256 byte values to printable unicode characters, in its order (the
    printable bytes first, then the others shifted past 255): the order of CLIP's first 256 token ids."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = {b: chr(b) for b in keep}
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + len(chars) - len(keep))
    return chars


def clip_vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    """CLIP's vocabulary {token: id} (49,408) and its merges ("a b" lines, in rank order)."""
    lines = gzip.open(BPE_FILE, "rt", encoding="utf-8").read().split("\n")
    merges = lines[1:NUM_MERGES + 1]
    symbols = list(bytes_to_unicode().values())
    tokens = [*symbols, *(s + "</w>" for s in symbols), *("".join(m.split()) for m in merges),
              "<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}, merges


def write_clip_tokenizer(folder: str | Path) -> Path:
    """CLIP's tokenizer saved with save_pretrained into `folder` (vocab.json, merges.txt and the configs a
    CLIPTokenizer / CLIPProcessor load), as in openai/clip-vit-base-patch32 and SD v1.4's tokenizer/."""
    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = clip_vocab_and_merges()
    raw = folder / "bpe"
    raw.mkdir(exist_ok=True)
    (raw / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (raw / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    tokenizer = CLIPTokenizer(str(raw / "vocab.json"), str(raw / "merges.txt"), model_max_length=77)
    tokenizer.save_pretrained(folder)
    for f in raw.iterdir():
        f.unlink()
    raw.rmdir()
    return folder
