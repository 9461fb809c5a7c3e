"""Progress of a long stage (training, sampling, building a cache): a bar in a terminal; without one (a
SLURM log, `> log 2>&1`), a log line every ~30 s with the stage, step/total, rate and time left, which
also lands in the run's run.log."""
from __future__ import annotations

import logging
import sys
import time
from typing import Optional

log = logging.getLogger("difflab.progress")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    """Counts `total` units of one stage. `update(n, loss=...)` advances it; extra numbers are shown too."""

    def __init__(self, stage: str, total: int, *, unit: str = "step", initial: int = 0, every: float = 30.0,
                 enabled: bool = True, terminal: Optional[bool] = None) -> None:
        self.stage, self.total, self.unit, self.every = stage, int(total), unit, every
        self.n = self.start_n = int(initial)
        self.stats: dict[str, float] = {}
        self.enabled = enabled
        self.start = self.last = time.perf_counter()
        terminal = sys.stderr.isatty() if terminal is None else terminal
        self.bar = None
        if enabled and terminal:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, initial=self.n, desc=stage, unit=unit, dynamic_ncols=True)

    def update(self, n: int = 1, **stats: float) -> None:
        """Advance by n units; `stats` (e.g. loss) are shown with the next bar refresh or log line."""
        self.n += n
        self.stats.update(stats)
        if not self.enabled:
            return
        if self.bar is not None:
            if stats:
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in stats.items()}, refresh=False)
            self.bar.update(n)
        elif time.perf_counter() - self.last >= self.every:
            self.last = time.perf_counter()
            log.info("%s", self.line())

    def line(self) -> str:
        """`training: step 450/1500 (30%), loss 0.0312, 3.10 step/s, 5m38s left`."""
        elapsed = time.perf_counter() - self.start
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.stage}: {self.unit} {self.n}/{self.total} ({100 * self.n / max(self.total, 1):.0f}%)"]
        parts += [f"{k} {v:.4g}" for k, v in self.stats.items()]
        parts.append(f"{rate:.2f} {self.unit}/s")
        if rate > 0 and self.n < self.total:
            parts.append(f"{_duration((self.total - self.n) / rate)} left")
        elif self.n >= self.total:
            parts.append(f"done in {_duration(elapsed)}")
        return ", ".join(parts)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.n > self.start_n:
            log.info("%s", self.line())
        self.enabled = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
