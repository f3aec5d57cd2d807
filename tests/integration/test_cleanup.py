"""The cleanup/retention service and GDPR erasure against the real PostgreSQL (issue 8):
ended-and-old instances go entirely, running and suspended ones stay, unpublished events
stay, a dry run deletes nothing, a definition's retention is honoured, an erasure removes one
instance and leaves an audit row; long-running and stuck instances are listed.

The cleanup's clock is the test's (`ShiftedClock`): "100 days later" is one assignment.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

from application.cleanup import CleanupService
from application.commands import CancelInstance, ResumeBookmark, StartInstance
from application.errors import InstanceNotEndedError, InstanceNotFoundError
from infrastructure.clock import SystemClock

pytestmark = pytest.mark.integration

TENANT = "acme"
QUICK = {"name": "quick", "nodes": [{"id": "done", "type": "end"}], "routes": []}
FAILING = {
    "name": "failing",
    "nodes": [{"id": "stop", "type": "end", "status": "failed", "error": "no"}],
    "routes": [],
}
WAITING = {
    "name": "waiting",
    "nodes": [
        {"id": "hold", "type": "wait", "event": "release"},
        {"id": "done", "type": "end"},
    ],
    "routes": [{"from": "hold", "to": "done"}],
}
INSTANCE_TABLES = ("instances", "bookmarks", "tasks", "activities")


class ShiftedClock:
    """The real time moved forward by `offset` (set by the test)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return SystemClock().now() + self.offset


@pytest.fixture
def container(database_url: str) -> Iterator[Any]:
    from infrastructure.bootstrap import bootstrap
    from infrastructure.settings import Settings

    built = bootstrap(Settings(database_url=database_url, api_keys="k=acme:admin", db_pool_size=4))
    for document in (QUICK, FAILING, WAITING):
        built.definitions.publish(TENANT, document)
    yield built
    built.close()


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock()


def service(container: Any, clock: ShiftedClock, **policy: Any) -> CleanupService:
    base = container.cleanup
    return CleanupService(base.store, clock, replace(base.policy, **policy))


def start(container: Any, definition: str, **kwargs: Any) -> UUID:
    view, _ = container.instances.start(StartInstance(TENANT, definition, **kwargs))
    return UUID(str(view["id"]))


def resume_waiting(container: Any, instance_id: UUID, key: str | None = None) -> None:
    view = container.instances.get(TENANT, instance_id)
    container.instances.resume(
        ResumeBookmark(TENANT, instance_id, view["bookmarks"][0]["id"], {}, idempotency_key=key)
    )


def count(url: str, query: str, *params: Any) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


def rows_of(url: str, instance_id: UUID) -> dict[str, int]:
    """Every row the instance has, per table (events included)."""
    found = {
        table: count(
            url,
            f"SELECT count(*) FROM {table} WHERE {'id' if table == 'instances' else 'instance_id'}"
            " = %s",
            instance_id,
        )
        for table in INSTANCE_TABLES
    }
    found["events"] = count(
        url, "SELECT count(*) FROM waymark_events WHERE originator_id = %s", instance_id
    )
    return found


def gone(url: str, instance_id: UUID) -> bool:
    return not any(rows_of(url, instance_id).values())


def test_ended_old_instances_go_entirely_and_running_ones_stay(
    container: Any, clock: ShiftedClock, database_url: str
) -> None:
    # Given a completed instance (resumed with an idempotency key), a failed one, a
    # cancelled one, and a suspended and a running... (a suspended one waits on its wait)
    completed = start(container, "waiting")
    resume_waiting(container, completed, key="resume-once")
    failed = start(container, "failing")
    cancelled = start(container, "waiting")
    container.instances.cancel(CancelInstance(TENANT, cancelled, "no longer needed"))
    suspended = start(container, "waiting")
    assert container.instances.get(TENANT, completed)["status"] == "completed"
    assert container.instances.get(TENANT, failed)["status"] == "failed"
    assert count(database_url, "SELECT count(*) FROM idempotency_records") == 1
    before = {i: rows_of(database_url, i) for i in (completed, failed, cancelled, suspended)}
    assert all(before[i]["events"] and before[i]["bookmarks"] for i in (completed, suspended))

    # When the cleanup runs 100 days later (completed: 90 d; failed/cancelled: 365 d)
    clock.offset = timedelta(days=100)
    report = service(container, clock).run()

    # Then the completed instance is gone: events, read models, its idempotency record
    assert gone(database_url, completed)
    assert count(database_url, "SELECT count(*) FROM idempotency_records") == 0
    assert report.deleted["instances"] == 1
    assert report.deleted["waymark_events"] == before[completed]["events"]
    # ... failed and cancelled ones are execution history, kept for a year
    assert rows_of(database_url, failed) == before[failed]
    assert rows_of(database_url, cancelled) == before[cancelled]
    # ... and the suspended one is untouched
    assert rows_of(database_url, suspended) == before[suspended]

    # When it runs 400 days later, the failed and cancelled ones go; the suspended stays
    clock.offset = timedelta(days=400)
    service(container, clock).run()
    assert gone(database_url, failed) and gone(database_url, cancelled)
    assert rows_of(database_url, suspended) == before[suspended]
    # And the run is recorded for GET /health
    last = container.cleanup.last_run()
    assert last is not None and last["deleted"]["instances"] == 2


