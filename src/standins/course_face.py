"""A course-layout face folder around a random UNet of the course's architecture (FaceUNet's defaults:
113.7M parameters) at 256x256: UNet.pt (a plain state dict, as the course ships it), noise/NN.pt and GT/NN.png.
The weights follow the recipe of shared/fixtures/hw2_face_unet (parameter i from a generator seeded i), so
the numbers are the fixture's; the GT images are those of our own DDIM (eta 0, `gt_steps`)."""
from __future__ import annotations

from pathlib import Path

import torch

from src.data.faces import GT_DIR, UNET_FILE, load_noise, write_images, write_noise
from src.models.face_unet import FaceUNet


def course_face_weights(net: FaceUNet) -> FaceUNet:
    """Set `net`'s parameters by the fixture's recipe: float64 normal draws from a generator seeded with the
    parameter's index, scaled by fan-in (matrices), around 1 (norm weights) or by 0.1 (the rest)."""
    with torch.no_grad():
        for i, (name, p) in enumerate(net.named_parameters()):
            s = torch.randn(p.numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(i))
            if p.dim() >= 2:
                w = s / (p.numel() / p.shape[0]) ** 0.5
            elif "norm" in name and name.endswith("weight"):
                w = 1 + 0.1 * s
            else:
                w = 0.1 * s
            p.copy_(w.reshape(p.shape).float())
    return net


def write_course_face_folder(folder: str | Path, *, image_size: int = 256, n_noise: int = 1, seed: int = 0,
                             gt_steps: int = 2) -> Path:
    """<folder>/{UNet.pt, noise/NN.pt, GT/NN.png} in the course layout; returns the folder."""
    from src.diffusion.reference import reference_ddim_sample
    from src.diffusion.schedules import NoiseSchedule
    from src.images import to_uint8

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    net = course_face_weights(FaceUNet()).eval()
    torch.save(net.state_dict(), folder / UNET_FILE)
    shape = (1, 3, image_size, image_size)
    write_noise(folder, n_noise, shape, seed=seed)
    names, noise = load_noise(folder, shape)
    gt = reference_ddim_sample(net, noise, NoiseSchedule.linear(1000, 1e-4, 2e-2), num_steps=gt_steps, eta=0.0)
    write_images(folder / GT_DIR, names, to_uint8(gt))
    return folder
