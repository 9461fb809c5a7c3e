"""ResumableLoader: the batch order of an interrupted pass, and of the passes after it, is the uninterrupted one."""
import torch

from src.data.resumable import ResumableLoader


def _loader() -> ResumableLoader:
    return ResumableLoader(torch.arange(20), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))


def _order(batches) -> list[int]:
    return torch.cat(list(batches)).tolist()


def test_resume_mid_pass_replays_the_rest_of_it_and_the_next_pass():
    whole = _loader()
    first, second = _order(whole), _order(whole)
    part = _loader()
    it = iter(part)
    head = [next(it), next(it)]
    state = part.state_dict()
    resumed = _loader()
    resumed.load_state_dict(state)
    assert _order(head) + _order(resumed) == first
    assert _order(resumed) == second


def test_resume_after_a_finished_pass_starts_the_next_one():
    whole = _loader()
    _order(whole)
    second = _order(whole)
    part = _loader()
    _order(part)
    resumed = _loader()
    resumed.load_state_dict(part.state_dict())
    assert _order(resumed) == second


def test_a_pass_abandoned_before_its_first_batch_leaves_no_trace():
    """What Lightning does when it resumes from a checkpoint written after an epoch's last batch: it makes an
    iterator while restoring, discards it untouched and makes another for the next epoch."""
    whole = _loader()
    _order(whole)
    second, third = _order(whole), _order(whole)
    part = _loader()
    _order(part)
    resumed = _loader()
    resumed.load_state_dict(part.state_dict())
    iter(resumed)  # made and dropped
    assert _order(resumed) == second
    assert _order(resumed) == third  # a pass that handed out batches is not replayed
