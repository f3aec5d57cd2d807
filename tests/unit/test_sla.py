"""Task SLAs in the domain: escalation once, the `timeout` route, urgency from the time
left, the switches, notifications, and the validator's rules (clock moved by hand)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from domain import engine
from domain.engine.sla import urgency_at
from domain.instance import WorkflowInstance
from domain.state import ActivityStatus, BookmarkStatus
from domain.validation import validate_document
from tests.unit.engine_support import (
    T0,
    FakeEnv,
    complete_bookmark,
    definition,
    event_names,
    only_open,
    replay_stored,
    start,
)

END = {"id": "done", "type": "end"}
NO = {"id": "no", "type": "end", "status": "failed"}


def approval_flow(timeout_route: bool = False, **node: Any) -> Any:
    fields = {"approver_role": "manager", "sla_hours": 2, "escalate_to_role": "director"}
    fields.update(node)
    routes = [
        {"from": "a", "to": "done", "outcome": "approved"},
        {"from": "a", "to": "no", "outcome": "rejected"},
    ]
    nodes = [{"id": "a", "type": "approval", **fields}, END, NO]
    if timeout_route:
        nodes.append({"id": "late", "type": "end", "status": "failed", "error": "too late"})
        routes.append({"from": "a", "to": "late", "outcome": "timeout"})
    return definition(nodes, routes)


def test_a_task_past_its_sla_is_escalated_once_to_the_escalation_role():
    d, fake = approval_flow(), FakeEnv()
    instance = start(d, fake)
    task = only_open(instance, "task")
    assert task.due_at == T0 + timedelta(hours=2)
    # Not yet due by this clock: nothing happens.
    assert engine.escalate(instance, d, task.id, fake.env()) is None
    fake.advance(hours=2)
    assert engine.escalate(instance, d, task.id, fake.env()) == "escalated"
    escalated = instance.bookmarks[task.id]
    assert escalated.escalated_at == fake.now
    assert escalated.roles == ["manager", "director"]
    assert escalated.is_open  # still waiting for a decision
    assert instance.status == "suspended"
    # A second firing (another replica, re-deciding on the fresh state) does nothing.
    fake.advance(minutes=5)
    before = len(instance.pending_events)
    assert engine.escalate(instance, d, task.id, fake.env()) is None
    assert len(instance.pending_events) == before
    assert event_names(instance).count("TaskEscalated") == 1
    # The event replays from its stored form to the same state.
    assert replay_stored(instance).bookmarks[task.id] == escalated
    # The task is still decided the usual way, by the director too.
    complete_bookmark(instance, d, task.id, fake, outcome="approved", by="boss")
    assert instance.status == "completed"


def test_escalated_event_carries_typed_fields():
    d, fake = approval_flow(), FakeEnv()
    instance = start(d, fake)
    fake.advance(hours=3)
    engine.escalate(instance, d, only_open(instance).id, fake.env())
    (e,) = [e for e in instance.pending_events if isinstance(e, WorkflowInstance.TaskEscalated)]
    assert (e.to_role, e.at) == ("director", fake.now)


def test_a_timeout_route_is_taken_instead_of_escalating():
    d, fake = approval_flow(timeout_route=True), FakeEnv()
    instance = start(d, fake)
    task = only_open(instance, "task")
    fake.advance(hours=2, seconds=1)
    assert engine.escalate(instance, d, task.id, fake.env()) == "timeout"
    assert instance.bookmarks[task.id].status is BookmarkStatus.CANCELLED
    assert instance.status == "failed" and instance.error["node_id"] == "late"
    names = event_names(instance)
    assert "TaskEscalated" not in names
    cancelled = [
        e for e in instance.pending_events if isinstance(e, WorkflowInstance.BookmarkCancelled)
    ]
    assert cancelled[0].reason == "sla passed"
    completed = [
        e for e in instance.pending_events if isinstance(e, WorkflowInstance.NodeCompleted)
    ]
    assert (completed[-1].node_id, completed[-1].outcome) == ("a", "timeout")


@pytest.mark.parametrize(
    ("node", "enabled"),
    [({"escalate": False}, True), ({}, False), ({"escalate_to_role": None}, True)],
    ids=["off-for-the-node", "off-globally", "no-role"],
)
def test_escalation_switched_off_marks_the_task_overdue_only(node, enabled):
    fields = {k: v for k, v in node.items() if v is not None}
    d = (
        approval_flow(**fields)
        if "escalate_to_role" not in node
        else definition(
            [{"id": "a", "type": "approval", "approver_role": "manager", "sla_hours": 1}, END, NO],
            [
                {"from": "a", "to": "done", "outcome": "approved"},
                {"from": "a", "to": "no", "outcome": "rejected"},
            ],
        )
    )
    fake = FakeEnv()
    instance = start(d, fake)
    task = only_open(instance)
    fake.advance(hours=2)
    assert engine.escalate(instance, d, task.id, fake.env(), escalation_enabled=enabled) == (
        "overdue"
    )
    marked = instance.bookmarks[task.id]
    assert marked.escalated_at == fake.now and marked.escalated_to is None
    assert marked.roles == ["manager"]
    # Marked once: the timer worker's query skips it from now on, and a repeat does nothing.
    assert engine.escalate(instance, d, task.id, fake.env(), escalation_enabled=enabled) is None


@pytest.mark.parametrize(
    ("left", "expected"),
    [
        (timedelta(hours=-1), "overdue"),
        (timedelta(0), "overdue"),
        (timedelta(minutes=1), "urgent"),
        (timedelta(hours=3, minutes=59), "urgent"),
        (timedelta(hours=4), "high"),
        (timedelta(hours=23, minutes=59), "high"),
        (timedelta(hours=24), "normal"),
        (timedelta(days=30), "normal"),
    ],
)
def test_urgency_is_computed_from_the_time_left(left, expected):
    assert urgency_at(T0 + left, T0, "critical") == expected


def test_urgency_moves_with_the_clock_and_undated_tasks_keep_their_fixed_one():
    due = T0 + timedelta(hours=30)
    assert [urgency_at(due, T0 + timedelta(hours=h)) for h in (0, 10, 27, 30)] == [
        "normal",
        "high",
        "urgent",
        "overdue",
    ]
    assert urgency_at(None, T0, "low") == "low"
    assert urgency_at(None, T0) == "normal"


NOTIFY = {
    "created": {
        "type": "http",
        "method": "POST",
        "url": "https://chat.example/{{ task.role }}",
        "body": {"link": "{{ task.link }}", "due": "{{ task.due_at }}"},
    },
    "escalated": {"type": "noop", "to": "{{ task.roles }}"},
}


def test_notifications_are_scheduled_without_holding_the_instance():
    d, fake = approval_flow(notify=NOTIFY), FakeEnv()
    instance = start(d, fake)
    task = only_open(instance)
    (created,) = instance.scheduled_activities()
    assert created.is_notification and created.notify_event == "created"
    assert created.action["url"] == "https://chat.example/manager"
    assert created.action["body"]["link"] == f"/v1/tasks/{task.id}"
    assert created.action["body"]["due"] == (T0 + timedelta(hours=2)).isoformat()
    assert instance.status == "suspended"  # a notification never makes it `running`
    # Its result is recorded only: the task stays open, the node does not complete.
    assert engine.record_activity_result(
        instance,
        d,
        created.id,
        attempt=1,
        ok=True,
        output={"x": 1},
        error=None,
        retryable=False,
        env=fake.env(),
    )
    assert instance.activities[created.id].status is ActivityStatus.COMPLETED
    assert only_open(instance).id == task.id and "a" not in instance.node_results
    # Escalation schedules the `escalated` one.
    fake.advance(hours=2)
    engine.escalate(instance, d, task.id, fake.env())
    (escalated,) = instance.scheduled_activities()
    assert escalated.notify_event == "escalated"
    assert "director" in str(escalated.action["to"])


def test_a_failing_notification_never_fails_the_instance():
    d, fake = (
        approval_flow(notify={"created": {"type": "http", "url": "https://x.example"}}),
        FakeEnv(),
    )
    instance = start(d, fake)
    (activity,) = instance.scheduled_activities()
    attempt = 1
    while True:
        engine.record_activity_result(
            instance,
            d,
            activity.id,
            attempt=attempt,
            ok=False,
            output=None,
            error="boom",
            retryable=True,
            env=fake.env(),
        )
        current = instance.activities[activity.id]
        if current.status is not ActivityStatus.SCHEDULED:
            break
        assert current.idempotency_key.endswith(f":notify-created:{current.attempt}")
        attempt = current.attempt
    assert instance.activities[activity.id].status is ActivityStatus.FAILED
    assert instance.status == "suspended" and not instance.is_ended


def test_a_notification_that_does_not_render_is_recorded_failed():
    d, fake = (
        approval_flow(notify={"created": {"type": "noop", "x": "{{ task.nope.deeper }}"}}),
        FakeEnv(),
    )
    instance = start(d, fake)
    (activity,) = instance.activities.values()
    assert activity.status is ActivityStatus.FAILED
    assert instance.status == "suspended"


def _doc(node: dict[str, Any], timeout_route: bool = True) -> dict[str, Any]:
    routes = [{"from": "a", "to": "done"}]
    if timeout_route:
        routes.append({"from": "a", "to": "late", "outcome": "timeout"})
    late = [{"id": "late", "type": "end"}] if timeout_route else []
    return {"name": "doc", "nodes": [node, END, *late], "routes": routes}


@pytest.mark.parametrize("kind", ["approval", "user_task"])
def test_a_timeout_route_on_a_task_needs_sla_hours(kind):
    role = {"approver_role": "m"} if kind == "approval" else {"role": "m"}
    without = validate_document(_doc({"id": "a", "type": kind, **role}))
    assert any("no 'sla_hours'" in p.message for p in without), without
    assert [p.path for p in without if "sla_hours" in p.message] == ["$.routes[1].outcome"]
    assert validate_document(_doc({"id": "a", "type": kind, "sla_hours": 1, **role})) == []


def test_notify_and_escalate_are_validated_at_publish():
    base = {"id": "a", "type": "user_task", "role": "m", "sla_hours": 1}
    ok = {**base, "escalate": False, "notify": NOTIFY}
    assert validate_document(_doc(ok, timeout_route=False)) == []
    bad = {
        **base,
        "escalate": "no",
        "notify": {
            "created": {"url": "x"},
            "later": {"type": "noop"},
            "escalated": {"type": "noop", "x": "{{ 1 + }}"},
        },
    }
    problems = validate_document(_doc(bad, timeout_route=False))
    paths = sorted(p.path for p in problems)
    assert paths == [
        "$.nodes[0].escalate",
        "$.nodes[0].notify.created.type",
        "$.nodes[0].notify.escalated.x",
        "$.nodes[0].notify.later",
    ], problems
