"""Digit classifiers for scoring generated MNIST-M / SVHN digits: the course's LeNet and our DigitNet."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.cache import build_once
from src.errors import CheckpointError

log = logging.getLogger(__name__)

# Bump when DigitNet or the training recipe changes, so cached classifiers are retrained.
RECIPE_VERSION = 2


def normalize_images(images: Tensor) -> Tensor:
    """uint8 [B, 3, H, W] in 0..255 -> float [B, 3, H, W] in [-1, 1], as the course grader normalises."""
    return images.float().div(255.0).sub(0.5).div(0.5)


class LeNet(nn.Module):
    """The course's MNIST-M classifier; its `Classifier.pth` state dict loads with strict=True."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, kernel_size=5)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.fc1 = nn.Linear(256, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, 10)

    def features(self, x: Tensor) -> Tensor:
        """[B, 3, 28, 28] in [-1, 1] -> penultimate activations [B, 64]."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # [B, 6, 12, 12]
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # [B, 16, 4, 4]
        x = F.relu(self.fc1(x.flatten(1)))  # [B, 128]
        return F.relu(self.fc2(x))  # [B, 64]

    def forward(self, x: Tensor) -> Tensor:
        """[B, 3, 28, 28] in [-1, 1] -> logits [B, 10]."""
        return self.fc3(self.features(x))


def _conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class DigitNet(nn.Module):
    """Small BatchNorm CNN (141k parameters) that scores generated digits more reliably than LeNet."""

    feature_dim = 128

    def __init__(self, num_classes: int = 10, dropout: float = 0.1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            # two convs at full resolution: thin strokes on photo backgrounds need them (+1.5 points on MNIST-M)
            _conv_bn(3, 32), _conv_bn(32, 32), nn.MaxPool2d(2),  # [B, 32, 14, 14]
            _conv_bn(32, 64), _conv_bn(64, 64), nn.MaxPool2d(2),  # [B, 64, 7, 7]
            _conv_bn(64, self.feature_dim), nn.AdaptiveAvgPool2d(1), nn.Flatten(),  # [B, 128]
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.feature_dim, num_classes))

    def features(self, x: Tensor) -> Tensor:
        """[B, 3, 28, 28] in [-1, 1] -> pooled features [B, 128]."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """[B, 3, 28, 28] in [-1, 1] -> logits [B, 10]."""
        return self.head(self.body(x))


def load_course_classifier(path: Path) -> LeNet:
    """Load the course's `Classifier.pth` (a dict with 'state_dict', or a bare state dict) into LeNet."""
    from src.models.face_unet import load_strict
    from src.models.weights import read_state

    ckpt = read_state(Path(path), "the course's MNIST-M classifier (a dict of tensors or {'state_dict': ...})")
    state = ckpt.get("state_dict", ckpt)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: its 'state_dict' is a {type(state).__name__}; expected a dict of tensors")
    model = load_strict(LeNet(), state, Path(path), "the course's LeNet (Classifier.pth)")
    return model.eval()


@torch.no_grad()
def classify(model: nn.Module, images: Tensor, batch_size: int = 500) -> Tensor:
    """Predict digits for uint8 images [N, 3, 28, 28] -> int64 [N], normalising as the grader does."""
    model.eval()
    preds = [model(normalize_images(chunk)).argmax(dim=1) for chunk in images.split(batch_size)]
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.int64)


def random_affine(x: Tensor, generator: torch.Generator, max_shift: float = 2.0,
                  max_rot_deg: float = 10.0, max_scale: float = 0.1) -> Tensor:
    """Small random shift/rotation/scale per image (no flips: digits are not mirror-symmetric)."""
    b, _, h, _ = x.shape  # [B, C, H, W], H == W
    u = torch.rand(b, 4, generator=generator) * 2 - 1  # [B, 4] in [-1, 1]
    angle = u[:, 0] * math.radians(max_rot_deg)
    scale = 1 + u[:, 1] * max_scale
    shift = u[:, 2:] * (2 * max_shift / h)  # pixels -> affine_grid's [-1, 1] coordinates
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # [B, H, W, 2]
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


_CHANNEL_ORDERS = torch.tensor([[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])


def random_colour(x: Tensor, generator: torch.Generator) -> Tensor:
    """Random channel order and inversion per image: digit colours vary freely in MNIST-M and SVHN."""
    b = x.shape[0]  # x: [B, 3, H, W] in [-1, 1]
    order = _CHANNEL_ORDERS[torch.randint(len(_CHANNEL_ORDERS), (b,), generator=generator)]  # [B, 3]
    x = x[torch.arange(b)[:, None], order]
    sign = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)  # [B]
    return x * sign[:, None, None, None]


def _accuracy(model: nn.Module, data: tuple[Tensor, Tensor]) -> float:
    images, labels = data
    return (classify(model, images) == labels).float().mean().item()


def train_classifier(train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor], *, epochs: int,
                     batch_size: int, lr: float, seed: int, num_classes: int = 10) -> tuple[nn.Module, float]:
    """Train a DigitNet on uint8 images [N, 3, H, W] and int64 labels [N]; return it (eval) and val accuracy."""
    # Init and dropout draw from the global RNG: seed a forked copy so the caller's state is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitNet(num_classes)
        val_acc = _fit(model, train, val, epochs=epochs, batch_size=batch_size, lr=lr,
                       generator=torch.Generator().manual_seed(seed))
    return model.eval(), val_acc


