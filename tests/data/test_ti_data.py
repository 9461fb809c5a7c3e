"""The course's textual_inversion folder: input.json + concept folders; the embedded default."""
import json

import numpy as np
import pytest

from src.data.ti_data import (EMBEDDED_BASELINES, EMBEDDED_CONCEPTS, ConceptDataset, initializer_tokens,
                              load_concepts, load_ti_concepts, template_kind, write_embedded_ti)
from src.errors import ConfigError, DataError


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
    assert [c.initializer for c in concepts] == ["star", "diamond"]
    assert concepts[0].clip_prompts[1] == "An outlined orange star on stripes."
    assert concepts[0].baselines == [tuple(map(float, b)) for b in EMBEDDED_BASELINES[0]]


def test_embedded_references_show_the_concepts_colour_on_varied_backgrounds(tmp_path):
    from PIL import Image

    from src.data.embedded_scenes import figure_colour

    root = write_embedded_ti(tmp_path / "ti", size=64)
    for cid, concept in enumerate(EMBEDDED_CONCEPTS):
        images = [np.asarray(Image.open(root / str(cid) / f"{k}.png")) for k in range(5)]
        assert all(x.shape == (64, 64, 3) for x in images)
        assert [figure_colour(x) for x in images] == [concept["colour"]] * 5
        corners = {tuple(x[:4, :4].reshape(-1, 3).mean(0).round()) for x in images}
        assert len(corners) >= 3  # not one background


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


def test_embedded_concepts_are_built_once_and_filtered(tmp_path):
    concepts = load_ti_concepts(None, cache_dir=tmp_path, size=16, wanted=[1])
    folder = tmp_path / "ti" / "scenes_v1_s0_16"
    assert [c.id for c in concepts] == ["1"] and concepts[0].images[0].parent == folder / "1"
    stamp = (folder / "input.json").stat().st_mtime_ns
    assert [c.id for c in load_ti_concepts(None, cache_dir=tmp_path, size=16)] == ["0", "1"]
    assert (folder / "input.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    with pytest.raises(ConfigError, match=r"task.concepts=\['7'\]: \['7'\] not in input.json"):
        load_ti_concepts(None, cache_dir=tmp_path, size=16, wanted=[7])
    with pytest.raises(DataError, match="data.root=.*: no such folder"):
        load_ti_concepts(str(tmp_path / "nope"), cache_dir=tmp_path)


def test_template_kind_and_initializers(embedded):
    cat, style = load_concepts(embedded)
    assert [template_kind("auto", c) for c in (cat, style)] == ["object", "object"]
    style.prompts = ["A circle in the style of <new2>."]  # as the course's concept 1
    assert [template_kind("auto", c) for c in (cat, style)] == ["object", "style"]
    assert template_kind("object", style) == "object"
    assert initializer_tokens([cat, style], ["object", "style"], None) == ["star", "diamond"]
    cat.initializer = style.initializer = None
    assert initializer_tokens([cat, style], ["object", "style"], None) == ["object", "painting"]
    assert initializer_tokens([cat, style], ["object", "style"], ["dog", "art"]) == ["dog", "art"]
    with pytest.raises(ConfigError, match="task.initializer_tokens=\\['dog'\\]: expected one token per concept"):
        initializer_tokens([cat, style], ["object", "style"], ["dog"])
