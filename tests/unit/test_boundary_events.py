"""Boundary events in the domain (clock moved by hand): interrupting and non-interrupting
timers, `until` and events on tasks, waits, service tasks and sub-workflows; the host's
end closes its boundaries; every history replays to the same state."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from domain import engine
from domain.engine.boundary import UNBOUNDED, parse_timer
from domain.errors import BookmarkNotOpenError
from domain.instance import WorkflowInstance
from domain.state import ActivityStatus, BookmarkKind, BookmarkStatus
from tests.unit.engine_support import (
    T0,
    FakeEnv,
    definition,
    event_names,
    only_open,
    replay_stored,
    start,
    state,
)

DONE = {"id": "done", "type": "end"}
LATE = {"id": "late", "type": "end", "status": "failed", "error": "too late"}
# A reminder branch parks at a wait (the language has no branch end on this branch yet).
REMIND = {"id": "remind", "type": "service_task", "action": {"type": "noop"}}
PARKED = {"id": "parked", "type": "wait", "event": "never"}
REMIND_ROUTES = [{"from": "remind", "to": "parked"}, {"from": "parked", "to": "done"}]


def with_reminder(
    nodes: list[dict[str, Any]], routes: list[dict[str, Any]], boundary: tuple[dict, ...]
) -> Any:
    """The definition, with the reminder branch when a boundary leads to it."""
    if any(spec["to"] == "remind" for spec in boundary):
        nodes, routes = [*nodes, REMIND, PARKED], [*routes, *REMIND_ROUTES]
    return definition(nodes, routes)


def approval(*boundary: dict[str, Any], **fields: Any) -> Any:
    nodes = [
        {"id": "a", "type": "approval", "approver_role": "m", "boundary": list(boundary), **fields},
        DONE,
        LATE,
    ]
    routes = [
        {"from": "a", "to": "done", "outcome": "approved"},
        {"from": "a", "to": "late", "outcome": "rejected"},
    ]
    return with_reminder(nodes, routes, boundary)


def boundaries(instance: WorkflowInstance, open_only: bool = True) -> list[Any]:
    return [
        b
        for b in instance.bookmarks.values()
        if b.boundary_of is not None and (b.is_open or not open_only)
    ]


def assert_replays(instance: WorkflowInstance) -> None:
    assert state(replay_stored(instance)) == state(instance)


def test_parse_timer_forms() -> None:
    assert parse_timer("PT4H") == (1, timedelta(hours=4))
    assert parse_timer("R3/PT1H") == (3, timedelta(hours=1))
    assert parse_timer("R/PT10M") == (UNBOUNDED, timedelta(minutes=10))
    for bad in ("R0/PT1H", "R2/PT0S", "R2/soon", "4 hours"):
        with pytest.raises(ValueError):
            parse_timer(bad)


def test_an_interrupting_timer_cancels_the_task_and_takes_to() -> None:
    d, fake = approval({"timer": "PT4H", "to": "late"}), FakeEnv()
    instance = start(d, fake)
    task = only_open(instance, "task")
    (timer,) = boundaries(instance)
    assert (timer.kind, timer.boundary_of, timer.due_at) == (
        BookmarkKind.TIMER,
        task.id,
        T0 + timedelta(hours=4),
    )
    fake.advance(hours=4)
    engine.fire_timer(instance, d, timer.id, fake.env())
    assert instance.bookmarks[task.id].status is BookmarkStatus.CANCELLED
    assert instance.status == "failed" and instance.error["node_id"] == "late"
    names = event_names(instance)
    assert names.index("BoundaryFired") < names.index("Failed")
    fired = next(e for e in instance.pending_events if type(e).__name__ == "BoundaryFired")
    assert (fired.host_id, fired.index, fired.interrupting, fired.to) == (task.id, 0, True, "late")
    assert_replays(instance)


def test_completing_the_task_closes_its_boundaries() -> None:
    d, fake = approval({"timer": "PT4H", "to": "late"}, {"event": "x", "to": "late"}), FakeEnv()
    instance = start(d, fake)
    task = only_open(instance, "task")
    assert len(boundaries(instance)) == 2
    engine.complete_task(
        instance, d, task.id, outcome="approved", data=None, comment=None, completed_by="u",
        env=fake.env(),
    )  # fmt: skip
    assert instance.status == "completed"
    assert all(b.status is BookmarkStatus.CANCELLED for b in boundaries(instance, False))


def test_a_non_interrupting_repeating_reminder_fires_n_times_and_leaves_the_task_open() -> None:
    d, fake = approval({"timer": "R2/PT1H", "interrupting": False, "to": "remind"}), FakeEnv()
    instance = start(d, fake)
    task = only_open(instance, "task")
    for firing in (1, 2):
        (timer,) = boundaries(instance)
        assert timer.due_at == fake.now + timedelta(hours=1)
        fake.advance(hours=1)
        engine.fire_timer(instance, d, timer.id, fake.env())
        assert instance.bookmarks[task.id].is_open
        reminders = [a for a in instance.activities.values() if a.node_id == "remind"]
        assert len(reminders) == firing
    assert boundaries(instance) == []  # R2: no third firing
    assert instance.status == "running"  # the reminders' activities are scheduled
    assert_replays(instance)


def test_an_unbounded_repetition_rearms_until_the_host_closes() -> None:
    d, fake = approval({"timer": "R/PT1H", "interrupting": False, "to": "remind"}), FakeEnv()
    instance = start(d, fake)
    task = only_open(instance, "task")
    for _ in range(5):
        (timer,) = boundaries(instance)
        fake.advance(hours=1)
        engine.fire_timer(instance, d, timer.id, fake.env())
    assert len(boundaries(instance)) == 1
    engine.complete_task(
        instance, d, task.id, outcome="approved", data=None, comment=None, completed_by="u",
        env=fake.env(),
    )  # fmt: skip
    assert instance.status == "completed" and boundaries(instance) == []


def test_until_fires_once_at_the_computed_time() -> None:
    d = approval({"until": "input.deadline", "to": "late"})
    fake = FakeEnv()
    instance = start(d, fake, input={"deadline": (T0 + timedelta(days=2)).isoformat()})
    (timer,) = boundaries(instance)
    assert timer.due_at == T0 + timedelta(days=2)


def test_a_bad_until_fails_the_node_with_nothing_left_open() -> None:
    d = approval({"until": "input.deadline", "to": "late"})
    instance = start(d, FakeEnv(), input={"deadline": "not a time"})
    assert instance.status == "failed"
    assert "not an ISO-8601 timestamp" in instance.error["message"]
    assert instance.open_bookmarks() == []


def service_task(*boundary: dict[str, Any]) -> Any:
    nodes = [
        {"id": "s", "type": "service_task", "action": {"type": "noop"}, "boundary": list(boundary)},
        DONE,
        LATE,
    ]
    return with_reminder(nodes, [{"from": "s", "to": "done"}], boundary)


def test_an_event_boundary_withdraws_a_service_task_and_its_late_result_is_ignored() -> None:
    d = service_task({"event": "order.cancelled", "correlation": "input.order", "to": "late"})
    fake = FakeEnv()
    instance = start(d, fake, input={"order": 7})
    (activity,) = instance.scheduled_activities()
    (wait,) = boundaries(instance)
    assert (wait.kind, wait.event_type, wait.correlation, wait.boundary_of) == (
        BookmarkKind.WAIT,
        "order.cancelled",
        "7",
        activity.id,
    )
    engine.resume(instance, d, wait.id, payload={"why": "x"}, source="event", env=fake.env())
    assert instance.activities[activity.id].status is ActivityStatus.CANCELLED
    assert instance.status == "failed" and instance.error["node_id"] == "late"
    stale = engine.record_activity_result(
        instance, d, activity.id, attempt=1, ok=True, output={}, error=None, retryable=False,
        env=fake.env(),
    )  # fmt: skip
    assert stale is False
    assert_replays(instance)


def test_the_service_tasks_completion_closes_its_boundary() -> None:
    d, fake = service_task({"timer": "PT1M", "to": "late"}), FakeEnv()
    instance = start(d, fake)
    (activity,) = instance.scheduled_activities()
    (timer,) = boundaries(instance)
    engine.record_activity_result(
        instance, d, activity.id, attempt=1, ok=True, output={}, error=None, retryable=False,
        env=fake.env(),
    )  # fmt: skip
    assert instance.status == "completed"
    assert instance.bookmarks[timer.id].status is BookmarkStatus.CANCELLED
    with pytest.raises(BookmarkNotOpenError):
        engine.fire_timer(instance, d, timer.id, fake.env())


def test_a_non_interrupting_event_boundary_on_a_wait_rearms_with_the_same_correlation() -> None:
    nodes = [
        {
            "id": "w",
            "type": "wait",
            "event": "shipped",
            "boundary": [
                {
                    "event": "asked",
                    "correlation": "input.order",
                    "interrupting": False,
                    "to": "remind",
                    "result_var": "question",
                },
            ],
        },  # fmt: skip
        DONE,
        REMIND,
        PARKED,
    ]
    d = definition(nodes, [{"from": "w", "to": "done"}, *REMIND_ROUTES])
    fake = FakeEnv()
    instance = start(d, fake, input={"order": "o-1"})
    host = next(b for b in instance.open_bookmarks() if b.boundary_of is None)
    for n in (1, 2):
        (boundary,) = boundaries(instance)
        assert boundary.correlation == "o-1"
        engine.resume(instance, d, boundary.id, payload={"n": n}, source="event", env=fake.env())
        assert instance.bookmarks[host.id].is_open
        assert instance.variables["question"] == {"n": n}
    with pytest.raises(BookmarkNotOpenError):  # the fired one is consumed
        engine.resume(instance, d, boundary.id, payload=None, source="event", env=fake.env())
    engine.resume(instance, d, host.id, payload={}, source="event", env=fake.env())
    assert instance.status == "completed"
    assert_replays(instance)


def test_an_interrupting_timer_on_a_sub_workflow_cancels_the_child_bookmark() -> None:
    nodes = [
        {"id": "c", "type": "sub_workflow", "definition": "child-flow",
         "boundary": [{"timer": "PT1H", "to": "late"}]},
        DONE,
        LATE,
    ]  # fmt: skip
    d, fake = definition(nodes, [{"from": "c", "to": "done"}]), FakeEnv()
    instance = start(d, fake)
    child = only_open(instance, "child")
    (timer,) = boundaries(instance)
    fake.advance(hours=1)
    engine.fire_timer(instance, d, timer.id, fake.env())
    # The settle step (application/session.py) cancels the child of a cancelled bookmark.
    assert instance.bookmarks[child.id].status is BookmarkStatus.CANCELLED
    assert instance.status == "failed"


def test_the_sla_timeout_route_still_works_and_closes_the_boundaries() -> None:
    nodes = [
        {"id": "a", "type": "approval", "approver_role": "m", "sla_hours": 2,
         "boundary": [{"timer": "R/PT30M", "interrupting": False, "to": "remind"}]},
        DONE, LATE, REMIND, PARKED,
    ]  # fmt: skip
    routes = [
        {"from": "a", "to": "done", "outcome": "approved"},
        {"from": "a", "to": "done", "outcome": "rejected"},
        {"from": "a", "to": "late", "outcome": "timeout"},
        *REMIND_ROUTES,
    ]
    d, fake = definition(nodes, routes), FakeEnv()
    instance = start(d, fake)
    task = only_open(instance, "task")
    fake.advance(hours=2)
    assert engine.escalate(instance, d, task.id, fake.env()) == "timeout"
    assert instance.status == "failed" and boundaries(instance) == []
