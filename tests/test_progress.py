import logging

from src.progress import Progress


def test_without_a_terminal_progress_logs_stage_count_rate_and_time_left(caplog):
    caplog.set_level(logging.INFO, logger="difflab.progress")
    p = Progress("training", 10, every=0.0, terminal=False)
    p.update(4, loss=0.25)
    p.close()
    first, last = [r.getMessage() for r in caplog.records]
    assert first.startswith("training: step 4/10 (40%), loss 0.25, ") and first.endswith(" left")
    assert "step/s" in first and last.startswith("training: step 4/10")


def test_progress_is_silent_when_disabled(caplog):
    caplog.set_level(logging.INFO, logger="difflab.progress")
    with Progress("sampling", 3, every=0.0, enabled=False, terminal=False) as p:
        p.update(3)
    assert caplog.records == []