def test_a_running_instance_is_never_pruned_however_old(
    container: Any, clock: ShiftedClock, database_url: str
) -> None:
    # Given an instance whose read model says "completed" long ago but whose ended_at is
    # unset (as if the projection lagged): the guard is the status AND ended_at together
    suspended = start(container, "waiting")
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE instances SET status = 'running' WHERE id = %s", (suspended,))
    before = rows_of(database_url, suspended)

    clock.offset = timedelta(days=10_000)
    service(container, clock).run()

    assert rows_of(database_url, suspended) == before


def test_unpublished_events_stay_until_the_outbox_has_passed_them(
    container: Any, clock: ShiftedClock, database_url: str
) -> None:
    # Given an outbox position table whose slowest publisher is before this instance's events
    old = start(container, "quick")
    first = count(
        database_url,
        "SELECT min(notification_id) FROM waymark_events WHERE originator_id = %s",
        old,
    )
    last = count(
        database_url,
        "SELECT max(notification_id) FROM waymark_events WHERE originator_id = %s",
        old,
    )
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO outbox_positions (name, position) VALUES ('kafka', %s), ('slow', %s)",
            (last, first - 1),
        )
    before = rows_of(database_url, old)
    clock.offset = timedelta(days=100)

    # When the cleanup runs: nothing of the instance goes (not its events, nor its rows)
    report = service(container, clock).run()
    assert rows_of(database_url, old) == before
    assert report.deleted.get("instances", 0) == 0

    # When the slow publisher has passed the last event, it goes
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE outbox_positions SET position = %s WHERE name = 'slow'", (last,))
    service(container, clock).run()
    assert gone(database_url, old)


def test_with_kafka_configured_and_no_position_no_event_goes(
    container: Any, clock: ShiftedClock, database_url: str
) -> None:
    old = start(container, "quick")
    before = rows_of(database_url, old)
    clock.offset = timedelta(days=100)

    report = service(container, clock, outbox_configured=True).run()

    assert rows_of(database_url, old) == before
    assert any("outbox" in note for note in report.notes)
    # Negative control: without Kafka the same run deletes it
    service(container, clock, outbox_configured=False).run()
    assert gone(database_url, old)


def test_dry_run_reports_counts_and_deletes_nothing(
    container: Any, clock: ShiftedClock, database_url: str
) -> None:
    ids = [start(container, "quick") for _ in range(3)]
    before = {i: rows_of(database_url, i) for i in ids}
    events = sum(b["events"] for b in before.values())
    clock.offset = timedelta(days=100)

    dry = service(container, clock).run(dry_run=True)

    assert {i: rows_of(database_url, i) for i in ids} == before
    assert dry.deleted["instances"] == 3
    assert dry.deleted["waymark_events"] == events
    # And the real run deletes exactly what the dry run announced, in bounded batches
    progress: list[str] = []
    real = service(container, clock, batch_rows=1).run(
        progress=lambda stage, counts: progress.append(stage)
    )
    assert real.deleted == dry.deleted
    assert all(gone(database_url, i) for i in ids)
    assert progress.count("instances") == 3  # one instance per batch


def test_a_definitions_retention_overrides_the_defaults(
    container: Any, clock: ShiftedClock, database_url: str
) -> None:
    # Given a compliance workflow kept ten years, and one kept forever
    container.definitions.publish(
        TENANT, {**QUICK, "name": "compliance", "retention": {"completed": "P3650D"}}
    )
    container.definitions.publish(TENANT, {**QUICK, "name": "archive", "retention": "forever"})
    compliance = start(container, "compliance")
    archive = start(container, "archive")
    default = start(container, "quick")

    # When the cleanup runs 100 days later: only the default one goes
    clock.offset = timedelta(days=100)
    service(container, clock).run()
    assert gone(database_url, default)
    assert not gone(database_url, compliance) and not gone(database_url, archive)

    # When it runs eleven years later: the ten-year one goes, the forever one stays
    clock.offset = timedelta(days=11 * 365)
    service(container, clock).run()
    assert gone(database_url, compliance)
    assert not gone(database_url, archive)


