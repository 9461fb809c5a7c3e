"""The course grader's SVHN classifier (detectors' resnet34_svhn) without timm: timm's parameter names and
shapes, timm's outputs, and loading its weights from a file or by Hub id as the grader does."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from src.errors import CheckpointError
from src.eval.resnet_svhn import ResNet34SVHN, load_svhn_classifier

REFERENCE = Path(__file__).parent / "resnet34_svhn"


def _reference_module():
    spec = importlib.util.spec_from_file_location("make_reference", REFERENCE / "make_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _timm_keys() -> dict[str, tuple[int, ...]]:
    lines = [line.split("\t") for line in (REFERENCE / "keys.tsv").read_text().splitlines() if not line.startswith("#")]
    return {key: tuple(int(n) for n in shape.split(",") if n) for key, shape in lines}


def test_parameter_names_and_shapes_are_timms_in_timms_order():
    ours = {k: tuple(v.shape) for k, v in ResNet34SVHN().state_dict().items()}
    assert list(ours.items()) == list(_timm_keys().items())
    assert len(ours) == 218 and sum(v.numel() for v in ResNet34SVHN().parameters()) == 21_282_122


def test_outputs_equal_timms_on_the_same_weights():
    ref = _reference_module()
    model = ResNet34SVHN()
    model.load_state_dict(ref.seeded_state(_timm_keys()))
    with torch.no_grad():
        logits = model.eval()(ref.reference_input())
    expected = torch.load(REFERENCE / "vector.pt", weights_only=True)["logits"]
    assert logits.shape == (2, 10)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)


def test_loads_a_state_dict_file_or_its_folder(tmp_path):
    state = _reference_module().seeded_state(_timm_keys())
    (tmp_path / "w").mkdir()
    torch.save(state, tmp_path / "w" / "pytorch_model.bin")
    for where in (tmp_path / "w" / "pytorch_model.bin", tmp_path / "w"):
        model = load_svhn_classifier(str(where))
        assert not model.training and torch.equal(model.fc.weight, state["fc.weight"])


@pytest.mark.parametrize("content,message", [
    (lambda s: {k: v for k, v in s.items() if k != "fc.bias"},
     r"missing keys fc.bias; expected the state dict of resnet34_svhn"),
    (lambda s: {**s, "fc.weight": torch.zeros(100, 512)},
     r"shape mismatches fc.weight \[100, 512\] vs \[10, 512\]; expected the state dict of resnet34_svhn"),
    (lambda s: [1, 2], r"holds a list; expected a state dict of resnet34_svhn"),
])
def test_a_wrong_file_is_one_line_naming_it(tmp_path, content, message):
    path = tmp_path / "pytorch_model.bin"
    torch.save(content(_reference_module().seeded_state(_timm_keys())), path)
    with pytest.raises(CheckpointError, match=message) as err:
        load_svhn_classifier(str(path))
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_a_pickled_object_is_refused_not_executed(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)  # a module: loading it would unpickle code
    with pytest.raises(CheckpointError, match=r"cannot be read by torch.load\(weights_only=True\)"):
        load_svhn_classifier(str(path))


def test_offline_and_not_cached_is_one_line_naming_the_key_and_the_id():
    with pytest.raises(CheckpointError) as err:
        load_svhn_classifier("edadaltocg/resnet34_svhn")
    assert str(err.value).startswith("judge.svhn_weights='edadaltocg/resnet34_svhn': not in the local Hugging Face "
                                     "cache and HF_HUB_OFFLINE=1 forbids downloading it; pass judge.svhn_weights=")
    assert "\n" not in str(err.value)


def test_a_missing_path_says_what_was_expected(tmp_path):
    with pytest.raises(CheckpointError, match=r"no such file; expected the grader's resnet34_svhn pytorch_model.bin"):
        load_svhn_classifier(str(tmp_path / "nowhere" / "w.bin"))
