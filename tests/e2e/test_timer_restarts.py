"""Timers across process deaths, with real `waymark worker timers` processes (issue 8): a
timer that came due while no timer service ran fires once when one returns; a replica killed
with SIGKILL in the middle of its batches leaves its claimed timers to the other, which fires
each exactly once.

The test process creates the instances through the application layer (its container runs
no worker), so nothing but the worker under test fires a timer."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import terminate, unique, wait_for
from tests.e2e.timer_processes import (
    TENANT,
    build_container,
    env_of,
    fired_by,
    firings,
    lateness,
    start_many,
    start_one,
    status_of,
    statuses,
    until_definition,
    wait_completed,
)
from tests.e2e.worker_processes import start_worker, timer_definition

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def container(module_database_url: str) -> Iterator[Any]:
    built = build_container(module_database_url)
    yield built
    built.close()


def test_a_timer_that_came_due_while_no_timer_service_ran_fires_once_when_it_returns(
    module_database_url: str, container: Any, tmp_path: Path
) -> None:
    env = env_of(module_database_url, tmp_path)
    first = start_worker("timers", env, tmp_path / "first.log")
    instance_id, due = start_one(container, timer_definition(unique("down"), "PT2S"))
    # The only timer service dies before the timer is due: no shutdown, no hand-over.
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)

    wait_for(lambda: datetime.now(UTC) > due + timedelta(seconds=2), what="the due time to pass")
    assert status_of(container, instance_id) == "suspended", "fired with no timer service up"

    restarted = time.monotonic()
    second = start_worker("timers", env, tmp_path / "second.log")
    try:
        wait_completed(container, instance_id, timeout=30.0)
        took = time.monotonic() - restarted
    finally:
        assert terminate(second.process) == 0, second.text()
    print(f"fired {took:.2f} s after the timer service was started again")
    assert lateness(container, instance_id, due) >= 2.0  # fired after the restart ...
    assert fired_by(second).fired >= 1  # ... by the restarted service, once (above)


def test_a_replica_killed_mid_batch_leaves_its_timers_to_the_other_each_fired_once(
    module_database_url: str, container: Any, tmp_path: Path
) -> None:
    # Small batches and a short lease: the killed replica holds claimed rows when it dies,
    # and the survivor takes them over once their lease has run out.
    env = env_of(
        module_database_url,
        tmp_path,
        WAYMARK_TIMER_BATCH_SIZE="10",
        WAYMARK_TIMER_LEASE_SECONDS="3",
    )
    victim = start_worker("timers", env, tmp_path / "victim.log")
    survivor = start_worker("timers", env, tmp_path / "survivor.log")
    count = 300
    name = unique("failover")
    container.definitions.publish(TENANT, until_definition(name))
    due = datetime.now(UTC) + timedelta(seconds=4)
    ids = start_many(container, name, due, count)
    try:
        wait_for(lambda: fired_by(victim).fired > 0, timeout=20.0, what="the victim's firings")
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(10)
        before = statuses(container, ids).get("completed", 0)
        wait_for(
            lambda: statuses(container, ids) == {"completed": count},
            timeout=60.0,
            interval=0.25,
            what=f"{count} instances completed",
        )
    finally:
        assert terminate(survivor.process) == 0, survivor.text()
    by_victim, by_survivor = fired_by(victim).fired, fired_by(survivor).fired
    print(
        f"victim logged {by_victim} firings before SIGKILL, {before} completed then; "
        f"survivor fired {by_survivor}"
    )
    assert before < count, "everything had fired before the kill: nothing was taken over"
    for instance_id in ids:
        seen = firings(container, instance_id)
        assert len(seen.resumed) == 1, f"{instance_id}: fired {len(seen.resumed)} times"
        assert seen.pause_completed == 1 and seen.ended
    assert by_survivor > 0 and by_victim + by_survivor <= count
