import pytest

from src.cache import build_once


def test_builds_once_and_reuses(tmp_path):
    calls = []

    def build(tmp):
        calls.append(tmp)
        (tmp / "data.txt").write_text("x")

    first = build_once(tmp_path / "artifact", build)
    second = build_once(tmp_path / "artifact", build)
    assert first == second == tmp_path / "artifact" and len(calls) == 1
    assert (first / "data.txt").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["artifact"]  # no private folder left behind


def test_a_crashed_build_leaves_nothing_that_looks_finished(tmp_path):
    def build(tmp):
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        build_once(tmp_path / "artifact", build)
    assert list(tmp_path.iterdir()) == []


def test_first_writer_wins(tmp_path):
    final = tmp_path / "artifact"

    def build(tmp):  # another process publishes while this one builds
        final.mkdir()
        (final / "who.txt").write_text("other")
        (tmp / "who.txt").write_text("me")

    assert (build_once(final, build) / "who.txt").read_text() == "other"
    assert [p.name for p in tmp_path.iterdir()] == ["artifact"]
