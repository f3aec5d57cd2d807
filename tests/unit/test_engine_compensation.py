"""Compensation (saga) in the engine: undo steps of completed service tasks, newest first,
one activity each with its own stable idempotency key; task withdrawal."""

from __future__ import annotations

from typing import Any

from domain import engine
from domain.state import COMPENSATE_PURPOSE
from tests.unit.engine_support import FakeEnv, definition, event_names, replay, start, state


def step(node_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "service_task",
        "action": {"type": "http", "url": f"http://x/{node_id}"},
        "compensation": {"type": "http", "url": f"http://x/undo/{node_id}/{{{{ result.ref }}}}"},
        "retry": {"max_attempts": 2},
        **extra,
    }


def saga(via_error_route: bool = True):
    nodes = [step("book_hotel"), step("book_flight"), step("charge")]
    routes = [
        {"from": "book_hotel", "to": "book_flight"},
        {"from": "book_flight", "to": "charge"},
        {"from": "charge", "to": "done"},
    ]
    nodes.append({"id": "done", "type": "end"})
    if via_error_route:
        nodes.append({"id": "undo", "type": "compensate"})
        nodes.append({"id": "failed", "type": "end", "status": "failed", "error": "rolled back"})
        routes += [
            {"from": "charge", "to": "undo", "outcome": "error"},
            {"from": "undo", "to": "failed"},
        ]
    return definition(nodes, routes)


def record(instance, d, fake, activity, ok=True, output=None, retryable=True):
    return engine.record_activity_result(
        instance,
        d,
        activity.id,
        attempt=activity.attempt,
        ok=ok,
        output=output,
        error=None if ok else "HTTP 500",
        retryable=retryable,
        env=fake.env(),
    )


def only(instance):
    (activity,) = instance.scheduled_activities()
    return activity


def test_failing_step_compensates_completed_steps_in_reverse_order():
    d, fake = saga(), FakeEnv()
    instance = start(d, fake)
    record(instance, d, fake, only(instance), output={"ref": "H1"})
    record(instance, d, fake, only(instance), output={"ref": "F1"})
    charge = only(instance)
    record(instance, d, fake, charge, ok=False, retryable=False)
    undone = []
    while instance.status == "running":
        activity = only(instance)
        assert activity.purpose == COMPENSATE_PURPOSE
        undone.append((activity.action["url"], activity.idempotency_key))
        record(instance, d, fake, activity, output={"status": 200})
    assert [u for u, _ in undone] == ["http://x/undo/book_flight/F1", "http://x/undo/book_hotel/H1"]
    keys = [k for _, k in undone]
    assert keys == [
        f"{instance.id}:compensate:book_flight:2",
        f"{instance.id}:compensate:book_hotel:1",
    ]
    assert instance.status == "failed" and instance.error["message"] == "rolled back"
    names = event_names(instance)
    assert names.count("CompensationRegistered") == 2
    assert names.count("StepCompensated") == 2 and "CompensationCompleted" in names
    assert state(replay(instance)) == state(instance)


def test_a_compensation_is_retried_with_the_same_key_then_fails_the_instance():
    d, fake = saga(), FakeEnv()
    instance = start(d, fake)
    record(instance, d, fake, only(instance), output={"ref": "H1"})
    record(instance, d, fake, only(instance), ok=False, retryable=False)  # book_flight fails
    # book_flight has no error route: the instance fails without compensating
    assert instance.status == "failed"

    d, fake = saga(), FakeEnv()
    instance = start(d, fake)
    record(instance, d, fake, only(instance), output={"ref": "H1"})
    record(instance, d, fake, only(instance), output={"ref": "F1"})
    record(instance, d, fake, only(instance), ok=False, retryable=False)
    undo = only(instance)
    key = undo.idempotency_key
    record(instance, d, fake, undo, ok=False)
    retried = only(instance)
    assert retried.id == undo.id and retried.attempt == 2 and retried.idempotency_key == key
    record(instance, d, fake, retried, ok=False)
    assert instance.status == "failed"
    assert "compensation of book_flight failed" in instance.error["message"]


def test_end_with_compensate_undoes_then_ends_with_its_status():
    nodes = [step("reserve"), {"id": "finish", "type": "end", "compensate": True}]
    d, fake = definition(nodes, [{"from": "reserve", "to": "finish"}]), FakeEnv()
    instance = start(d, fake)
    record(instance, d, fake, only(instance), output={"ref": "R1"})
    assert instance.status == "running"
    undo = only(instance)
    assert undo.action["url"] == "http://x/undo/reserve/R1"
    record(instance, d, fake, undo)
    assert instance.status == "completed"


def test_compensate_with_nothing_to_undo_goes_straight_on():
    nodes = [{"id": "undo", "type": "compensate"}, {"id": "done", "type": "end"}]
    d = definition(nodes, [{"from": "undo", "to": "done"}])
    assert start(d).status == "completed"


def test_withdrawn_task_follows_its_cancelled_route_else_fails_the_node():
    task = {"id": "review", "type": "user_task", "role": "ops"}
    ends = [{"id": "done", "type": "end"}, {"id": "gone", "type": "end", "output": {"why": "'w'"}}]
    with_route = definition(
        [task, *ends],
        [
            {"from": "review", "to": "done"},
            {"from": "review", "to": "gone", "outcome": "cancelled"},
        ],
    )
    fake = FakeEnv()
    instance = start(with_route, fake)
    (bookmark,) = instance.open_bookmarks()
    engine.withdraw_task(instance, with_route, bookmark.id, reason="dup", by="op", env=fake.env())
    assert instance.status == "completed" and instance.output == {"why": "w"}
    assert instance.bookmarks[bookmark.id].status == "cancelled"

    without = definition([task, ends[0]], [{"from": "review", "to": "done"}])
    instance = start(without, fake)
    (bookmark,) = instance.open_bookmarks()
    engine.withdraw_task(instance, without, bookmark.id, reason=None, by="op", env=fake.env())
    assert instance.status == "failed"
    assert instance.error["message"] == f"task {bookmark.id} withdrawn by op"
