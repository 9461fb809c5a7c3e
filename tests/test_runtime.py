import json

import pytest
import torch

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


def _tiny_unet():
    from src.models.conditional_unet import ConditionalUNet

    torch.manual_seed(0)
    return ConditionalUNet(image_size=8, in_channels=3, num_classes=10, num_domains=2, block_out_channels=[8, 16],
                           layers_per_block=1, attention_levels=[False, False], norm_num_groups=4).eval()


@pytest.mark.slow
def test_compiled_sampling_net_matches_eager_and_caches_its_kernels(tmp_path, monkeypatch):
    from src.runtime import CompiledOrEager

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    net = _tiny_unet()
    x, t, c = torch.randn(4, 3, 8, 8), torch.tensor([1, 10, 100, 999]), torch.tensor([[1, 0], [2, 1], [3, 0], [10, 2]])
    fast = CompiledOrEager(net, tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(fast(x, t, c), net(x, t, c), rtol=1e-4, atol=1e-4)
    assert fast._call is not net  # compiled, not fallen back
    assert fast.null_cond.tolist() == net.null_cond.tolist() and "_orig_mod" not in "".join(net.state_dict())
    assert any((tmp_path / "inductor").rglob("*.py"))  # inductor's generated kernels, in difflab's cache


def test_a_failing_compiler_falls_back_to_eager_with_one_warning(monkeypatch, caplog):
    from src.runtime import CompiledOrEager

    def broken(*args, **kwargs):
        raise RuntimeError("Compiler: cc is not found")

    monkeypatch.setattr(torch, "compile", lambda net: broken)
    net = _tiny_unet()
    x, t, c = torch.randn(2, 3, 8, 8), torch.tensor([5, 50]), torch.tensor([[1, 0], [2, 1]])
    fast = CompiledOrEager(net)
    with torch.no_grad(), caplog.at_level("WARNING"):
        out = [fast(x, t, c) for _ in range(2)]
    assert torch.equal(out[0], net(x, t, c)) and torch.equal(out[1], out[0])
    assert [r.getMessage() for r in caplog.records] == [
        "torch.compile failed (RuntimeError: Compiler: cc is not found); running eager"]


def test_bf16_is_used_where_asked_or_native():
    from src.runtime import cpu_has_bf16, use_bf16

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert (use_bf16("fp32", cpu), use_bf16("fp32", cuda), use_bf16("bf16", cpu)) == (False, False, True)
    assert use_bf16("auto", cuda) and use_bf16("auto", cpu) == cpu_has_bf16()


def test_bf16_autocast_net_runs_in_bf16_and_returns_float32():
    from src.runtime import Bf16Autocast

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.SiLU(), torch.nn.Conv2d(8, 3, 1))
    x = torch.randn(4, 3, 16, 16)
    wrapped = Bf16Autocast(net, "cpu")
    with torch.no_grad():
        full, half = net(x), wrapped(x)
    assert half.dtype == torch.float32 and half.shape == full.shape
    assert not torch.equal(half, full)  # computed in bf16 ...
    assert torch.allclose(half, full, atol=0.05, rtol=0.05)  # ... to bf16's precision
    assert next(wrapped.parameters()) is next(net.parameters()) and wrapped.training == net.training  # the net's
