"""The command path against the real PostgreSQL: concurrency, idempotency, read-model
consistency, parent/child in one transaction. Real threads, no mocks."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

import pytest

from application.callbacks import sign
from application.commands import (
    ClaimTask,
    CompleteTask,
    DeliverCallback,
    DeliverEvent,
    ResumeBookmark,
    StartInstance,
)
from application.errors import CommandConflictError
from application.read_models import InstanceFilter
from domain.errors import BookmarkNotOpenError
from tests.command_support import SECRET, TENANT, container, event_types, race

__all__ = ["container"]  # the fixture, shared with tests/integration/test_callback_commands.py

pytestmark = pytest.mark.integration


def test_concurrent_completions_of_one_task_apply_exactly_once(container: Any) -> None:
    view, _ = container.instances.start(StartInstance(TENANT, "one-approval"))
    task_id = view["bookmarks"][0]["id"]

    results = race(
        6,
        lambda i: container.tasks.complete(
            CompleteTask(
                TENANT, task_id, outcome="approved", data=None, comment=f"t{i}", user=f"u{i}"
            )
        ),
    )

    winners = [r for r in results if isinstance(r, tuple)]  # (view, replayed)
    losers = [r for r in results if not isinstance(r, tuple)]
    assert len(winners) == 1, results
    assert all(isinstance(e, BookmarkNotOpenError | CommandConflictError) for e in losers)
    assert event_types(container, view["id"]).count("TaskCompleted") == 1
    assert container.instances.get(TENANT, UUID(view["id"]))["status"] == "completed"


def test_concurrent_keyed_starts_create_one_instance(container: Any) -> None:
    results = race(
        6,
        lambda i: container.instances.start(
            StartInstance(TENANT, "one-approval", idempotency_key="same")
        ),
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({view["id"] for view, _ in results}) == 1
    assert sorted(created for _, created in results) == [False] * 5 + [True]
    page = container.instances.list(TENANT, InstanceFilter(definition="one-approval"), limit=50)
    assert len(page.items) == 1


def test_bookmark_is_found_by_token_right_after_the_start_returns(container: Any) -> None:
    for order in range(5):
        view, _ = container.instances.start(
            StartInstance(TENANT, "one-wait", input={"order": order})
        )
        token = view["bookmarks"][0]["token"]
        body = b'{"amount": 3}'
        result, replayed = container.callbacks.callback(
            DeliverCallback(
                token, body, sign(SECRET, body, int(time.time()), f"/v1/callbacks/{token}"), None
            )
        )
        assert (result["status"], replayed) == ("completed", False)
        assert container.instances.get(TENANT, UUID(view["id"]))["output"] == {
            "paid": {"amount": 3}
        }


def test_task_queue_reflects_each_command_immediately(container: Any) -> None:
    view, _ = container.instances.start(StartInstance(TENANT, "one-approval"))
    task_id = view["bookmarks"][0]["id"]
    assert container.tasks.get(TENANT, task_id)["status"] == "open"
    container.tasks.claim(ClaimTask(TENANT, task_id, "ann"))
    assert container.tasks.get(TENANT, task_id)["claimed_by"] == "ann"
    container.tasks.complete(
        CompleteTask(TENANT, task_id, outcome="rejected", data=None, comment=None, user="ann")
    )
    task = container.tasks.get(TENANT, task_id)
    assert (task["status"], task["outcome"]) == ("completed", "rejected")
    row = container.instances.list(
        TENANT, InstanceFilter(definition="one-approval", status="failed")
    ).items
    assert [r["id"] for r in row] == [view["id"]]


def test_concurrent_event_deliveries_with_one_key_resume_once(container: Any) -> None:
    view, _ = container.instances.start(StartInstance(TENANT, "one-wait", input={"order": "o-9"}))

    results = race(
        5,
        lambda i: container.instances.deliver_event(
            DeliverEvent(
                TENANT, "paid", correlation="o-9", payload={"n": i}, idempotency_key="delivery-1"
            )
        ),
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    bodies = [body for body, _ in results]
    assert all(body == bodies[0] for body in bodies)
    assert [replayed for _, replayed in results].count(False) == 1
    assert event_types(container, view["id"]).count("BookmarkResumed") == 1


def test_child_instance_starts_in_the_parents_transaction(container: Any) -> None:
    container.definitions.publish(
        TENANT,
        {
            "name": "parent-flow",
            "nodes": [
                {"id": "kid", "type": "sub_workflow", "definition": "one-approval"},
                {"id": "done", "type": "end", "output": {"kid": "nodes.kid.result"}},
            ],
            "routes": [{"from": "kid", "to": "done"}],
        },
    )
    parent, _ = container.instances.start(StartInstance(TENANT, "parent-flow"))
    child_id = parent["bookmarks"][0]["child_id"]
    child = container.instances.get(TENANT, UUID(child_id))
    assert child["parent"]["instance_id"] == parent["id"]
    container.tasks.complete(
        CompleteTask(
            TENANT,
            child["bookmarks"][0]["id"],
            outcome="approved",
            data=None,
            comment=None,
            user="u",
        )
    )
    # The child's end resumed the parent in the same command.
    assert container.instances.get(TENANT, UUID(parent["id"]))["status"] == "completed"


def test_due_timers_fire_once_and_wait_timeouts_take_their_route(container: Any) -> None:
    container.definitions.publish(
        TENANT,
        {
            "name": "timers",
            "nodes": [
                {"id": "pause", "type": "timer", "duration": "PT0S"},
                {"id": "wait", "type": "wait", "event": "never", "timeout": "PT0S"},
                {"id": "late", "type": "end", "output": {"late": "true"}},
                {"id": "done", "type": "end"},
            ],
            "routes": [
                {"from": "pause", "to": "wait"},
                {"from": "wait", "to": "done"},
                {"from": "wait", "to": "late", "outcome": "timeout"},
            ],
        },
    )
    view, _ = container.instances.start(StartInstance(TENANT, "timers"))
    assert view["bookmarks"][0]["kind"] == "timer"

    # Two workers racing over the same due timers: each timer fires exactly once.
    fired = race(2, lambda i: container.timers.fire_due(10))
    assert sum(fired) >= 1
    assert container.timers.fire_due(10) in (0, 1)  # the wait timeout, if not fired yet
    container.timers.fire_due(10)

    final = container.instances.get(TENANT, UUID(view["id"]))
    assert (final["status"], final["output"]) == ("completed", {"late": True})
    assert event_types(container, view["id"]).count("BookmarkResumed") == 2
    assert container.timers.seconds_until_next() is None


def test_a_reused_idempotency_key_for_another_request_is_refused(container: Any) -> None:
    from application.errors import IdempotencyKeyReusedError

    first, _ = container.instances.start(StartInstance(TENANT, "one-wait", input={"order": 1}))
    second, _ = container.instances.start(StartInstance(TENANT, "one-wait", input={"order": 2}))
    container.instances.resume(
        ResumeBookmark(
            TENANT, UUID(first["id"]), first["bookmarks"][0]["id"], {"a": 1}, idempotency_key="r1"
        )
    )
    # The same key on another bookmark is a client bug, not a repeated delivery.
    with pytest.raises(IdempotencyKeyReusedError):
        container.instances.resume(
            ResumeBookmark(
                TENANT,
                UUID(second["id"]),
                second["bookmarks"][0]["id"],
                {"a": 1},
                idempotency_key="r1",
            )
        )
    assert container.instances.get(TENANT, UUID(second["id"]))["status"] == "suspended"
    container.instances.start(
        StartInstance(TENANT, "one-wait", input={"order": 3}, idempotency_key="s1")
    )
    with pytest.raises(IdempotencyKeyReusedError):
        container.instances.start(StartInstance(TENANT, "one-approval", idempotency_key="s1"))
    again, created = container.instances.start(
        StartInstance(TENANT, "one-wait", input={"order": 4}, idempotency_key="s1")
    )
    assert (again["input"], created) == ({"order": 3}, False)  # the first start wins


def test_history_pages_follow_the_cursor(container: Any) -> None:
    view, _ = container.instances.start(StartInstance(TENANT, "one-approval"))
    container.tasks.complete(
        CompleteTask(
            TENANT,
            view["bookmarks"][0]["id"],
            outcome="approved",
            data=None,
            comment=None,
            user="u",
        )
    )
    everything, cursor = container.instances.history(TENANT, UUID(view["id"]))
    assert cursor is None
    seen, cursor = [], None
    while True:
        page, cursor = container.instances.history(TENANT, UUID(view["id"]), limit=2, cursor=cursor)
        seen.extend(page)
        if cursor is None:
            break
    assert (
        [e.version for e in seen]
        == [e.version for e in everything]
        == list(range(1, len(everything) + 1))
    )


def test_a_killed_task_workers_activity_is_rerun_once_with_the_same_key(container: Any) -> None:
    from datetime import timedelta

    from application.ports import ActionResult

    container.definitions.publish(
        TENANT,
        {
            "name": "one-call",
            "nodes": [
                {"id": "call", "type": "service_task", "action": {"type": "noop"}},
                {"id": "done", "type": "end"},
            ],
            "routes": [{"from": "call", "to": "done"}],
        },
    )
    view, _ = container.instances.start(StartInstance(TENANT, "one-call"))
    now = container.clock.now()

    # Given worker A leased the activity and died before recording anything
    (leased,) = container.activity_queue.claim("worker-a", 10, 30, now)
    assert container.activity_queue.claim("worker-b", 10, 30, now) == []  # still leased

    # When the lease runs out, worker B gets the same attempt with the same idempotency key
    (again,) = container.activity_queue.claim("worker-b", 10, 30, now + timedelta(seconds=31))
    assert (again.id, again.attempt, again.idempotency_key) == (
        leased.id,
        leased.attempt,
        f"{view['id']}:call:1",
    )
    assert container.activities.record(again, ActionResult(ok=True, output={"n": 1}))

    # Then a late result from A (it was only slow, not dead) is stale and changes nothing
    assert not container.activities.record(leased, ActionResult(ok=True, output={"n": 2}))
    final = container.instances.get(TENANT, UUID(view["id"]))
    assert final["status"] == "completed"
    assert event_types(container, view["id"]).count("ActivityCompleted") == 1


def test_children_and_event_triggers_pass_the_same_admission_as_direct_starts(
    container: Any,
) -> None:
    strict = {
        "name": "strict-child",
        "input_schema": {
            "type": "object",
            "required": ["n"],
            "properties": {"n": {"type": "integer"}},
        },
        "nodes": [{"id": "done", "type": "end", "output": {"n": "input.n"}}],
        "triggers": [{"type": "event", "event": "go"}],
    }
    container.definitions.publish(TENANT, strict)
    container.definitions.publish(
        TENANT,
        {
            "name": "caller",
            "nodes": [
                {
                    "id": "kid",
                    "type": "sub_workflow",
                    "definition": "strict-child",
                    "input": {"n": "input.n"},
                },
                {"id": "bad", "type": "end", "output": {"why": "nodes.kid.result.error"}},
                {"id": "done", "type": "end", "output": {"kid": "nodes.kid.result"}},
            ],
            "routes": [
                {"from": "kid", "to": "done"},
                {"from": "kid", "to": "bad", "outcome": "error"},
            ],
        },
    )

    good, _ = container.instances.start(StartInstance(TENANT, "caller", input={"n": 3}))
    assert good["status"] == "completed" and good["output"] == {"kid": {"n": 3}}
    # A child input that violates the child's input_schema fails the node: error route.
    bad, _ = container.instances.start(StartInstance(TENANT, "caller", input={"n": "three"}))
    assert bad["status"] == "completed"
    assert "input is invalid" in bad["output"]["why"]
    # A disabled child definition is refused the same way.
    container.definitions.set_enabled(TENANT, "strict-child", False)
    off, _ = container.instances.start(StartInstance(TENANT, "caller", input={"n": 3}))
    assert "disabled" in off["output"]["why"]
    container.definitions.set_enabled(TENANT, "strict-child", True)

    # An event trigger whose payload violates the schema starts nothing and says why.
    result, _ = container.instances.deliver_event(
        DeliverEvent(TENANT, "go", correlation=None, payload={"n": "x"})
    )
    assert result["started"] == []
    assert result["rejected"][0]["definition"] == "strict-child"
    accepted, _ = container.instances.deliver_event(
        DeliverEvent(TENANT, "go", correlation=None, payload={"n": 1})
    )
    assert len(accepted["started"]) == 1 and accepted["rejected"] == []
