"""Task SLAs on PostgreSQL with a clock the test moves (no sleeping for hours): the timer
service escalates a task past its SLA once (two replicas racing included), takes a task's
`timeout` route, honours the global switch; urgency filters and the role filter follow the
clock and the escalation; the definition-level SLA marks instances late like analytics."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from application.commands import DeliverEvent, StartInstance
from application.read_models import TaskFilter

pytestmark = pytest.mark.integration

TENANT = "acme"


def approval(name: str, *, timeout_route: bool = False, **node: Any) -> dict[str, Any]:
    nodes = [
        {
            "id": "approve",
            "type": "approval",
            "approver_role": f"{name}-manager",
            "sla_hours": 30,
            "escalate_to_role": f"{name}-director",
            **node,
        },
        {"id": "done", "type": "end"},
        {"id": "no", "type": "end", "status": "failed"},
    ]
    routes = [
        {"from": "approve", "to": "done", "outcome": "approved"},
        {"from": "approve", "to": "no", "outcome": "rejected"},
    ]
    if timeout_route:
        nodes.append({"id": "late", "type": "end", "status": "failed", "error": "sla"})
        routes.append({"from": "approve", "to": "late", "outcome": "timeout"})
    return {"name": name, "nodes": nodes, "routes": routes}


class MovableClock:
    """Real time plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        from infrastructure.clock import SystemClock

        return SystemClock().now() + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


def build(database_url: str, clock: MovableClock, **settings: Any) -> Any:
    from infrastructure.bootstrap import bootstrap
    from infrastructure.settings import Settings

    container = bootstrap(
        Settings(database_url=database_url, api_keys="k=acme:admin", db_pool_size=4, **settings)
    )
    # One clock for the commands (due times, `now` of escalate), reads and the timer query.
    container.core.runner.clock = clock
    container.timers.clock = clock
    container.analytics.clock = clock
    return container


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def container(database_url: str, clock: MovableClock) -> Iterator[Any]:
    built = build(database_url, clock)
    yield built
    built.close()


def start(container: Any, name: str) -> tuple[UUID, str]:
    view, _ = container.instances.start(StartInstance(TENANT, name))
    return UUID(view["id"]), view["bookmarks"][0]["id"]


def task_ids(container: Any, **criteria: Any) -> set[str]:
    page = container.tasks.list(TENANT, TaskFilter(**criteria), limit=500)
    return {t["id"] for t in page.items}


def history_types(container: Any, instance_id: UUID) -> list[str]:
    entries, _ = container.instances.history(TENANT, instance_id)
    return [e.type for e in entries]


def test_urgency_and_escalation_follow_the_clock(container: Any, clock: MovableClock) -> None:
    container.definitions.publish(TENANT, approval("po"))
    instance_id, task = start(container, "po")

    # Given 30 h to go, the task is `normal`; the urgency filter and the view follow the clock.
    for hours, urgency in ((0, "normal"), (10, "high"), (17, "urgent")):
        clock.advance(hours=hours)
        assert task in task_ids(container, urgency=urgency), urgency
        assert container.tasks.get(TENANT, task)["urgency"] == urgency
        others = {"normal", "high", "urgent", "overdue"} - {urgency}
        assert all(task not in task_ids(container, urgency=u) for u in others)
    assert container.timers.fire_due(100) == 0  # 3 h left: nothing to escalate yet
    assert task not in task_ids(container, role="po-director")

    # When the SLA passes, the timer service escalates it: overdue, a new candidate role.
    clock.advance(hours=3, seconds=1)
    assert container.timers.fire_due(100) == 1
    view = container.tasks.get(TENANT, task)
    assert (view["urgency"], view["overdue"], view["status"]) == ("overdue", True, "open")
    assert view["roles"] == ["po-manager", "po-director"]
    assert view["escalated_to"] == "po-director" and view["escalated_at"] is not None
    assert task in task_ids(container, role="po-director")
    assert task in task_ids(container, role="po-manager")
    assert task in task_ids(container, urgency="overdue")
    assert history_types(container, instance_id).count("TaskEscalated") == 1

    # Then it is never escalated again, however often the timer service looks.
    clock.advance(hours=5)
    assert container.timers.fire_due(100) == 0
    assert history_types(container, instance_id).count("TaskEscalated") == 1
    instance = container.instances.get(TENANT, instance_id)
    assert instance["status"] == "suspended"
    assert instance["bookmarks"][0]["roles"] == ["po-manager", "po-director"]