def _fit(model: nn.Module, train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor], *, epochs: int,
         batch_size: int, lr: float, generator: torch.Generator) -> float:
    """AdamW + one-cycle schedule with random-affine augmentation; returns the final val accuracy."""
    images, labels = train
    steps_per_epoch = math.ceil(len(images) / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch)
    val_acc = float("nan")
    for epoch in range(epochs):
        model.train()
        total_loss = 0.0
        for idx in torch.randperm(len(images), generator=generator).split(batch_size):
            x = random_affine(random_colour(normalize_images(images[idx]), generator), generator)  # [b, 3, 28, 28]
            loss = F.cross_entropy(model(x), labels[idx], label_smoothing=0.05)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(idx)
        val_acc = _accuracy(model, val)
        log.info("classifier epoch %d/%d: train loss %.4f, val acc %.4f",
                 epoch + 1, epochs, total_loss / len(images), val_acc)
    return val_acc


def classifier_cache_dir(data_root: Path, cache_dir: Path, domain: str, *, epochs: int, batch_size: int,
                         lr: float, seed: int) -> Path:
    """Folder `cache_dir/classifiers/<key>` holding `<domain>.pt` and `<domain>.json`, the key naming the data
    (its path and split files), the recipe and these settings: other data or settings, another folder."""
    settings = (f"{Path(data_root).resolve()}|v{RECIPE_VERSION}|e{epochs}|b{batch_size}|lr{lr}|s{seed}"
                f"|{domain}|{_data_fingerprint(Path(data_root) / domain)}")
    return Path(cache_dir) / "classifiers" / hashlib.sha1(settings.encode()).hexdigest()[:12]


def _data_fingerprint(domain_dir: Path) -> str:
    """Hash of the split files, so that other data at the same path gets a classifier of its own."""
    digest = hashlib.sha1()
    for name in ("train.csv", "val.csv"):
        file = domain_dir / name
        digest.update(file.read_bytes() if file.is_file() else b"")
    return digest.hexdigest()[:12]


def _train_into(folder: Path, data_root: Path, domain: str, *, epochs: int, batch_size: int, lr: float,
                seed: int) -> None:
    """Train one domain's DigitNet and write `<domain>.pt` and `<domain>.json` (its val accuracy) to folder."""
    from src.data.digits import load_digit_split  # imported here: only training needs the data loader

    start = time.perf_counter()
    train = load_digit_split(Path(data_root) / domain, "train")
    val = load_digit_split(Path(data_root) / domain, "val")
    model, val_acc = train_classifier(train, val, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    info = {"domain": domain, "val_acc": val_acc, "n_train": len(train[1]), "n_val": len(val[1]),
            "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
            "seconds": round(time.perf_counter() - start, 1),
            "data_fingerprint": _data_fingerprint(Path(data_root) / domain),
            "data_root": str(Path(data_root).resolve())}
    torch.save(model.state_dict(), folder / f"{domain}.pt")
    (folder / f"{domain}.json").write_text(json.dumps(info, indent=2))


def _load_cached(folder: Path, domain: str) -> tuple[nn.Module, float]:
    """(model, val_acc) of a finished cache folder."""
    weights, report = folder / f"{domain}.pt", folder / f"{domain}.json"
    try:
        val_acc = float(json.loads(report.read_text())["val_acc"])
        with torch.random.fork_rng(devices=[]):  # the init draws would shift the caller's global RNG
            model = DigitNet()
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    except Exception as err:  # a missing, truncated or edited file: torch and json raise several types
        raise CheckpointError(f"{weights}: cached classifier cannot be loaded ({type(err).__name__}); expected a "
                              f"DigitNet state dict and {report.name}: delete {folder} to retrain") from err
    return model.eval(), val_acc


def load_or_train_classifier(data_root: Path, cache_dir: Path, domain: str, *, epochs: int, batch_size: int,
                             lr: float, seed: int) -> tuple[nn.Module, float]:
    """A DigitNet for one domain of a course-layout data root and its val accuracy, trained once and cached."""
    folder = classifier_cache_dir(data_root, cache_dir, domain, epochs=epochs, batch_size=batch_size, lr=lr,
                                  seed=seed)
    build_once(folder, lambda tmp: _train_into(tmp, data_root, domain, epochs=epochs, batch_size=batch_size,
                                               lr=lr, seed=seed), what=f"{domain} classifier")
    return _load_cached(folder, domain)


def load_or_train_classifiers(data_root: Path, cache_dir: Path, *, domains: tuple[str, ...], epochs: int,
                              batch_size: int, lr: float, seed: int, min_val_acc: float) -> dict[str, nn.Module]:
    """One DigitNet per domain (load_or_train_classifier), warning about those below min_val_acc."""
    models: dict[str, nn.Module] = {}
    for domain in domains:
        models[domain], val_acc = load_or_train_classifier(data_root, cache_dir, domain, epochs=epochs,
                                                           batch_size=batch_size, lr=lr, seed=seed)
        log.info("%s classifier: val acc %.4f", domain, val_acc)
        if val_acc < min_val_acc:
            log.warning("%s classifier: val acc %.4f is below %.4f; its scores of generated digits are less reliable",
                        domain, val_acc, min_val_acc)
    return models


def cached_val_accuracies(data_root: Path, cache_dir: Path, *, domains: tuple[str, ...], epochs: int,
                          batch_size: int, lr: float, seed: int) -> dict[str, float]:
    """Val accuracy of each cached classifier, as `{domain}/classifier_val_acc` metric keys."""
    accs = {}
    for domain in domains:
        folder = classifier_cache_dir(data_root, cache_dir, domain, epochs=epochs, batch_size=batch_size, lr=lr,
                                      seed=seed)
        report = folder / f"{domain}.json"
        if report.is_file():
            accs[f"{domain}/classifier_val_acc"] = float(json.loads(report.read_text())["val_acc"])
    return accs
