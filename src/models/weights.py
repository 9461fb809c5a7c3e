"""Reading a weights file a user hands us: weights only (torch.load(weights_only=True) or safetensors, so
no pickled code ever runs), each failure one line naming the file and what was expected."""
from __future__ import annotations

from pathlib import Path

import torch

from src.errors import CheckpointError, first_line


def read_state(path: Path, expected: str) -> dict:
    """The dict saved in `path` (torch.save, or .safetensors by suffix); `expected` ends every error,
    e.g. "the face UNet's weights (model.weights)"."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; expected {expected}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - corrupt, truncated, unsafe or not a torch file: one user error
        how = "as safetensors" if path.suffix == ".safetensors" else "by torch.load(weights_only=True)"
        raise CheckpointError(f"{path}: cannot be read {how} ({type(err).__name__}: {first_line(err, 120)}); "
                              f"expected {expected}") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}; expected {expected}")
    return state
