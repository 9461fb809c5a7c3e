import json

from src.runtime import is_main_process, write_json_atomic


def test_write_json_atomic_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = write_json_atomic({"b": 2.0, "a": 1}, tmp_path / "m" / "metrics.json")
    write_json_atomic({"a": 3}, path)
    assert json.loads(path.read_text()) == {"a": 3}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_only_rank_zero_is_main(monkeypatch):
    for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.delenv(var, raising=False)
    assert is_main_process()
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not is_main_process()
    monkeypatch.setenv("RANK", "0")
    assert is_main_process()


def test_slurm_task_zero_is_main_when_a_job_has_several_tasks(monkeypatch):
    for var in ("RANK", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_PROCID", "2")
    assert not is_main_process()
    monkeypatch.setenv("SLURM_PROCID", "0")
    assert is_main_process()
    monkeypatch.setenv("SLURM_NTASKS", "1")
    monkeypatch.setenv("SLURM_PROCID", "2")  # a job array's tasks are separate runs: each is main
    assert is_main_process()


def test_torch_threads_follow_the_slurm_allocation(monkeypatch):
    import torch

    from src.runtime import match_threads_to_allocation

    before = torch.get_num_threads()
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert match_threads_to_allocation() is None and torch.get_num_threads() == before
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    try:
        assert match_threads_to_allocation() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
