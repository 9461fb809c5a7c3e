import json

from src.runtime import is_main_process, write_json_atomic


def test_write_json_atomic_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = write_json_atomic({"b": 2.0, "a": 1}, tmp_path / "m" / "metrics.json")
    write_json_atomic({"a": 3}, path)
    assert json.loads(path.read_text()) == {"a": 3}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_only_rank_zero_is_main(monkeypatch):
    for var in ("RANK", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert is_main_process()
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not is_main_process()
    monkeypatch.setenv("RANK", "0")
    assert is_main_process()
