"""The timer worker's alarm after a tick that fired nothing (workers/timer_worker.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from workers.timer_worker import HELD_RECHECK_SECONDS, OVERDUE_RECHECK_SECONDS, TimerWorker

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


class Timers:
    """A TimerService stand-in: fires nothing; the next claimable time is `next_at`."""

    already_handled_total = 0

    def __init__(self) -> None:
        self.claimed_at: datetime | None = None
        self.next_at: datetime | None = None
        self.fire = 0

    def fire_due(self, limit: int) -> int:
        self.claimed_at = NOW
        return self.fire

    def next_claim(self) -> tuple[datetime, datetime] | None:
        return None if self.next_at is None else (self.next_at, NOW + timedelta(seconds=0.05))


def worker() -> tuple[TimerWorker, Timers]:
    timers = Timers()
    settings = SimpleNamespace(timer_batch_size=10, timer_poll_interval=30.0)
    container: Any = SimpleNamespace(settings=settings, timers=timers)
    return TimerWorker(container), timers


def alarm_in(w: TimerWorker) -> float | None:
    alarm = w.runner._alarm
    return None if alarm is None else alarm - time.monotonic()


def test_a_timer_due_since_the_claim_is_claimed_at_once() -> None:
    w, timers = worker()
    timers.next_at = NOW + timedelta(milliseconds=20)  # after the claim's now, before now
    assert w.tick() == 0
    assert w.runner._woken and w.runner._alarm is None


def test_a_future_timer_sets_the_alarm_for_its_due_time() -> None:
    w, timers = worker()
    timers.next_at = NOW + timedelta(seconds=5)  # 4.95 s after the check's now
    w.tick()
    left = alarm_in(w)
    assert not w.runner._woken and left is not None and 4.8 < left <= 4.97


def test_a_held_timer_is_rechecked_with_a_backoff_reset_by_a_firing() -> None:
    w, timers = worker()
    timers.next_at = NOW - timedelta(seconds=1)  # due when the claim looked: held elsewhere
    waits = []
    for _ in range(9):
        w.runner._alarm = None
        w.tick()
        waits.append(alarm_in(w))
    assert not w.runner._woken
    expected = [min(HELD_RECHECK_SECONDS * 2**i, OVERDUE_RECHECK_SECONDS) for i in range(9)]
    for got, want in zip(waits, expected, strict=True):
        assert got is not None and want - 0.05 < got <= want
    timers.fire = 1
    w.tick()
    assert w.held_rechecks == 0
