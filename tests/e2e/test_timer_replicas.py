"""Two `waymark worker timers` processes on one database share the due timers and fire each
exactly once (issue 8): 1,000 timers due at the same instant, created by the test process
through the application layer, are fired by both replicas, and every instance's stored
history holds one firing. The negative control turns the timer lease off: the replicas then
claim the same rows and try the same timers (the log counts it), and the history still holds
one firing each, because a firing is a command under optimistic concurrency — the lease
saves the duplicate work, the event store's version check is the exactly-once guarantee."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from tests.e2e.conftest import server_env, terminate, unique, wait_for, waymark
from tests.e2e.timer_processes import (
    TENANT,
    Fired,
    build_container,
    fired_by,
    firings,
    percentile,
    start_many,
    statuses,
    until_definition,
)
from tests.e2e.worker_processes import WorkerProcess

pytestmark = pytest.mark.e2e

TIMERS = 1_000
CONTROL_TIMERS = 300


@pytest.fixture(scope="module")
def container(module_database_url: str) -> Iterator[Any]:
    built = build_container(module_database_url)
    yield built
    built.close()


def start_replicas(database_url: str, tmp_path: Path, **extra: str) -> list[WorkerProcess]:
    """Two timer workers, started together; each once it listens (its first tick is done).
    Polls far apart: they fire when the alarm set from the notified due time rings."""
    env = server_env(database_url, tmp_path, WAYMARK_TIMER_POLL_INTERVAL="30", **extra)
    replicas = []
    for k in range(2):
        log = tmp_path / f"timers-{k}.log"
        replicas.append(WorkerProcess(waymark("worker", "timers", env=env, log=log), log))
    for replica in replicas:
        replica.wait_for_log("listening on")
    return replicas


def stop_all(replicas: list[WorkerProcess]) -> None:
    for replica in replicas:
        assert terminate(replica.process) == 0, replica.text()


def fire(container: Any, replicas: list[WorkerProcess], count: int) -> tuple[list[UUID], datetime]:
    """Start `count` instances due at one instant a few seconds on; wait until all completed."""
    name = unique("due-together")
    container.definitions.publish(TENANT, until_definition(name))
    # Far enough on that creating them all finishes first, also on a loaded CI machine.
    due = datetime.now(UTC) + timedelta(seconds=max(5, count // 50))
    began = time.monotonic()
    ids = start_many(container, name, due, count)
    print(f"{count} instances started in {time.monotonic() - began:.1f} s")
    assert datetime.now(UTC) < due, "creating them took longer than the time to their due"

    def all_completed() -> bool:
        for replica in replicas:
            if replica.process.poll() is not None:
                raise AssertionError(f"a replica exited:\n{replica.text()}")
        return statuses(container, ids) == {"completed": count}

    wait_for(all_completed, timeout=90.0, interval=0.25, what=f"{count} instances completed")
    return ids, due


def each_fired_once(container: Any, ids: list[UUID], due: datetime) -> list[float]:
    """Assert every stored history holds exactly one firing; the lateness of each (s)."""
    late = []
    for instance_id in ids:
        seen = firings(container, instance_id)
        assert len(seen.resumed) == 1, f"{instance_id}: fired {len(seen.resumed)} times"
        assert seen.pause_completed == 1 and seen.ended, f"{instance_id} did not advance once"
        late.append((seen.resumed[0] - due).total_seconds())
    return late


def counted(replicas: list[WorkerProcess], total: int) -> list[Fired]:
    """What each replica logged, once their logged firings add up to `total` (the last
    batch's line is written just after its commits)."""
    wait_for(
        lambda: sum(fired_by(r).fired for r in replicas) >= total,
        timeout=10.0,
        what="the replicas' logs to account for every firing",
    )
    return [fired_by(r) for r in replicas]


def test_two_replicas_fire_1000_timers_each_exactly_once_and_both_do_work(
    module_database_url: str, container: Any, tmp_path: Path
) -> None:
    replicas = start_replicas(module_database_url, tmp_path)
    try:
        ids, due = fire(container, replicas, TIMERS)
        late = each_fired_once(container, ids, due)
        work = counted(replicas, TIMERS)
    finally:
        stop_all(replicas)

    print(
        f"fired per replica {[w.fired for w in work]}; lateness p50 {percentile(late, 0.5):.3f}"
        f" s, p99 {percentile(late, 0.99):.3f} s, max {max(late):.3f} s"
    )
    assert min(late) >= 0, "a timer fired before its due time"
    # Each firing a replica counts is a command that applied: together exactly one each.
    assert sum(w.fired for w in work) == TIMERS
    assert all(w.fired > 0 for w in work), f"one replica did all the work: {work}"
    # The lease: no replica claimed a timer the other had claimed.
    assert [w.already_handled for w in work] == [0, 0]


def test_without_the_timer_lease_replicas_try_the_same_timers_yet_each_fires_once(
    module_database_url: str, container: Any, tmp_path: Path
) -> None:
    # Negative control of the lease: a lease of 1 ms has ended before the other replica
    # claims, so both load the same due rows. One transaction per timer keeps each batch
    # in flight long enough for the other replica's claim to overlap it on a fast machine.
    replicas = start_replicas(
        module_database_url,
        tmp_path,
        WAYMARK_TIMER_LEASE_SECONDS="0.001",
        WAYMARK_TIMER_COMMIT_GROUP="1",
    )
    # The overlap is a race, not a certainty (one replica may finish its claim before the
    # other's query runs): up to three rounds, each checked for single firings, until one
    # shows it. The replicas' logs count across rounds.
    rounds = 0
    try:
        while True:
            rounds += 1
            ids, due = fire(container, replicas, CONTROL_TIMERS)
            each_fired_once(container, ids, due)
            work = counted(replicas, CONTROL_TIMERS * rounds)
            if sum(w.already_handled for w in work) > 0 or rounds == 3:
                break
    finally:
        stop_all(replicas)

    print(f"without the lease, after {rounds} round(s): {work}")
    assert sum(w.fired for w in work) == CONTROL_TIMERS * rounds
    assert sum(w.already_handled for w in work) > 0, "the replicas never tried the same timer"
