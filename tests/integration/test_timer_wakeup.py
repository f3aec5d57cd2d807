"""The timer worker's alarm after a tick that fired nothing (bench/timers.py quick run).

A timer that falls due between a tick's claim and its alarm check is overdue when the
check reads it, yet nobody holds it: it is claimed at once. Before, every overdue answer
slept the 1 s overdue recheck, meant for rows another replica is firing, so with timers
due every few milliseconds one replica or the other kept sleeping a second while timers
fell due (quick run: p99 ~1 s). A row another transaction does hold is rechecked with a
short backoff, not a spin. Real worker (its runner in a thread), real PostgreSQL; the
bounds are generous (a loaded machine), far from the 1 s recheck the negative control shows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

from application.commands import StartInstance
from workers import timer_worker
from workers.runner import WorkerRunner
from workers.timer_worker import TimerWorker

pytestmark = pytest.mark.integration

TENANT = "acme"
TIMER = {
    "name": "wake-timer",
    "nodes": [
        {"id": "pause", "type": "timer", "until": "input.at"},
        {"id": "done", "type": "end"},
    ],
    "routes": [{"from": "pause", "to": "done"}],
}
LEAD = timedelta(milliseconds=200)  # the timer's due time after the claim that missed it
GAP = timedelta(milliseconds=100)  # how long after its due time the alarm check runs
FIRES_WITHIN = 0.75  # seconds after its due time (the 1 s recheck makes it >= 1.1 s)


class LegacyTimerWorker(TimerWorker):
    """The alarm before the fix: any overdue answer slept the overdue recheck."""

    def _arm_alarm(self) -> None:
        wait = self.timers.seconds_until_next()
        if wait is None:
            return
        if wait <= 0:
            self.runner.wake_in(
                min(timer_worker.OVERDUE_RECHECK_SECONDS, self.runner.poll_interval)
            )
        else:
            self.runner.wake_in(wait + timer_worker.ALARM_SLACK_SECONDS)


@pytest.fixture
def api(database_url: str) -> Iterator[Any]:
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings

    built = build_api(
        Settings(
            database_url=database_url,
            api_keys="k=acme:admin",
            db_pool_size=4,
            timer_poll_interval=30.0,  # the worker fires from its alarms, as in production
        )
    )
    built.definitions.publish(TENANT, TIMER)
    yield built
    built.close()


def worker_for(api: Any, worker_class: type[TimerWorker]) -> TimerWorker:
    from infrastructure.worker_bootstrap import build_timer_worker

    return worker_class(build_timer_worker(api.settings, core=api.core))


def ended_at(api: Any, instance_id: UUID, deadline_seconds: float = 15.0) -> datetime:
    deadline = time.monotonic() + deadline_seconds
    while True:
        view = api.instances.get(TENANT, instance_id)
        if view["status"] == "completed":
            return datetime.fromisoformat(str(view["ended_at"]))
        assert time.monotonic() < deadline, "the timer never fired"
        time.sleep(0.02)


def start_timer(api: Any, due: datetime) -> UUID:
    view, _ = api.instances.start(
        StartInstance(TENANT, "wake-timer", input={"at": due.isoformat()})
    )
    assert view["status"] == "suspended"
    return UUID(str(view["id"]))


def run(runner: WorkerRunner) -> None:
    runner.start_in_thread()


@pytest.mark.parametrize("legacy", [False, True], ids=["fixed", "legacy-negative-control"])
def test_a_timer_due_just_after_the_claim_fires_at_once(api: Any, legacy: bool) -> None:
    worker = worker_for(api, LegacyTimerWorker if legacy else TimerWorker)
    port = worker.timers.timers
    claim = port.due
    created: dict[str, Any] = {}

    def due(now: datetime, limit: int) -> Any:
        rows = claim(now, limit)
        if not created:
            # The worker's first claim found nothing; a timer due LEAD later is stored, and
            # the tick goes on (its alarm check) only once that timer is GAP overdue.
            created["due"] = datetime.now(UTC) + LEAD
            created["id"] = start_timer(api, created["due"])
            time.sleep(max(0.0, (created["due"] + GAP - datetime.now(UTC)).total_seconds()))
        return rows

    port.due = due  # type: ignore[method-assign]
    run(worker.runner)
    try:
        while "id" not in created:
            time.sleep(0.01)
        lateness = (ended_at(api, created["id"]) - created["due"]).total_seconds()
    finally:
        assert worker.runner.stop(10)
    if legacy:
        assert lateness >= timer_worker.OVERDUE_RECHECK_SECONDS  # what the fix removes
    else:
        assert lateness < FIRES_WITHIN


def test_a_due_timer_another_transaction_holds_is_rechecked_without_spinning(
    api: Any, database_url: str
) -> None:
    worker = worker_for(api, TimerWorker)
    port = worker.timers.timers
    claim = port.due
    claims: list[float] = []

    def due(now: datetime, limit: int) -> Any:
        claims.append(time.monotonic())
        return claim(now, limit)

    port.due = due  # type: ignore[method-assign]
    fire_at = datetime.now(UTC) + timedelta(milliseconds=100)
    instance_id = start_timer(api, fire_at)
    hold = 0.6
    with psycopg.connect(database_url) as conn:
        # Another replica's claim in flight: the row is locked, its claim skips it.
        conn.execute("SELECT id FROM bookmarks WHERE instance_id = %s FOR UPDATE", (instance_id,))
        time.sleep(max(0.0, (fire_at - datetime.now(UTC)).total_seconds()) + 0.05)
        run(worker.runner)
        time.sleep(hold)
        held_claims = len(claims)
        released = datetime.now(UTC)
        conn.rollback()
    try:
        fired = ended_at(api, instance_id)
    finally:
        assert worker.runner.stop(10)
    # Rechecked with a backoff from 20 ms (about five claims in 0.6 s), not a spin, and the
    # row fired after its release within the backoff's cap (1 s) plus a loaded machine.
    assert 2 <= held_claims <= 12
    assert (fired - released).total_seconds() < timer_worker.OVERDUE_RECHECK_SECONDS + 0.75
