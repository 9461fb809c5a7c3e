"""The course's textual_inversion folder: input.json + concept folders; the embedded default."""
import json

import pytest

from src.data.ti_data import ConceptDataset, load_concepts, write_embedded_ti
from src.errors import DataError


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    return write_embedded_ti(tmp_path_factory.mktemp("ti") / "textual_inversion", size=32)


def test_embedded_default_is_in_the_course_format(embedded):
    spec = json.loads((embedded / "input.json").read_text())
    assert set(spec) == {"0", "1"}
    for entry in spec.values():
        assert {"src_image", "token_name", "prompt", "prompt_4_clip_eval", "baseline"} <= set(entry)
    concepts = load_concepts(embedded)
    assert [c.token for c in concepts] == ["<new1>", "<new2>"]
    assert all(len(c.images) == 5 and len(c.prompts) == len(c.baselines) == 2 for c in concepts)
    assert all(c.token in p for c in concepts for p in c.prompts)
    assert concepts[0].baselines[0] == (79.0, 34.0)


def test_dataset_fills_a_template_and_scales_images(embedded):
    ds = ConceptDataset(load_concepts(embedded)[0].images, ("a photo of a {}",), "<new1>", size=16, repeats=3)
    x, text = ds[4]
    assert len(ds) == 15 and x.shape == (3, 16, 16) and -1 <= float(x.min()) <= float(x.max()) <= 1
    assert text == "a photo of a <new1>"


@pytest.mark.parametrize("edit,match", [
    (lambda root: (root / "input.json").unlink(), "input.json: no such file"),
    (lambda root: (root / "input.json").write_text("{not json"), "not valid JSON"),
    (lambda root: __import__("shutil").rmtree(root / "1"), "missing image folder of concept '1'"),
    (lambda root: [p.unlink() for p in (root / "0").iterdir()], "no images"),
    (lambda root: (root / "input.json").write_text(json.dumps({"0": {"token_name": "<a>"}})), "must have keys"),
])
def test_bad_course_folders_are_one_line_data_errors(tmp_path, edit, match):
    root = write_embedded_ti(tmp_path / "ti", size=16)
    edit(root)
    with pytest.raises(DataError, match=match) as err:
        load_concepts(root)
    assert "\n" not in str(err.value)


def test_mismatched_prompt_counts_are_reported(tmp_path):
    root = write_embedded_ti(tmp_path / "ti", size=16)
    spec = json.loads((root / "input.json").read_text())
    spec["0"]["baseline"] = [[79, 34]]
    (root / "input.json").write_text(json.dumps(spec))
    with pytest.raises(DataError, match="2 prompts, 2 prompt_4_clip_eval and 1 baselines"):
        load_concepts(root)
