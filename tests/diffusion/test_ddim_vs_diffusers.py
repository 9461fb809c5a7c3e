"""Our DDIM loop against diffusers' DDIMScheduler: same settings, UNet, noise and variance noise."""
import pytest
import torch

from src.diffusion.samplers import ddim_sample
from src.diffusion.schedules import NoiseSchedule
from src.models.face_unet import FaceUNet
from src.diffusion.reference import reference_ddim_sample


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return FaceUNet(channel=16, channel_multiplier=(1, 2), n_res_blocks=1, attn_strides=(2,), norm_groups=8).eval()


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("clip_x0", [True, False])
def test_course_ddim_matches_diffusers(unet, eta, clip_x0):
    schedule = NoiseSchedule.linear(1000, 1e-4, 2e-2, timestep_offset=1)
    x_T = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    seen = []
    ours = ddim_sample(lambda x, t, c: unet(x, t), x_T, schedule, num_steps=50, eta=eta, clip_x0=clip_x0,
                       generator=torch.Generator().manual_seed(1), callback=lambda i, t, x: seen.append(t))
    ref = reference_ddim_sample(unet, x_T, schedule, num_steps=50, eta=eta, clip_x0=clip_x0,
                                generator=torch.Generator().manual_seed(1))
    assert seen[:3] == [981, 961, 941] and seen[-1] == 1
    assert (ours - ref).abs().max().item() <= 1e-5


def test_eta_changes_the_result_and_the_same_seed_repeats_it(unet):
    schedule = NoiseSchedule.linear(1000, 1e-4, 2e-2)
    x_T = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    run = lambda eta: ddim_sample(lambda x, t, c: unet(x, t), x_T, schedule, num_steps=10, eta=eta,  # noqa: E731
                                  generator=torch.Generator().manual_seed(1))
    assert torch.equal(run(0.5), run(0.5)) and not torch.equal(run(0.5), run(0.0))
