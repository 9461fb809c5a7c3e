import math
from pathlib import Path

import pytest
import torch

from src.errors import CheckpointError
from src.models.face_unet import FaceUNet, load_strict

FIXTURE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "hw2_face_unet"
needs_fixture = pytest.mark.skipif(not (FIXTURE / "vector.pt").is_file(), reason=f"no fixture at {FIXTURE}")


@pytest.fixture(scope="module")
def course_unet() -> FaceUNet:
    return FaceUNet().eval()  # the course's configuration is the default


def fixture_weights(net: FaceUNet) -> dict[str, torch.Tensor]:
    """The recipe of shared/fixtures/hw2_face_unet/README.md: parameter i from a generator seeded i."""
    state = {}
    for i, (name, p) in enumerate(net.named_parameters()):
        n = p.numel()
        s = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(i))
        if p.dim() >= 2:
            w = s / math.sqrt(n / p.shape[0])
        elif "norm" in name and name.endswith("weight"):
            w = 1 + 0.1 * s
        else:
            w = 0.1 * s
        state[name] = w.reshape(p.shape).float()
    return {**state, "time.0.inv_freq": net.time[0].inv_freq}


@needs_fixture
def test_every_key_shape_and_order_of_the_course_checkpoint(course_unet):
    rows = [line.split("\t") for line in (FIXTURE / "keys.tsv").read_text().splitlines()[1:]]
    state = course_unet.state_dict()
    assert [r[1] for r in rows] == list(state)
    assert [r[2] for r in rows] == ["x".join(map(str, v.shape)) for v in state.values()]
    buffers = [k for k, _ in course_unet.named_buffers()]
    assert buffers == [r[1] for r in rows if r[3] == "buffer"] == ["time.0.inv_freq"]
    assert sum(p.numel() for p in course_unet.parameters()) == 113_673_219


@needs_fixture
def test_reproduces_the_fixture_vector(course_unet):
    vector = torch.load(FIXTURE / "vector.pt", weights_only=True)
    load_strict(course_unet, fixture_weights(course_unet), FIXTURE / "UNet.pt", "the course UNet")
    with torch.no_grad():
        eps = course_unet(vector["x"], vector["t"])
    assert eps.shape == vector["eps"].shape == (2, 3, 64, 64)
    assert (eps - vector["eps"]).abs().max() <= 1e-4


def test_a_small_instance_keeps_the_shape_and_the_naming():
    net = FaceUNet(channel=16, channel_multiplier=(1, 2), n_res_blocks=1, attn_strides=(2,), norm_groups=8)
    x, t = torch.randn(3, 3, 16, 16), torch.tensor([0, 500, 999])
    assert net(x, t).shape == x.shape
    keys = list(net.state_dict())
    assert keys[0] == "time.0.inv_freq" and "down4.attention.qkv.weight" in keys and keys[-1] == "out.2.bias"
    assert "mid1.attention.qkv.weight" in keys and "mid2.attention.qkv.weight" not in keys


def test_strict_load_errors_are_one_line_with_a_few_keys(tmp_path):
    net = FaceUNet(channel=16, channel_multiplier=(1, 2), n_res_blocks=1, attn_strides=(2,), norm_groups=8)
    state = net.state_dict()
    for key in list(state)[1:6]:
        state.pop(key)
    state["up1.resblocks.conv2.weight"] = torch.zeros(1, 2, 3, 3)
    with pytest.raises(CheckpointError) as err:
        load_strict(net, state, tmp_path / "UNet.pt", "FaceUNet(channel=16)")
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'UNet.pt'}: missing keys time.1.weight, time.1.bias, time.3.weight, "
                          "... (5 in all); shape mismatches up1.resblocks.conv2.weight [1, 2, 3, 3] vs ")
    assert msg.endswith("expected FaceUNet(channel=16)") and "\n" not in msg


@needs_fixture
def test_the_course_model_is_recognised_by_the_fixtures_keys_and_shapes():
    from src.models.face_loading import course_shapes, is_course_state

    rows = [line.split("\t") for line in (FIXTURE / "keys.tsv").read_text().splitlines()[1:]]
    shapes = course_shapes()  # built on the meta device: no 113M parameters in memory
    assert list(shapes) == [r[1] for r in rows]
    assert ["x".join(map(str, s)) for s in shapes.values()] == [r[2] for r in rows]
    state = {r[1]: torch.empty(()).expand(*map(int, r[2].split("x"))) for r in rows}
    assert is_course_state(state)
    state["down1.weight"] = torch.empty(()).expand(64, 3, 3, 3)
    assert not is_course_state(state)


def test_a_unet_json_names_the_architecture_and_a_bad_one_is_one_line(tmp_path):
    from src.models.face_loading import load_face_unet, write_architecture

    args = dict(channel=16, channel_multiplier=[1, 2], n_res_blocks=1, attn_strides=[2], norm_groups=8)
    torch.save(FaceUNet(**args).state_dict(), tmp_path / "UNet.pt")
    write_architecture(tmp_path, args)
    model = load_face_unet(tmp_path, (3, 16, 16))
    assert model.image_shape == (3, 16, 16) and model.architecture.endswith(f"from {tmp_path / 'unet.json'}")
    (tmp_path / "unet.json").write_text('{"channel": 16}')
    with pytest.raises(CheckpointError) as err:
        load_face_unet(tmp_path, (3, 16, 16))
    assert str(err.value).startswith(f"{tmp_path / 'unet.json'}: expected") and "\n" not in str(err.value)
