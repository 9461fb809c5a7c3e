"""Process-level setup shared by every task: seeding, allocator tuning, atomic result files."""
from __future__ import annotations

import ctypes
import json
import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch

# glibc mallopt parameters (malloc.h). Raising the mmap threshold and keeping freed memory avoids a
# page fault storm on large activations: a batch-200 UNet forward 0.70 s -> 0.45 s (STACK_NOTES.md).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def tune_allocator() -> bool:
    """Apply the tuned glibc malloc settings in-process unless DIFFLAB_TUNE_MALLOC=0; True if applied."""
    if os.environ.get("DIFFLAB_TUNE_MALLOC", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    ok = libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)
    ok &= libc.mallopt(_M_TRIM_THRESHOLD, 16 * 1024 * 1024 * 1024)
    ok &= libc.mallopt(_M_TOP_PAD, 512 * 1024 * 1024)
    return bool(ok)


def match_threads_to_allocation() -> int | None:
    """Under SLURM, use as many torch threads as the job has CPUs (SLURM_CPUS_PER_TASK): without cgroups
    torch would start one per core of the node and jobs sharing it would slow each other tenfold."""
    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if not cpus or not cpus.isdigit():
        return None
    import torch

    torch.set_num_threads(int(cpus))
    return int(cpus)


def task_device(trainer) -> torch.device:
    """Where a task samples and scores: the GPU when trainer.accelerator asks for one and there is one."""
    import torch

    return torch.device("cuda" if trainer.accelerator in ("gpu", "cuda") and torch.cuda.is_available() else "cpu")


def end_distributed() -> None:
    """After a DDP fit: leave the process group, so that rank 0 samples and scores alone (collectives such
    as torchmetrics' sync would otherwise wait for ranks that have finished)."""
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def is_main_process() -> bool:
    """False in the extra processes of a distributed (DDP) run, which must not write results."""
    if "RANK" in os.environ:
        return os.environ["RANK"] == "0"
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1:  # DDP under SLURM: one task per GPU
        return os.environ.get("SLURM_PROCID", "0") == "0"
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) from one integer."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PL_GLOBAL_SEED"] = str(seed)


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` on a hidden sibling of `path` (same suffix, so writers that infer the format
    from it work), then rename it into place: readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json_atomic(obj: Any, path: str | Path) -> Path:
    """`obj` as indented JSON with sorted keys, written atomically."""
    return atomic_write(path, lambda p: p.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n"))


def _inductor_cache_is_default() -> bool:
    """TORCHINDUCTOR_CACHE_DIR unset, or set by torch itself to its default (it does so on first use)."""
    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if current is None:
        return True
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    except ImportError:  # another torch layout: leave the setting alone
        return False
    return os.path.abspath(current) == os.path.abspath(default_cache_dir())


class CompiledOrEager:
    """`net` called through torch.compile, falling back to eager `net` (one warning) when compiling fails
    (no C++ compiler, an unsupported op). Attributes are `net`'s. Not an nn.Module: it adds no keys to a
    state dict. Inductor's kernel cache goes to `cache_dir`/inductor unless TORCHINDUCTOR_CACHE_DIR is set,
    so later runs compile in seconds."""

    def __init__(self, net: torch.nn.Module, cache_dir: str | Path | None = None) -> None:
        import torch

        if cache_dir is not None and _inductor_cache_is_default():
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(cache_dir).expanduser().absolute() / "inductor")
        self.net = net
        self._call: Callable = torch.compile(net)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._call is not self.net:
            try:
                return self._call(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - any failure of the compiler: eager gives the same results
                import logging

                from src.errors import first_line

                logging.getLogger(__name__).warning("torch.compile failed (%s: %s); running eager",
                                                    type(err).__name__, first_line(err, 200))
                self._call = self.net
        return self.net(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["net"], name)


def cpu_has_bf16() -> bool:
    """AVX512-BF16 or AMX: the CPUs where bf16 matmuls are native (elsewhere they are emulated, ~10x slower)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def use_bf16(precision: str, device) -> bool:
    """task.sample_precision: fp32, bf16, or auto (bf16 on a CUDA device or a CPU with native bf16)."""
    if precision == "auto":
        return device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())
    return precision == "bf16"


class Bf16Autocast:
    """`net` called under bf16 autocast (convolutions and matmuls in bf16), its output cast back to float32
    so that the sampler's arithmetic stays in float32. Attributes are `net`'s."""

    def __init__(self, net: Any, device_type: str) -> None:
        self.net, self.device_type = net, device_type

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            out = self.net(*args, **kwargs)
        return out.float()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["net"], name)