def test_old_dead_letters_go_when_the_table_exists(
    container: Any, clock: ShiftedClock, database_url: str
) -> None:
    # Given the outbox's dead letters (migration 0005): an old one, a new one, and an old one
    # an operator asked to re-drive (kept until the publisher sends it)
    with psycopg.connect(database_url) as conn:
        for position, age, status in (
            (1, "8 days", "dead"),
            (2, "0 days", "dead"),
            (3, "8 days", "retry"),
        ):
            conn.execute(
                "INSERT INTO outbox_dead_letters (publisher, position, instance_id, tenant, "
                "event_type, error, status, failed_at) VALUES ('kafka', %s, gen_random_uuid(), "
                "'acme', 'waymark.instance.started', 'too large', %s, now() - %s::interval)",
                (position, status, age),
            )

    report = service(container, clock).run()

    assert report.deleted["outbox_dead_letters"] == 1
    left = "SELECT count(*) FROM outbox_dead_letters WHERE position IN (2, 3)"
    assert count(database_url, left) == 2


def test_erase_removes_one_ended_instance_and_leaves_an_audit_row(
    container: Any, database_url: str
) -> None:
    # Given two ended instances and a suspended one
    erased = start(container, "waiting")
    resume_waiting(container, erased, key="erase-me")
    other = start(container, "quick")
    suspended = start(container, "waiting")
    other_before = rows_of(database_url, other)

    # When the first is erased
    result = container.cleanup.erase(erased, tenant=TENANT, erased_by="dpo", reason="GDPR art. 17")

    # Then nothing of it remains, the other instance is untouched, the audit row is there
    assert gone(database_url, erased)
    assert count(database_url, "SELECT count(*) FROM idempotency_records") == 0
    assert rows_of(database_url, other) == other_before
    assert result["deleted"]["instances"] == 1
    with psycopg.connect(database_url) as conn:
        audit = conn.execute(
            "SELECT tenant, erased_by, reason FROM erasures WHERE instance_id = %s", (erased,)
        ).fetchall()
    assert audit == [(TENANT, "dpo", "GDPR art. 17")]
    # A running one is refused (409), another tenant's is not found
    with pytest.raises(InstanceNotEndedError):
        container.cleanup.erase(suspended, tenant=TENANT, erased_by="dpo")
    with pytest.raises(InstanceNotFoundError):
        container.cleanup.erase(other, tenant="globex", erased_by="dpo")
    assert not gone(database_url, suspended)


def test_long_running_and_stuck_instances_are_listed_and_counted(
    container: Any, clock: ShiftedClock, database_url: str
) -> None:
    # Given suspended instances, and one stuck (running, nothing open, nothing scheduled)
    waiting = [start(container, "waiting") for _ in range(3)]
    stuck = start(container, "waiting")
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE instances SET status = 'running' WHERE id = %s", (stuck,))
        conn.execute("UPDATE bookmarks SET status = 'consumed' WHERE instance_id = %s", (stuck,))
    finder = service(container, clock)

    # Right away nothing is long-running; a day and a bit later all three are
    assert finder.list_condition(TENANT, "long_running").items == []
    clock.offset = timedelta(days=1, minutes=1)
    first = finder.list_condition(TENANT, "long_running", limit=2)
    assert first.next_cursor is not None
    rest = finder.list_condition(TENANT, "long_running", limit=2, cursor=first.next_cursor)
    listed = [item["id"] for item in first.items + rest.items]
    assert sorted(map(str, listed)) == sorted(map(str, waiting))
    assert [item["id"] for item in finder.list_condition(TENANT, "stuck").items] == [str(stuck)]
    # Tenant-scoped, and counted for GET /health
    assert finder.list_condition("globex", "stuck").items == []
    assert finder.condition_counts() == {"long_running": 3, "stuck": 1}


def test_an_ended_parent_with_a_running_child_stays(
    container: Any, clock: ShiftedClock, database_url: str
) -> None:
    # Given an old ended instance that a still-suspended instance names as its parent
    parent = start(container, "quick")
    child = start(container, "waiting")
    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE instances SET parent_id = %s WHERE id = %s", (parent, child))
    clock.offset = timedelta(days=100)

    service(container, clock).run()
    assert not gone(database_url, parent)  # the child would resume a parent that is gone

    # Once the child has ended, the parent goes (the child, ended just now, stays)
    container.instances.cancel(CancelInstance(TENANT, child, "done"))
    service(container, clock).run()
    assert gone(database_url, parent)
    assert not gone(database_url, child)
