"""ReadModelQueries and DefinitionStore contract: the same cases against memory and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest

from application.errors import InvalidCursorError
from application.read_models import InstanceFilter, Projection, TaskFilter
from tests.contract.conftest import Ports
from tests.integration.test_postgres_support import (
    T0,
    Probe,
    bookmark_row,
    instance_row,
    task_row,
)


def _save(ports: Ports, tenant: str = "acme", **rows: Any) -> Probe:
    probe = Probe(tenant=tenant, label="p")
    instance = rows.pop("instance", None) or {}
    projection = Projection(
        instances=[instance_row(probe, tenant=tenant, **instance)],
        **{name: [row(probe.id) for row in builders] for name, builders in rows.items()},
    )
    ports.instances.save([probe], projection)
    return probe


def _all_pages(fetch: Any, limit: int) -> list[Any]:
    items, cursor, pages = [], None, 0
    while True:
        page = fetch(limit=limit, cursor=cursor)
        items.extend(page.items)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            return items
        assert pages < 20


def test_instance_by_tenant(ports: Ports) -> None:
    probe = _save(ports)
    row = ports.queries.instance("acme", probe.id)
    assert row is not None and row.id == probe.id and row.status == "running"
    assert ports.queries.instance("globex", probe.id) is None
    assert ports.queries.instance("acme", uuid4()) is None


def test_instance_list_filters_and_pages_newest_first(ports: Ports) -> None:
    # Given five instances created a minute apart, two of them completed, one elsewhere
    probes = []
    for n in range(5):
        status = "completed" if n in (1, 3) else "running"
        created = T0 + timedelta(minutes=n)
        values = {"status": status, "created_at": created, "correlation_id": f"c{n % 2}"}
        probes.append(_save(ports, instance=values))
    _save(ports, tenant="globex")
    newest_first = [p.id for p in reversed(probes)]

    def listing(**filters: Any) -> list[Any]:
        def fetch(limit: int, cursor: str | None) -> Any:
            return ports.queries.list_instances(
                "acme", InstanceFilter(**filters), limit=limit, cursor=cursor
            )

        return [row.id for row in _all_pages(fetch, limit=2)]

    # Then pages of two walk the tenant's instances newest first, each exactly once
    assert listing() == newest_first
    assert listing(status="completed") == [probes[3].id, probes[1].id]
    assert listing(correlation_id="c0") == [probes[4].id, probes[2].id, probes[0].id]
    assert listing(definition="other") == []
    window = {
        "created_after": T0 + timedelta(minutes=1),
        "created_before": T0 + timedelta(minutes=3),
    }
    assert listing(**window) == [probes[2].id, probes[1].id]
    first = ports.queries.list_instances("acme", InstanceFilter(), limit=5, cursor=None)
    assert first.next_cursor is None and len(first.items) == 5


def test_list_cursors_are_tamper_evident(ports: Ports) -> None:
    for n in range(3):
        _save(ports, instance={"created_at": T0 + timedelta(minutes=n)})
    page = ports.queries.list_instances("acme", InstanceFilter(), limit=1, cursor=None)
    assert page.next_cursor is not None
    with pytest.raises(InvalidCursorError):
        ports.queries.list_instances(
            "acme", InstanceFilter(), limit=1, cursor=page.next_cursor + "x"
        )
    with pytest.raises(InvalidCursorError):  # an instances cursor is no tasks cursor
        ports.queries.list_tasks("acme", TaskFilter(), limit=1, cursor=page.next_cursor)


def test_task_list_most_urgent_first_with_undated_tasks_last(ports: Ports) -> None:
    # Given dated and undated tasks, created in an order unlike their urgency
    def task(n: int, due: int | None, **extra: Any) -> Any:
        return lambda instance_id: task_row(
            instance_id,
            id=f"task-{n}",
            due_at=None if due is None else T0 + timedelta(hours=due),
            created_at=T0 + timedelta(minutes=n),
            **extra,
        )

    _save(
        ports,
        tasks=[
            task(1, None),
            task(2, 5, role="boss", escalated_to="chief"),
            task(3, 1, assignee="ann", urgency="high"),
            task(4, None, status="completed"),
            task(5, 3, role="boss"),
        ],
    )
    _save(ports, tenant="globex", tasks=[task(6, 0, tenant="globex")])

    def listing(**filters: Any) -> list[str]:
        def fetch(limit: int, cursor: str | None) -> Any:
            return ports.queries.list_tasks(
                "acme", TaskFilter(**filters), limit=limit, cursor=cursor
            )

        return [row.id for row in _all_pages(fetch, limit=2)]

    # Then: due soonest first, undated last by creation; pages cross the dated/undated edge
    assert listing() == ["task-3", "task-5", "task-2", "task-1", "task-4"]
    assert listing(role="boss") == ["task-5", "task-2"]
    assert listing(assignee="ann") == ["task-3"]
    assert listing(status="completed") == ["task-4"]
    # An escalation's role is a candidate role too.
    assert listing(role="chief") == ["task-2"]
    # Urgency of open dated tasks comes from the time left at `now` (issue 8); undated or
    # closed tasks keep their fixed urgency (task-3's fixed "high" no longer counts).
    assert listing(urgency="urgent", now=T0) == ["task-3", "task-5"]
    assert listing(urgency="high", now=T0) == ["task-2"]
    assert listing(urgency="normal", now=T0) == ["task-1", "task-4"]
    assert listing(urgency="overdue", now=T0 + timedelta(hours=4)) == ["task-3", "task-5"]
    assert listing(urgency="urgent", now=T0 + timedelta(hours=4)) == ["task-2"]
    assert listing(urgency="overdue", now=T0 - timedelta(days=9)) == []
    row = ports.queries.task("acme", "task-3")
    assert row is not None and row.assignee == "ann"
    assert ports.queries.task("globex", "task-3") is None


def test_bookmark_by_token_and_waiting_bookmarks(ports: Ports) -> None:
    def wait(correlation: str | None, **extra: Any) -> Any:
        name = f"bm-{correlation}-{extra.get('status', 'open')}-{extra.get('tenant', 'acme')}"
        return lambda instance_id: bookmark_row(
            instance_id,
            id=name,
            event_type="paid",
            correlation=correlation,
            **extra,
        )

    probe = _save(
        ports,
        bookmarks=[
            wait("order-1"),
            wait(None, created_at=T0 + timedelta(seconds=1)),
            wait("order-2"),
            wait("order-1", status="consumed"),
        ],
    )
    _save(ports, tenant="globex", bookmarks=[wait("order-1", tenant="globex")])
    by_token = ports.queries.bookmark_by_token(
        ports.queries.waiting_bookmarks("acme", "paid", "order-1")[0].token
    )
    assert by_token is not None and by_token.instance_id == probe.id
    assert ports.queries.bookmark_by_token("no-such-token") is None

    def waiting(correlation: str | None) -> list[str]:
        return [b.id for b in ports.queries.waiting_bookmarks("acme", "paid", correlation)]

    # A wait with a correlation takes only that value; one without takes any event.
    assert waiting("order-1") == ["bm-order-1-open-acme", "bm-None-open-acme"]
    assert waiting(None) == ["bm-None-open-acme"]
    assert waiting("order-3") == ["bm-None-open-acme"]
    assert ports.queries.waiting_bookmarks("acme", "shipped", None) == []


def test_definitions_publish_versions_list_and_triggers(ports: Ports) -> None:
    store = ports.definitions
    doc = {"name": "flow", "triggers": [{"type": "event", "event": "paid"}]}
    assert [store.publish("acme", "flow", doc).version for _ in range(3)] == [1, 2, 3]
    store.publish("acme", "beta", {"name": "beta"})
    store.publish("globex", "flow", doc)

    assert store.get("acme", "flow").version == 3
    assert store.get("acme", "flow", 2).version == 2
    assert store.get("acme", "flow", 9) is None and store.get("acme", "nope") is None
    assert [d.name for d in store.event_triggered("acme", "paid")] == ["flow"]
    assert store.event_triggered("acme", "shipped") == []

    names, cursor = [], None
    while True:
        page = store.list("acme", 1, cursor)
        names += [(d.name, d.version) for d in page.items]
        if (cursor := page.next_cursor) is None:
            break
    assert names == [("beta", 1), ("flow", 3)]

    # Disabling holds for a version published later; a disabled definition starts nothing.
    assert store.set_enabled("acme", "flow", False)
    assert not store.set_enabled("acme", "nope", False)
    assert store.publish("acme", "flow", doc).enabled is False
    assert store.event_triggered("acme", "paid") == []
    assert store.get("globex", "flow").enabled is True


def test_schedule_triggered_definitions_are_the_latest_versions_of_every_tenant(
    ports: Ports,
) -> None:
    store = ports.definitions
    cron = {"type": "schedule", "cron": "0 9 * * *"}
    store.publish("acme", "nightly", {"name": "nightly", "triggers": [cron]})
    store.publish("globex", "nightly", {"name": "nightly", "triggers": [cron]})
    store.publish("acme", "dropped", {"name": "dropped", "triggers": [cron]})
    store.publish("acme", "dropped", {"name": "dropped"})  # the latest has no schedule
    store.publish("acme", "evented", {"name": "evented", "triggers": [{"type": "event"}]})
    store.set_enabled("globex", "nightly", False)

    found = [(d.tenant, d.name, d.version, d.enabled) for d in store.schedule_triggered()]

    # Disabled ones too: the scheduler moves their cursors without firing.
    assert found == [("acme", "nightly", 1, True), ("globex", "nightly", 1, False)]
