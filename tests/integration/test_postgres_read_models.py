"""Read-model queries, definition versions and the activity queue on a real PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from application.errors import InvalidCursorError
from application.read_models import IdempotencyRecord, InstanceFilter, Projection, TaskFilter
from infrastructure.postgres.activity_queue import PostgresActivityQueue
from infrastructure.postgres.cursors import encode_cursor
from infrastructure.postgres.definition_store import PostgresDefinitionStore
from infrastructure.postgres.queries import PostgresReadModelQueries
from infrastructure.postgres.recorder import write_projection
from tests.integration.test_postgres_support import (
    T0,
    Probe,
    activity_row,
    bookmark_row,
    instance_row,
    task_row,
)

pytestmark = pytest.mark.integration


def _project(datastore: Any, projection: Projection) -> None:
    with datastore.transaction(commit=True) as curs:
        write_projection(curs, projection)


def _walk(list_page: Any, limit: int) -> list[list[Any]]:
    pages, cursor = [], None
    while True:
        page = list_page(limit=limit, cursor=cursor)
        pages.append(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return pages


def _instances_page(queries: PostgresReadModelQueries, **filters: Any) -> Any:
    return lambda **page: queries.list_instances("acme", InstanceFilter(**filters), **page)


def test_instance_pages_cover_every_instance_once(datastore: Any) -> None:
    # Given 7 instances, two of them created at the same instant, and another tenant's
    probes = [Probe(tenant="acme", label=str(i)) for i in range(7)]
    times = [T0 + timedelta(minutes=m) for m in (0, 1, 2, 2, 3, 4, 5)]
    rows = [instance_row(p, created_at=t) for p, t in zip(probes, times, strict=True)]
    other = instance_row(Probe(tenant="globex", label="x"), tenant="globex")
    _project(datastore, Projection(instances=[*rows, other]))
    queries = PostgresReadModelQueries(datastore)

    # When paging with limit 3
    pages = _walk(_instances_page(queries), limit=3)

    # Then 3 + 3 + 1 rows, newest first, each exactly once, none of the other tenant
    assert [len(p) for p in pages] == [3, 3, 1]
    listed = [row for page in pages for row in page]
    assert sorted(r.id for r in listed) == sorted(r.id for r in rows)
    keys = [(r.created_at, r.id) for r in listed]
    assert keys == sorted(keys, reverse=True)


def test_instance_list_filters(datastore: Any) -> None:
    a, b, c = (Probe(tenant="acme", label=x) for x in "abc")
    _project(
        datastore,
        Projection(
            instances=[
                instance_row(a, status="completed", correlation_id="po-1"),
                instance_row(b, definition="other", created_at=T0 + timedelta(hours=1)),
                instance_row(c, idempotency_key="key-c", created_at=T0 + timedelta(hours=2)),
            ]
        ),
    )
    queries = PostgresReadModelQueries(datastore)

    def ids(**filters: Any) -> set[UUID]:
        return {r.id for r in _instances_page(queries, **filters)(limit=50, cursor=None).items}

    assert ids(status="completed") == {a.id}
    assert ids(definition="other") == {b.id}
    assert ids(correlation_id="po-1") == {a.id}
    assert ids(created_after=T0 + timedelta(minutes=30)) == {b.id, c.id}
    assert ids(created_before=T0 + timedelta(minutes=90)) == {a.id, b.id}


def test_task_queue_is_sorted_by_due_time_with_undated_tasks_last(datastore: Any) -> None:
    instance_id = uuid4()
    dues = [T0 + timedelta(hours=3), None, T0 + timedelta(hours=1), None, T0 + timedelta(hours=2)]
    tasks = [
        task_row(instance_id, due_at=due, created_at=T0 + timedelta(seconds=i))
        for i, due in enumerate(dues)
    ]
    done = task_row(instance_id, status="completed", role="clerk")
    _project(datastore, Projection(tasks=[*tasks, done]))
    queries = PostgresReadModelQueries(datastore)

    def list_page(**page: Any) -> Any:
        return queries.list_tasks("acme", TaskFilter(role="manager", status="open"), **page)

    for limit in (1, 2, 3, 10):
        listed = [t for page in _walk(list_page, limit) for t in page]
        assert [t.due_at for t in listed] == [dues[2], dues[4], dues[0], None, None]
        assert [t.id for t in listed[3:]] == [tasks[1].id, tasks[3].id]


def test_limit_is_clamped_and_bad_cursors_are_refused(datastore: Any) -> None:
    probes = [Probe(tenant="acme", label=str(i)) for i in range(2)]
    _project(datastore, Projection(instances=[instance_row(p) for p in probes]))
    queries = PostgresReadModelQueries(datastore, cursor_secret=b"k")
    list_page = _instances_page(queries)

    assert len(list_page(limit=0, cursor=None).items) == 1
    assert len(list_page(limit=10_000, cursor=None).items) == 2
    for bad in (
        "not-base64!",
        encode_cursor("tasks", None, T0, "x", secret=b"k"),
        encode_cursor("instances", secret=b"k"),
    ):
        with pytest.raises(InvalidCursorError):
            list_page(limit=5, cursor=bad)


def test_waiting_bookmarks_and_idempotent_results(datastore: Any) -> None:
    instance_id = uuid4()
    waiting = bookmark_row(instance_id, correlation="order-1")
    other_order = bookmark_row(instance_id, correlation="order-2")
    any_order = bookmark_row(instance_id, correlation=None)
    consumed = bookmark_row(instance_id, status="consumed")
    timer = bookmark_row(instance_id, kind="timer", event_type=None, token=None)
    record = IdempotencyRecord("acme", "event", "evt-1", {"resumed": 1})
    _project(
        datastore,
        Projection(
            bookmarks=[waiting, other_order, any_order, consumed, timer], idempotency=[record]
        ),
    )
    queries = PostgresReadModelQueries(datastore)

    # A correlated event reaches waits on its value and waits that take any event of the
    # type; an uncorrelated event reaches only the latter.
    assert {b.id for b in queries.waiting_bookmarks("acme", "payment.received", "order-1")} == {
        waiting.id,
        any_order.id,
    }
    assert queries.waiting_bookmarks("acme", "payment.received", None) == [any_order]
    assert queries.waiting_bookmarks("globex", "payment.received", None) == []
    assert queries.idempotent_result("acme", "event", "evt-1") == {"resumed": 1}
    assert queries.idempotent_result("acme", "event", "evt-2") is None


def test_definition_versions_and_listing(datastore: Any) -> None:
    store = PostgresDefinitionStore(datastore)
    versions = [store.publish("acme", "flow", {"name": "flow", "rev": i}).version for i in range(3)]
    assert versions == [1, 2, 3]
    store.publish("acme", "alpha", {"name": "alpha"})
    store.publish("globex", "flow", {"name": "flow"})

    latest = store.get("acme", "flow")
    assert latest is not None and (latest.version, latest.document["rev"]) == (3, 2)
    first = store.get("acme", "flow", version=1)
    assert first is not None and first.document == {"name": "flow", "rev": 0}
    assert store.get("acme", "flow", version=9) is None
    assert store.get("acme", "missing") is None

    pages = _walk(lambda **page: store.list("acme", **page), limit=1)
    listed = [[(d.name, d.version) for d in page] for page in pages]
    assert listed == [[("alpha", 1)], [("flow", 3)]]

    assert store.set_enabled("acme", "flow", False) is True
    assert store.set_enabled("acme", "missing", False) is False
    assert all(not d.enabled for v in (1, 2, 3) if (d := store.get("acme", "flow", v)) is not None)
    # A republished disabled definition stays disabled until enabled again.
    republished = store.publish("acme", "flow", {"name": "flow", "rev": 3})
    assert (republished.version, republished.enabled) == (4, False)


def test_event_triggered_definitions(datastore: Any) -> None:
    store = PostgresDefinitionStore(datastore)

    def document(name: str, *events: str) -> dict[str, Any]:
        triggers = [{"type": "event", "event": e} for e in events]
        return {"name": name, "triggers": [*triggers, {"type": "cron", "schedule": "@daily"}]}

    store.publish("acme", "orders", document("orders", "po.created"))
    store.publish("acme", "orders", document("orders", "po.created", "po.updated"))
    store.publish("acme", "dropped", document("dropped", "po.created"))
    store.publish("acme", "dropped", document("dropped"))  # latest version lost the trigger
    store.publish("acme", "paused", document("paused", "po.created"))
    store.set_enabled("acme", "paused", False)
    store.publish("globex", "orders", document("orders", "po.created"))

    triggered = store.event_triggered("acme", "po.created")
    assert [(d.name, d.version) for d in triggered] == [("orders", 2)]
    assert store.event_triggered("acme", "po.deleted") == []


def test_concurrent_publishes_get_distinct_versions(datastore: Any) -> None:
    store = PostgresDefinitionStore(datastore)
    barrier = threading.Barrier(8)
    versions: list[int] = []
    lock = threading.Lock()

    def publish(index: int) -> None:
        barrier.wait()
        published = store.publish("acme", "race", {"name": "race", "by": index})
        with lock:
            versions.append(published.version)

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(versions) == list(range(1, 9))


def test_two_claimers_never_share_an_activity(datastore: Any) -> None:
    # Given 40 due activities and 5 not yet due
    instance_id = uuid4()
    due = [activity_row(instance_id, run_after=T0 - timedelta(seconds=i)) for i in range(40)]
    later = [activity_row(instance_id, run_after=T0 + timedelta(hours=1)) for _ in range(5)]
    _project(datastore, Projection(activities=[*due, *later]))
    queue = PostgresActivityQueue(datastore)
    claimed: dict[str, list[str]] = {"w1": [], "w2": []}
    barrier = threading.Barrier(2)

    def work(worker: str) -> None:
        barrier.wait()
        while batch := queue.claim(worker, limit=3, lease_seconds=60, now=T0):
            claimed[worker].extend(a.id for a in batch)

    # When two workers claim in small batches from real threads
    threads = [threading.Thread(target=work, args=(w,)) for w in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Then every due activity went to exactly one of them
    all_claimed = claimed["w1"] + claimed["w2"]
    assert sorted(all_claimed) == sorted(a.id for a in due)
    assert len(set(all_claimed)) == len(all_claimed)


def test_leases_expire_and_can_be_released(datastore: Any) -> None:
    activity = activity_row(uuid4(), run_after=T0)
    _project(datastore, Projection(activities=[activity]))
    queue = PostgresActivityQueue(datastore)

    assert queue.claim("w1", limit=5, lease_seconds=30, now=T0) == [activity]
    assert queue.claim("w2", limit=5, lease_seconds=30, now=T0 + timedelta(seconds=10)) == []
    # The lease ran out (w1 died): the activity is handed out again.
    assert queue.claim("w2", limit=5, lease_seconds=30, now=T0 + timedelta(seconds=31)) == [
        activity
    ]
    queue.release(activity.id, attempt=2)  # another attempt's lease: no effect
    assert queue.claim("w3", limit=5, lease_seconds=30, now=T0 + timedelta(seconds=32)) == []
    queue.release(activity.id, attempt=1)
    assert queue.claim("w3", limit=5, lease_seconds=30, now=T0 + timedelta(seconds=32)) == [
        activity
    ]
