"""A DataLoader that resumes mid-epoch, so that a run restarted from a checkpoint (a SLURM requeue)
trains on exactly the batches an uninterrupted run would."""
from __future__ import annotations

from typing import Any, Iterator

from torch.utils.data import DataLoader


class ResumableLoader(DataLoader):
    """A DataLoader with the state_dict/load_state_dict pair that Lightning saves in its checkpoints.

    The state is the shuffling generator's state at the start of the current pass and the number of
    batches handed out since. Loading it replays the same permutation and skips those batches. Give it a
    seeded `generator` when shuffling; without one the order cannot be replayed.

    A pass that is abandoned before it hands out a batch leaves no trace: the next `iter()` replays it.
    Lightning needs this when it resumes from a checkpoint written after an epoch's last batch: it makes an
    iterator while restoring, then discards it and makes another for the next epoch.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pass_start: Any = None  # generator state before this pass drew anything
        self._served = 0
        self._skipped = 0  # batches the current pass skipped to resume
        self._resume: dict | None = None

    def __iter__(self) -> Iterator:
        if self._resume is None and self._pass_start is not None and self._served == self._skipped:
            self._resume = self.state_dict()  # replay an untouched pass
        skip = 0
        if self._resume:
            state, skip = self._resume["generator"], self._resume["served"]
            if self.generator is not None and state is not None:
                self.generator.set_state(state)
        self._resume = None
        self._pass_start = self.generator.get_state() if self.generator is not None else None
        self._served = self._skipped = skip
        batches = super().__iter__()  # draws its worker seed from the generator, like a plain DataLoader
        for _ in range(skip):
            next(batches)
        return self._count(batches)

    def _count(self, batches: Iterator) -> Iterator:
        for batch in batches:
            self._served += 1
            yield batch

    def state_dict(self) -> dict:
        if self._pass_start is None:
            return {}
        if self._served >= len(self):  # pass finished: the next one starts from the current generator state
            return {"generator": self.generator.get_state() if self.generator is not None else None, "served": 0}
        return {"generator": self._pass_start, "served": self._served}

    def load_state_dict(self, state: dict) -> None:
        self._resume = dict(state) if state else None
