"""The course's face folder (`hw2_data/face`: noise/NN.pt, GT/NN.png, UNet.pt) and the real faces
of scikit-image's lfw_subset that the embedded default is trained on."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from src.errors import DataError
from src.images import save_png
from src.runtime import atomic_write

NOISE_DIR, GT_DIR, UNET_FILE = "noise", "GT", "UNet.pt"
LAYOUT = "<root>/{noise/00.pt ..., GT/00.png ..., UNet.pt}"
LFW_FACES = 100  # lfw_subset(): the first 100 of its 200 images are faces


def noise_names(root: Path) -> list[str]:
    """Stems of `<root>/noise/*.pt`, sorted ("00", "01", ...); the output files are named after them."""
    folder = Path(root) / NOISE_DIR
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; expected the course layout {LAYOUT}")
    names = sorted(p.stem for p in folder.glob("*.pt"))
    if not names:
        raise DataError(f"{folder}: no noise files; expected 00.pt, 01.pt, ... (the course layout {LAYOUT})")
    return names


def face_folder(root: str | Path) -> Path:
    """data.root as a folder of the course layout (checked file by file when read)."""
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise DataError(f"data.root={str(folder)!r}: no such folder; expected the course layout {LAYOUT}")
    return folder


def load_noise(root: Path, shape: Sequence[int] | None = None) -> tuple[list[str], Tensor]:
    """The noise files as float32 [N, C, H, W]; each file must hold one float tensor of `shape`
    ([1, C, H, W]); None: the first file's, so the noise files set the images' size."""
    names, out = noise_names(root), []
    for name in names:
        path = Path(root) / NOISE_DIR / f"{name}.pt"
        try:
            z = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
            want = f"of shape {list(shape)}" if shape is not None else "[1, C, H, W]"
            raise DataError(f"{path}: unreadable ({type(err).__name__}); expected a tensor saved with "
                            f"torch.save {want}") from err
        if shape is None and isinstance(z, Tensor) and z.dim() == 4 and z.shape[0] == 1:
            shape = list(z.shape)
        if not isinstance(z, Tensor) or shape is None or list(z.shape) != list(shape) or not z.is_floating_point():
            found = f"shape {list(z.shape)} {z.dtype}" if isinstance(z, Tensor) else type(z).__name__
            want = f"of shape {list(shape)}" if shape is not None else "of shape [1, C, H, W]"
            raise DataError(f"{path}: {found}; expected a float tensor {want}")
        out.append(z.float())
    return names, torch.cat(out)


def load_gt(root: Path, names: Sequence[str], shape: Sequence[int]) -> Tensor:
    """`<root>/GT/<name>.png` for every name as uint8 [N, C, H, W]; shape is one image's [C, H, W]."""
    images = []
    for name in names:
        path = Path(root) / GT_DIR / f"{name}.png"
        if not path.is_file():
            raise DataError(f"{path}: no such file; expected the ground truth (DDIM, eta=0) of "
                            f"{NOISE_DIR}/{name}.pt, or task.score=false to skip the MSE")
        try:
            with Image.open(path) as image:
                arr = np.asarray(image.convert("RGB" if shape[0] == 3 else "L"))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise DataError(f"{path}: unreadable image ({err}); expected a PNG") from err
        img = torch.from_numpy(arr.copy()).reshape(arr.shape[0], arr.shape[1], -1).permute(2, 0, 1)
        if list(img.shape) != list(shape):
            raise DataError(f"{path}: image of {img.shape[2]}x{img.shape[1]}; expected {shape[2]}x{shape[1]} "
                            f"(the size of the generated images)")
        images.append(img)
    return torch.stack(images)


def lfw_faces(size: int) -> Tensor:
    """The 100 faces of lfw_subset() (25x25 grey), resized bicubically to size x size and repeated to
    3 channels: float32 [100, 3, size, size] in [-1, 1]."""
    from skimage.data import lfw_subset

    faces = lfw_subset()[:LFW_FACES].astype(np.float32)  # [100, 25, 25] in [0, 1]
    resized = [np.asarray(Image.fromarray(f, mode="F").resize((size, size), Image.BICUBIC)) for f in faces]
    x = torch.from_numpy(np.clip(np.stack(resized), 0.0, 1.0))[:, None] * 2 - 1  # [100, 1, size, size]
    return x.repeat(1, 3, 1, 1).contiguous()


def write_noise(root: Path, count: int, shape: Sequence[int], seed: int) -> list[str]:
    """`<root>/noise/00.pt ...`: `count` standard normal float32 tensors of `shape`, drawn in order
    from one generator seeded by `seed`."""
    folder = Path(root) / NOISE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    names = [f"{i:02d}" for i in range(count)]
    for name in names:
        torch.save(torch.randn(list(shape), generator=g), folder / f"{name}.pt")
    return names


def write_images(folder: Path, names: Sequence[str], images: Tensor) -> None:
    """uint8 [N, C, H, W] -> `<folder>/<name>.png`, each written beside and renamed into place."""
    for name, img in zip(names, images):
        atomic_write(folder / f"{name}.png", lambda p: save_png(img, p))
