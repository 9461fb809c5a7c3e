"""The one reader of user weights files: weights only, safetensors by suffix, one-line errors."""
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from src.errors import CheckpointError
from src.models.weights import read_state

EXPECTED = "the test's weights"


class _Touch:
    """Unpickling this object would create `marker`: what a malicious checkpoint could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_torch_and_safetensors_files_read_back_equal(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2)}
    torch.save(state, tmp_path / "w.pt")
    save_file(state, str(tmp_path / "w.safetensors"))
    for name in ("w.pt", "w.safetensors"):
        got = read_state(tmp_path / name, EXPECTED)
        assert set(got) == {"w", "b"} and torch.equal(got["w"], state["w"])


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "executed"
    torch.save({"w": torch.ones(1), "payload": _Touch(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as err:
        read_state(tmp_path / "evil.pt", EXPECTED)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'evil.pt'}: cannot be read by torch.load(weights_only=True) (")
    assert message.endswith(f"; expected {EXPECTED}") and "\n" not in message
    assert not marker.exists()


@pytest.mark.parametrize("name,content,message", [
    ("missing.pt", None, "no such file; expected the test's weights"),
    ("cut.pt", b"PK\x03\x04 truncated", "cannot be read by torch.load(weights_only=True) ("),
    ("cut.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json", "cannot be read as safetensors ("),
    ("list.pt", [1, 2], "holds a list; expected the test's weights"),
])
def test_bad_files_are_one_line_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(CheckpointError) as err:
        read_state(path, EXPECTED)
    assert str(err.value).startswith(f"{path}: {message}") and "\n" not in str(err.value)
