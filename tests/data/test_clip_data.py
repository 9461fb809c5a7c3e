import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from src.data.clip_data import (DIGIT_NAMES, ClipPixels, open_rgb, read_course_set, read_embedded_digits,
                                read_image_set)
from src.errors import ConfigError, DataError


def write_png(path: Path, h: int = 12, w: int = 16, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def one_line(err) -> str:
    assert "\n" not in str(err.value)
    return str(err.value)


def test_course_layout_labels_come_from_the_class_id_prefix(tmp_path, write_clip_course):
    root = write_clip_course(tmp_path / "clip_zeroshot", {"0": "apple", "1": "bee", "10": "cat", "2": "dog"},
                        ["10_0.png", "0_1.png", "2_7.png", "1_0.png", "10_3.png", "0_0.png"])
    (root / "val" / "notes.txt").write_text("not an image")
    images = read_image_set(root)
    assert images.class_names == ("apple", "bee", "dog", "cat")  # ordered by integer id
    got = {images.relative(i): images.class_names[y] for i, y in enumerate(images.labels)}
    assert got == {"val/0_0.png": "apple", "val/0_1.png": "apple", "val/1_0.png": "bee", "val/10_0.png": "cat",
                   "val/10_3.png": "cat", "val/2_7.png": "dog"}
    assert read_course_set(root) == images


@pytest.mark.parametrize("breakage,match", [
    ("no_id2label", r"id2label.json: no such file"),
    ("unknown_id", r"val/7_0.png: class id 7 is not in .*id2label.json"),
    ("bad_name", r"val/cat.png: file name is not \{classid\}_\{n\}.png"),
    ("empty_val", r"val: no images"),
    ("bad_json", r"id2label.json: not valid JSON"),
    ("non_integer_id", r"id2label.json: entry 'a'"),
    ("no_val", r"val: no such folder"),
])
def test_course_layout_errors_name_the_file(tmp_path, write_clip_course, breakage, match):
    root = write_clip_course(tmp_path / "c", {"0": "apple", "1": "bee"}, ["0_0.png", "1_0.png"])
    if breakage == "no_id2label":
        (root / "id2label.json").unlink()
    elif breakage == "unknown_id":
        write_png(root / "val" / "7_0.png")
    elif breakage == "bad_name":
        write_png(root / "val" / "cat.png")
    elif breakage == "empty_val":
        for p in (root / "val").iterdir():
            p.unlink()
    elif breakage == "bad_json":
        (root / "id2label.json").write_text("{0: apple")
    elif breakage == "non_integer_id":
        (root / "id2label.json").write_text(json.dumps({"a": "apple"}))
    elif breakage == "no_val":
        for p in (root / "val").iterdir():
            p.unlink()
        (root / "val").rmdir()
    with pytest.raises(DataError, match=match) as err:
        read_image_set(root, "course")
    one_line(err)


def test_folder_per_class_layout_is_detected(tmp_path):
    for cls, n in (("zebra", 2), ("ant", 3)):
        for i in range(n):
            write_png(tmp_path / cls / ("sub" if i == 2 else "") / f"img{i}.jpg", seed=i)
    (tmp_path / ".hidden").mkdir()
    images = read_image_set(tmp_path)
    assert images.class_names == ("ant", "zebra")
    assert images.labels == (0, 0, 0, 1, 1)
    assert images.relative(2) == "ant/sub/img2.jpg"


def test_folder_layout_errors(tmp_path):
    write_png(tmp_path / "ant" / "a.png")
    (tmp_path / "bee").mkdir()
    with pytest.raises(DataError, match=r"bee: no images") as err:
        read_image_set(tmp_path)
    one_line(err)
    with pytest.raises(DataError, match="no class folders"):
        read_image_set(tmp_path / "ant")
    with pytest.raises(DataError, match="no such folder"):
        read_image_set(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="data.layout='imagenet'"):
        read_image_set(tmp_path, "imagenet")


def test_the_schema_checks_the_layouts_the_reader_knows():
    from src.config.clip import LAYOUTS as SCHEMA_LAYOUTS
    from src.data.clip_data import LAYOUTS

    assert SCHEMA_LAYOUTS == LAYOUTS


def test_hw2_data_root_points_to_its_clip_zeroshot(tmp_path, write_clip_course):
    write_clip_course(tmp_path / "clip_zeroshot", {"0": "apple"}, ["0_0.png"])
    with pytest.raises(DataError, match=r"expected data.root=.*clip_zeroshot"):
        read_image_set(tmp_path)


def test_embedded_digits_val_set_has_digit_names(cache_dir, tiny_overrides):
    n = {o.split("=")[0]: int(o.split("=")[1]) for o in tiny_overrides if o.startswith("data.embedded.")}
    images = read_embedded_digits(cache_dir, seed=0, n_train=n["data.embedded.n_train"],
                                  n_val=n["data.embedded.n_val"], domains=["mnistm", "svhn"])
    assert images.class_names == DIGIT_NAMES == ("zero", "one", "two", "three", "four", "five", "six", "seven",
                                                 "eight", "nine")
    assert len(images) == 2 * n["data.embedded.n_val"] and set(images.labels) == set(range(10))
    assert images.relative(0).startswith("mnistm/data/") and images.relative(len(images) - 1).startswith("svhn/")
    with pytest.raises(ConfigError, match="data.embedded.domains"):
        read_embedded_digits(cache_dir, seed=0, n_train=10, n_val=10, domains=["mnist"])


@pytest.mark.parametrize("processor_kwargs", [
    {},  # CLIP ViT-B/32's: shortest edge 224, crop 224
    {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}},
    {"size": {"height": 40, "width": 36}, "crop_size": {"height": 33, "width": 31}},
])
def test_pixels_equal_the_image_processors(tmp_path, processor_kwargs):
    """Same pixel_values as CLIPImageProcessor for any size, mode and crop larger than the image."""
    from transformers import CLIPImageProcessor

    processor = CLIPImageProcessor(**processor_kwargs)
    pixels = ClipPixels(processor)
    rng = np.random.default_rng(0)
    for i, (h, w, mode) in enumerate([(28, 28, "RGB"), (30, 47, "RGB"), (300, 200, "RGB"), (17, 9, "L"),
                                      (50, 60, "RGBA"), (225, 300, "P")]):
        image = Image.fromarray(rng.integers(0, 255, (h, w, 4 if mode == "RGBA" else 3), dtype=np.uint8))
        path = tmp_path / f"{i}.png"
        (image if mode in ("RGB", "RGBA") else image.convert(mode)).save(path)
        ref = processor(images=[Image.open(path)], return_tensors="pt")["pixel_values"]  # [1, 3, H, W]
        crop = pixels.crop_uint8(open_rgb(path))
        assert crop.dtype == np.uint8
        x, label, index = pixels.collate([(crop, 3, i), (crop, 4, i + 1)])
        assert torch.equal(x[:1], ref) and torch.equal(x[1], x[0])
        assert label.tolist() == [3, 4] and index.tolist() == [i, i + 1]


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "0_0.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match="0_0.png: unreadable image"):
        open_rgb(bad)
