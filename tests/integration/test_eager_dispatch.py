"""Eager dispatch (application/eager.py) against the real PostgreSQL: the activities a
process's commits schedule are inserted leased to its in-process task worker and run
without a claim; the lease keeps at-least-once when that worker never runs them."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from application.commands import StartInstance
from application.eager import EagerActivities
from bench.definitions import three_noops
from infrastructure.bootstrap import build_api
from infrastructure.postgres.activity_queue import PostgresActivityQueue
from infrastructure.settings import Settings

pytestmark = pytest.mark.integration

TENANT = "acme"
THREE_STEP = three_noops("three-noops")


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def settings(database_url: str, **overrides: Any) -> Settings:
    return Settings(
        database_url=database_url,
        api_keys="k=acme:admin",
        db_pool_size=4,
        task_poll_interval=30,  # a claim only when woken: nothing waits for the poll
        **overrides,
    )


class CountingQueue:
    """The activity queue with the rows its claims returned counted."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.claimed = 0

    def claim(self, *args: Any) -> Any:
        rows = self.queue.claim(*args)
        self.claimed += len(rows)
        return rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self.queue, name)


@pytest.mark.parametrize("eager", [True, False], ids=["eager", "claimed"])
def test_scheduled_activities_run_without_a_claim(database_url: str, eager: bool) -> None:
    from workers.in_process import InProcessWorkers

    api = build_api(settings(database_url, eager_dispatch=eager))
    api.definitions.publish(TENANT, THREE_STEP)
    workers = InProcessWorkers.start(api.core)
    queue = CountingQueue(workers.tasks.queue)
    workers.tasks.queue = queue
    try:
        views = [api.instances.start(StartInstance(TENANT, "three-noops"))[0] for _ in range(3)]

        def completed() -> bool:
            return all(
                api.instances.get(TENANT, UUID(str(v["id"])))["status"] == "completed"
                for v in views
            )

        wait_until(completed, 20.0, "the workflows to complete")
        if eager:
            assert workers.tasks.eager is not None
            assert workers.tasks.eager.handed_over == 9  # every step of the three
            assert queue.claimed == 0
        else:  # the negative control: the same workflows, every step claimed
            assert workers.tasks.eager is None and api.core.runner.eager is None
            assert queue.claimed == 9
    finally:
        workers.stop(timeout=10)
        api.close()
    assert api.core.runner.eager is None  # stopped workers are handed nothing more


def test_a_lease_nobody_runs_expires_and_the_activity_is_claimed(database_url: str) -> None:
    # A process leases the first step to its worker in the start's commit, then dies
    # before running it: no worker is started here, the queue is never taken from.
    api = build_api(settings(database_url))
    api.definitions.publish(TENANT, THREE_STEP)
    dead = EagerActivities("dead-worker", lease_seconds=1.0, capacity=10)
    api.core.runner.eager = dead
    other = PostgresActivityQueue(api.core.datastore)
    try:
        view, _ = api.instances.start(StartInstance(TENANT, "three-noops"))
        instance_id = UUID(str(view["id"]))
        now = datetime.now(UTC)
        # Leased in the start's commit: another worker's claim passes over it.
        assert other.claim("another-worker", 10, 60, now) == []
        rows, expiring = dead.take(10, now)
        (handed,) = rows + expiring  # (whether it would still run is not the point here)
        assert handed.instance_id == instance_id
        # Once the lease is over, another worker claims the same attempt.
        later = now + timedelta(seconds=2)
        (claimed,) = other.claim("another-worker", 10, 60, later)
        assert (claimed.id, claimed.attempt) == (handed.id, handed.attempt)
        assert claimed.idempotency_key == handed.idempotency_key
    finally:
        api.close()
