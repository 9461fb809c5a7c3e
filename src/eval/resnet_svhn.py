"""The course grader's SVHN classifier, state-dict compatible and without timm.

The grader builds it as `timm.create_model("resnet34_svhn", pretrained=True)` from the `detectors` package:
timm's ResNet-34 with a 3x3 stride-1 first convolution, no max-pool and a 512->10 head, its weights
published on the Hugging Face Hub (edadaltocg/resnet34_svhn, pytorch_model.bin). timm and detectors need
torchvision, which difflab does without, so the network is written here with timm's parameter names (the
test compares them, and the outputs, with timm's own model). Inputs are the grader's: 28x28, normalised with
mean and std 0.5 (src.eval.classifiers.classify).
"""
from __future__ import annotations

from pathlib import Path

import torch.nn.functional as F
from torch import Tensor, nn

from src.errors import CheckpointError

SVHN_HUB_ID = "edadaltocg/resnet34_svhn"
WEIGHTS_FILE = "pytorch_model.bin"  # the file detectors downloads
BLOCKS = (3, 4, 6, 3)  # ResNet-34
WIDTHS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    """timm's BasicBlock: two 3x3 conv-BN, ReLU between and after the residual sum."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:  # a 1x1 projection of the shortcut, as timm's downsample_conv
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + shortcut)


class ResNet34SVHN(nn.Module):
    """detectors' resnet34_svhn: [B, 3, H, W] normalised images -> logits [B, 10]."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)  # timm's 7x7/2 stem, replaced
        self.bn1 = nn.BatchNorm2d(64)
        c_in = 64
        for i, (n, width) in enumerate(zip(BLOCKS, WIDTHS)):
            stride = 1 if i == 0 else 2
            blocks = [BasicBlock(c_in if j == 0 else width, width, stride if j == 0 else 1) for j in range(n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            c_in = width
        self.fc = nn.Linear(512, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """Normalised images [B, 3, H, W] -> globally pooled features [B, 512] (what FID compares)."""
        x = F.relu(self.bn1(self.conv1(x)))  # no max-pool
        for i in range(len(BLOCKS)):
            x = getattr(self, f"layer{i + 1}")(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


def load_svhn_classifier(weights: str) -> ResNet34SVHN:
    """The grader's SVHN ResNet-34 from `weights`: a local file (or a folder holding pytorch_model.bin), or a
    Hub id (edadaltocg/resnet34_svhn) whose pytorch_model.bin is downloaded once into the Hugging Face cache."""
    from src.models.hub import endpoint, load_hub_model, looks_like_hub_id

    key = "judge.svhn_weights"
    path = Path(weights).expanduser()
    if path.is_dir():
        path = path / WEIGHTS_FILE
    elif not path.exists() and looks_like_hub_id(weights):
        from huggingface_hub import hf_hub_download

        path = Path(load_hub_model(
            weights, lambda local: hf_hub_download(weights, WEIGHTS_FILE, local_files_only=local, endpoint=endpoint()),
            key=key, instead="a local resnet34_svhn pytorch_model.bin"))
    if not path.is_file():
        raise CheckpointError(f"{key}={weights!r}: no such file; expected the grader's resnet34_svhn "
                              f"{WEIGHTS_FILE} (a file or its folder) or the Hub id {SVHN_HUB_ID}")
    from src.models.face_unet import load_strict
    from src.models.weights import read_state

    state = read_state(path, "a state dict of resnet34_svhn")
    return load_strict(ResNet34SVHN(), state, path, "the state dict of resnet34_svhn (timm's names)").eval()
