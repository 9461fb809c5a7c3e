"""Writes keys.tsv and vector.pt beside this file from timm's own resnet34 changed as the `detectors` package
changes it for resnet34_svhn (conv1 3x3 stride 1, no max-pool, fc 512->10): the reference that
tests/eval/test_resnet_svhn.py holds difflab's torchvision-free ResNet34SVHN to.

Needs timm, which needs torchvision; this machine cannot install torchvision beside its torch, so timm's
wheel is unpacked without dependencies and torchvision is stubbed (timm imports it for data transforms and a
frozen norm layer that resnet34 never uses):
    pip download --no-deps timm==1.0.31 && unzip -q timm-1.0.31-py3-none-any.whl -d /tmp/timm
    PYTHONPATH=/tmp/timm python tests/eval/resnet34_svhn/make_reference.py
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from pathlib import Path

import torch

HERE = Path(__file__).parent


def seeded_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """A deterministic, well-scaled state dict for these keys (in this order): the same on every machine."""
    g = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=g)
        elif key.endswith(("running_mean", "bias")) or (key.endswith("weight") and len(shape) == 1):
            offset = 1.0 if key.endswith("weight") else 0.0  # BatchNorm scales near 1
            state[key] = offset + 0.1 * torch.randn(shape, generator=g)
        else:  # conv and linear weights: He-scaled
            fan_in = int(torch.tensor(shape[1:]).prod())
            state[key] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
    return state


def reference_input() -> torch.Tensor:
    """Two 28x28 images in [-1, 1], as the grader feeds them."""
    return torch.rand(2, 3, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1


class _Placeholder(type):
    """A class whose every attribute is another placeholder class (torchvision's enums, say)."""

    def __getattr__(cls, name: str):
        return _Placeholder(name, (), {})


class _StubTorchvision(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Any torchvision module imports, and any name in it is a placeholder class."""

    def find_spec(self, name, path, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []

        def placeholder(attr: str):
            if attr.startswith("__"):
                raise AttributeError(attr)
            return _Placeholder(attr, (), {})

        module.__getattr__ = placeholder
        return module

    def exec_module(self, module) -> None:
        pass


def main() -> None:
    sys.meta_path.insert(0, _StubTorchvision())
    import timm
    from torch import nn

    model = timm.create_model("resnet34", pretrained=False)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)
    model.maxpool = nn.Identity()
    model.fc = nn.Linear(512, 10)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    model.load_state_dict(seeded_state(shapes))
    with torch.no_grad():
        logits = model.eval()(reference_input())
    lines = [f"# timm {timm.__version__} resnet34 as detectors' resnet34_svhn: key, shape"]
    lines += [f"{k}\t{','.join(map(str, s))}" for k, s in shapes.items()]
    (HERE / "keys.tsv").write_text("\n".join(lines) + "\n")
    torch.save({"logits": logits}, HERE / "vector.pt")
    print(f"{len(shapes)} keys; logits {logits.shape}")


if __name__ == "__main__":
    main()