def test_two_timer_replicas_racing_escalate_once(
    database_url: str, container: Any, clock: MovableClock
) -> None:
    container.definitions.publish(TENANT, approval("race"))
    started = [start(container, "race") for _ in range(10)]
    clock.advance(hours=31)
    other = build(database_url, clock)
    try:
        # Leases off, so both replicas claim every task, then both fire all of them at once:
        # only optimistic concurrency and the bookmark's escalated state keep it to one.
        services = [container.timers, other.timers]
        claims = []
        for service in services:
            service.timers.lease_seconds = 0
            claims.append(service.timers.due(clock.now(), 100))
        assert [len(rows) for rows in claims] == [10, 10]  # the race is real
        barrier = threading.Barrier(2)
        fired: list[int] = []

        def replica(service: Any, rows: list[Any]) -> None:
            barrier.wait()
            fired.append(sum(1 for row in rows if service._fire(row)))

        threads = [threading.Thread(target=replica, args=pair) for pair in zip(services, claims)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        other.close()
    # A firing that found the task already escalated did nothing and does not count.
    assert sum(fired) == 10, fired
    for instance_id, _ in started:
        assert history_types(container, instance_id).count("TaskEscalated") == 1


def test_a_timeout_route_is_taken_when_the_sla_passes(container: Any, clock: MovableClock) -> None:
    container.definitions.publish(TENANT, approval("timed", timeout_route=True))
    instance_id, task = start(container, "timed")
    clock.advance(hours=30, seconds=1)
    assert container.timers.fire_due(100) == 1
    instance = container.instances.get(TENANT, instance_id)
    assert instance["status"] == "failed" and instance["error"]["node_id"] == "late"
    assert container.tasks.get(TENANT, task)["status"] == "cancelled"
    types = history_types(container, instance_id)
    assert "TaskEscalated" not in types and "BookmarkCancelled" in types


def test_escalation_switched_off_globally_marks_overdue_only(
    database_url: str, clock: MovableClock
) -> None:
    container = build(database_url, clock, sla_escalation=False)
    try:
        container.definitions.publish(TENANT, approval("quiet"))
        instance_id, task = start(container, "quiet")
        clock.advance(hours=31)
        assert container.timers.fire_due(100) == 1
        assert task not in task_ids(container, role="quiet-director")
        view = container.tasks.get(TENANT, task)
        assert view["urgency"] == "overdue" and view["roles"] == ["quiet-manager"]
        assert container.timers.fire_due(100) == 0  # marked once
        entries, _ = container.instances.history(TENANT, instance_id)
        (marked,) = [e for e in entries if e.type == "TaskEscalated"]
        assert marked.data["to_role"] is None
    finally:
        container.close()


def test_the_definition_sla_marks_the_instance_late_as_analytics_counts_it(
    container: Any, clock: MovableClock
) -> None:
    document = approval("slow")
    document["sla_hours"] = 2
    container.definitions.publish(TENANT, document)
    instance_id, _ = start(container, "slow")
    view = container.instances.get(TENANT, instance_id)
    assert view["late"] is False and view["sla_due_at"] is not None

    def breached() -> int:
        (item,) = [
            i for i in container.analytics.report(TENANT)["items"] if i["definition"] == "slow"
        ]
        return item["sla"]["breached"]

    assert breached() == 0
    clock.advance(hours=2, seconds=1)
    assert container.instances.get(TENANT, instance_id)["late"] is True
    assert breached() == 1


def test_the_incident_escalation_template_escalates(container: Any, clock: MovableClock) -> None:
    container.templates.instantiate(TENANT, "incident-escalation")
    view, _ = container.instances.start(
        StartInstance(
            TENANT,
            "incident-escalation",
            input={"incident_id": "INC-1", "title": "db down", "severity": "critical"},
        )
    )
    instance_id = UUID(view["id"])
    # On-call acknowledges (the event gateway's wait), then the mitigation task is open
    container.instances.deliver_event(DeliverEvent(TENANT, "incident.acknowledged", "INC-1"))
    view = container.instances.get(TENANT, instance_id)
    (task,) = [b["id"] for b in view["bookmarks"] if b["kind"] == "task"]
    assert task not in task_ids(container, role="incident-manager")
    clock.advance(minutes=31)
    assert container.timers.fire_due(100) >= 1
    assert task in task_ids(container, role="incident-manager")
    assert container.tasks.get(TENANT, task)["roles"] == ["on-call", "incident-manager"]
    assert history_types(container, instance_id).count("TaskEscalated") == 1
