"""Timer replicas share the due timers (issue 6 §4): a claim leases its rows with
FOR UPDATE SKIP LOCKED, so a second replica's claim skips them; a dead worker's lease
expires and its timers are claimed again; a released row is claimable at once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from application.commands import StartInstance

pytestmark = pytest.mark.integration

TENANT = "acme"
AT_ONCE = {
    "name": "at-once",
    "nodes": [{"id": "pause", "type": "timer", "duration": "PT0S"}, {"id": "done", "type": "end"}],
    "routes": [{"from": "pause", "to": "done"}],
}


@pytest.fixture
def container(database_url: str) -> Iterator[Any]:
    from infrastructure.bootstrap import bootstrap
    from infrastructure.settings import Settings

    built = bootstrap(Settings(database_url=database_url, api_keys="k=acme:admin", db_pool_size=4))
    built.definitions.publish(TENANT, AT_ONCE)
    yield built
    built.close()


@pytest.fixture
def replicas(database_url: str) -> Iterator[list[Any]]:
    """Two timer replicas' views of the due timers, each on a pool of its own."""
    from infrastructure.postgres.datastore import build_datastore
    from infrastructure.postgres.due_timers import PostgresDueTimers

    stores = [build_datastore(database_url, pool_size=2) for _ in range(2)]
    yield [PostgresDueTimers(store, lease_seconds=30) for store in stores]
    for store in stores:
        store.close()


def start_timers(container: Any, n: int) -> set[str]:
    ids = set()
    for _ in range(n):
        view, _ = container.instances.start(StartInstance(TENANT, "at-once"))
        ids.add(view["bookmarks"][0]["id"])
    return ids


def test_two_replicas_never_claim_the_same_timer(container: Any, replicas: list[Any]) -> None:
    timers = start_timers(container, 10)
    now = container.clock.now() + timedelta(seconds=1)

    first = {row.id for row in replicas[0].due(now, 6)}
    second = {row.id for row in replicas[1].due(now, 6)}

    assert len(first) == 6 and len(second) == 4
    assert not first & second, "a timer was claimed by both replicas"
    assert first | second == timers
    # Nothing is left to claim while the leases run.
    assert replicas[0].due(now, 10) == [] and replicas[1].due(now, 10) == []


def test_without_the_lease_both_replicas_would_load_the_same_rows(
    container: Any, replicas: list[Any]
) -> None:
    # Negative control: a lease of zero seconds ends at once, so the second replica gets
    # the first replica's rows again — what every replica did before timer leases.
    start_timers(container, 3)
    now = container.clock.now() + timedelta(seconds=1)
    replicas[0].lease_seconds = 0
    first = {row.id for row in replicas[0].due(now, 3)}
    second = {row.id for row in replicas[1].due(now, 3)}
    assert first == second and len(first) == 3


def test_a_dead_workers_lease_expires_and_a_released_row_is_claimable_at_once(
    container: Any, replicas: list[Any]
) -> None:
    timers = start_timers(container, 2)
    now = container.clock.now() + timedelta(seconds=1)
    claimed = replicas[0].due(now, 2)  # then "dies" without firing them
    assert {row.id for row in claimed} == timers

    assert replicas[1].due(now + timedelta(seconds=29), 2) == []
    later = {row.id for row in replicas[1].due(now + timedelta(seconds=31), 2)}
    assert later == timers

    replicas[1].release(claimed[0].id)
    assert [row.id for row in replicas[0].due(now + timedelta(seconds=32), 2)] == [claimed[0].id]


def test_claimed_timers_still_fire_through_the_timer_service(container: Any) -> None:
    start_timers(container, 3)
    assert container.timers.fire_due(10) == 3
    assert container.timers.fire_due(10) == 0
