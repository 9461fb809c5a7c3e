"""The embedded scenes: seeded bytes, captions that name what is drawn, the colour judge on real pixels."""
import numpy as np

from src.data.clip_data import DIGIT_NAMES
from src.data.embedded_digits import digit_pool
from src.data.embedded_scenes import (BACKGROUNDS, COLOURS, FIGURES, SHAPES, caption, figure_colour,
                                      generate_scenes, load_scenes, make_scene)


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_images(tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        (tmp_path / name).mkdir()
        generate_scenes(tmp_path / name, seed=seed, n_train=30, n_val=10)
    for f in ("train.npz", "train.csv", "val.npz", "val.csv"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    a, c = load_scenes(tmp_path / "a", "train"), load_scenes(tmp_path / "c", "train")
    assert a.images.shape == (30, 64, 64, 3) and a.images.dtype == np.uint8 and len(a.captions) == 30
    assert not np.array_equal(a.images, c.images)
    val = load_scenes(tmp_path / "a", "val")
    assert len(val) == 10 and not np.array_equal(val.images[:10], a.images[:10])


def test_captions_name_the_figures_colours_and_background_they_say_they_name(tmp_path):
    (tmp_path / "s").mkdir()
    scenes = load_scenes(generate_scenes(tmp_path / "s", n_train=300, n_val=1), "train")
    assert set(scenes.n_figures.tolist()) == {1, 2}
    for text, n, figures, background in zip(scenes.captions, scenes.n_figures, scenes.figures, scenes.background):
        parts = text.split(" on ")
        assert len(parts) in (1, 2) and (len(parts) == 1 or parts[1] == BACKGROUNDS[background])
        phrases = parts[0].split(" next to ")
        assert len(phrases) == n
        for phrase, (figure, colour, style) in zip(phrases, figures):
            words = phrase.split()
            assert words[-1] == FIGURES[figure]
            assert words[1:-1] in ([], [list(COLOURS)[colour]], ["outlined"], ["outlined", list(COLOURS)[colour]])
            assert ("outlined" in words) == (style == 1)
    # every figure, colour and background occurs; digits are never outlined
    assert set(scenes.figures[:, 0, 0].tolist()) == set(range(len(FIGURES)))
    assert set(scenes.figures[:, 0, 1].tolist()) == set(range(len(COLOURS)))
    assert set(scenes.background.tolist()) == set(range(len(BACKGROUNDS)))
    assert (scenes.figures[scenes.figures[:, :, 0] >= len(SHAPES)][:, 2] == 0).all()


def test_caption_reports_what_it_left_out():
    rng = np.random.default_rng(3)
    named = [caption([(len(SHAPES) + 7, 2, 0), (0, 5, 1)], 1, rng) for _ in range(400)]
    for text, colours, background in named:
        assert text.startswith(("a yellow seven", "a seven"))
        assert ("yellow" in text) == colours[0] and ("purple" in text) == colours[1]
        assert text.endswith(" on gray") == background
    share = np.mean([b for _, _, b in named])
    assert 0.65 < share < 0.85  # the background named three times in four


def test_the_colour_judge_reads_the_colour_of_drawn_figures():
    rng = np.random.default_rng(0)
    strokes = digit_pool("val")
    truth, read = [], []
    for _ in range(400):
        image, _, _, figures = make_scene(rng, strokes, two_p=0.0)
        truth.append(list(COLOURS)[figures[0][1]])
        read.append(figure_colour(image))
    assert np.mean(np.array(truth) == np.array(read)) >= 0.99
    assert set(read) == set(COLOURS)
    # a flat colour on a dark background, and the judge is not fooled by the background's pattern
    flat = np.full((64, 64, 3), 20, np.uint8)
    flat[20:44, 20:44] = COLOURS["green"]
    assert figure_colour(flat) == "green"
    flat[20:44, 20:44] = (235, 235, 235)
    assert figure_colour(flat) == "white"


def test_digit_figures_are_named_by_their_word():
    assert FIGURES[len(SHAPES):] == DIGIT_NAMES
