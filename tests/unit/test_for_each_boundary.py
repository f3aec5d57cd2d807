"""Boundary events on a `for_each` node (domain engine, clock moved by hand): an interrupting
boundary cancels every open item (tasks, activities, the next batch) and follows `to`; a
non-interrupting one starts `to` alongside and leaves the items open; the run's end closes
its boundaries; every history replays to the same state."""

from __future__ import annotations

from typing import Any

from domain import engine
from domain.engine import multi
from domain.env import CommandEnv, ForEachLimits
from domain.instance import WorkflowInstance
from domain.state import BATCH_PURPOSE, ActivityStatus, BookmarkStatus
from tests.unit.engine_support import (
    FakeEnv,
    definition,
    event_names,
    replay_stored,
    start,
    state,
)

DONE = {"id": "done", "type": "end", "output": {"results": "vars.results"}}
LATE = {"id": "late", "type": "end", "status": "failed", "error": "too late"}
REMIND = {"id": "remind", "type": "service_task", "action": {"type": "noop"}}
PARKED = {"id": "parked", "type": "end", "terminate": False}


def each(node_type: str, *boundary: dict[str, Any]) -> Any:
    node: dict[str, Any] = {
        "id": "each",
        "type": node_type,
        "result_var": "results",
        "for_each": {"items": "input.items"},
        "boundary": list(boundary),
    }
    if node_type == "service_task":
        node["action"] = {"type": "http", "url": "http://x/{{ item }}"}
    else:
        node["approver_role"] = "reviewer"
        node["assignee"] = "{{ item }}"
    nodes, routes = [node, DONE], [{"from": "each", "to": "done"}]
    targets = {spec["to"] for spec in boundary}
    if "late" in targets:
        nodes.append(LATE)
    if "remind" in targets:
        nodes += [REMIND, PARKED]
        routes.append({"from": "remind", "to": "parked"})
    return definition(nodes, routes)


def boundaries(instance: WorkflowInstance) -> list[Any]:
    return [b for b in instance.open_bookmarks() if b.boundary_of is not None]


def item_tasks(instance: WorkflowInstance) -> list[Any]:
    return sorted(
        (b for b in instance.open_bookmarks() if b.item_index is not None),
        key=lambda b: b.item_index,
    )


def item_activities(instance: WorkflowInstance) -> list[Any]:
    return [a for a in instance.scheduled_activities() if a.item_index is not None]


def approve(instance: WorkflowInstance, d: Any, task: Any, fake: FakeEnv) -> None:
    engine.complete_task(
        instance, d, task.id, outcome="approved", data=None, comment=None,
        completed_by=task.assignee, env=fake.env(),
    )  # fmt: skip


def assert_replays(instance: WorkflowInstance) -> None:
    assert state(replay_stored(instance)) == state(instance)


def test_the_boundaries_attach_to_the_run_of_the_node() -> None:
    d, fake = each("approval", {"timer": "PT4H", "to": "late"}), FakeEnv()
    instance = start(d, fake, {"items": ["ann", "bob"]})
    (timer,) = boundaries(instance)
    assert timer.boundary_of == multi.host_id("each", 1)
    assert len(item_tasks(instance)) == 2


def test_an_interrupting_timer_cancels_every_item_task_and_takes_to() -> None:
    d, fake = each("approval", {"timer": "PT4H", "to": "late"}), FakeEnv()
    instance = start(d, fake, {"items": ["ann", "bob", "cy"]})
    first, *rest = item_tasks(instance)
    approve(instance, d, first, fake)  # one item finished before the timer
    (timer,) = boundaries(instance)
    fake.advance(hours=4)
    engine.fire_timer(instance, d, timer.id, fake.env())
    assert all(instance.bookmarks[t.id].status is BookmarkStatus.CANCELLED for t in rest)
    assert "each" not in instance.for_each
    assert instance.status == "failed" and instance.error["node_id"] == "late"
    names = event_names(instance)
    assert names.index("BoundaryFired") < names.index("ForEachCompleted") < names.index("Failed")
    done = [e for e in instance.pending_events if type(e).__name__ == "ForEachCompleted"]
    assert [(e.completed, e.cancelled) for e in done] == [(1, 2)]
    assert_replays(instance)


def test_an_interrupting_event_cancels_the_activities_and_the_next_batch() -> None:
    d, fake = each("service_task", {"event": "stop", "to": "late"}), FakeEnv()
    base = fake.env()
    env = CommandEnv(
        now=base.now,
        new_id=base.new_id,
        new_token=base.new_token,
        for_each=ForEachLimits(max_items=100, batch=2),
    )
    instance = WorkflowInstance(
        id=__import__("uuid").uuid4(),
        tenant="t1",
        definition=d.name,
        definition_version=1,
        input={"items": ["a", "b", "c", "d", "e"]},
        correlation_id=None,
        idempotency_key=None,
        parent=None,
    )
    engine.start(instance, d, env)
    acts = item_activities(instance)
    (batch,) = [a for a in instance.scheduled_activities() if a.purpose == BATCH_PURPOSE]
    assert len(acts) == 2
    (stop,) = boundaries(instance)
    engine.resume(instance, d, stop.id, payload={"why": "x"}, source="event:stop", env=fake.env())
    for activity in (*acts, batch):
        assert instance.activities[activity.id].status is ActivityStatus.CANCELLED
    assert instance.status == "failed" and instance.error["node_id"] == "late"
    # A worker that was running an item records a stale result: ignored.
    late = engine.record_activity_result(
        instance, d, acts[0].id, attempt=1, ok=True, output=1, error=None, retryable=False,
        env=fake.env(),
    )  # fmt: skip
    assert late is False
    assert_replays(instance)


def test_a_non_interrupting_reminder_fires_twice_and_leaves_the_items_open() -> None:
    reminder = {"timer": "R2/PT1H", "interrupting": False, "to": "remind"}
    d, fake = each("approval", reminder), FakeEnv()
    instance = start(d, fake, {"items": ["ann", "bob"]})
    tasks = item_tasks(instance)
    for firing in (1, 2):
        (timer,) = boundaries(instance)
        fake.advance(hours=1)
        engine.fire_timer(instance, d, timer.id, fake.env())
        assert [t.id for t in item_tasks(instance)] == [t.id for t in tasks]
        assert len([a for a in instance.activities.values() if a.node_id == "remind"]) == firing
    assert boundaries(instance) == []  # R2: no third firing
    for task in tasks:
        approve(instance, d, task, fake)
    reminders = [a for a in instance.scheduled_activities() if a.node_id == "remind"]
    for activity in reminders:
        engine.record_activity_result(
            instance, d, activity.id, attempt=1, ok=True, output=None, error=None,
            retryable=False, env=fake.env(),
        )  # fmt: skip
    assert instance.status == "completed"
    assert [r["outcome"] for r in instance.output["results"]] == ["approved", "approved"]
    assert_replays(instance)


def test_the_run_finishing_closes_its_boundaries() -> None:
    reminder = {"timer": "R/PT1H", "interrupting": False, "to": "remind"}
    d, fake = each("approval", {"timer": "PT4H", "to": "late"}, reminder), FakeEnv()
    instance = start(d, fake, {"items": ["ann"]})
    assert len(boundaries(instance)) == 2
    approve(instance, d, item_tasks(instance)[0], fake)
    assert instance.status == "completed"
    assert boundaries(instance) == []
    assert_replays(instance)


def test_an_item_failing_closes_the_boundaries_too() -> None:
    d, fake = each("service_task", {"timer": "PT4H", "to": "late"}), FakeEnv()
    instance = start(d, fake, {"items": ["a", "b"]})
    first, _ = item_activities(instance)
    engine.record_activity_result(
        instance, d, first.id, attempt=1, ok=False, output=None, error="boom",
        retryable=False, env=fake.env(),
    )  # fmt: skip
    assert instance.status == "failed" and instance.error["node_id"] == "each"
    assert boundaries(instance) == []


def test_an_empty_list_opens_no_boundary() -> None:
    d, fake = each("approval", {"timer": "PT4H", "to": "late"}), FakeEnv()
    instance = start(d, fake, {"items": []})
    assert instance.status == "completed"
    assert [b for b in instance.bookmarks.values() if b.boundary_of is not None] == []


def test_a_second_run_of_the_node_gets_boundaries_of_its_own() -> None:
    # A loop back into the for_each: the first run's boundary must not count for the second.
    node = {
        "id": "each",
        "type": "approval",
        "approver_role": "r",
        "assignee": "{{ item }}",
        "result_var": "results",
        "for_each": {"items": "input.items"},
        "boundary": [{"timer": "PT4H", "to": "late"}],
    }
    again = {"id": "again", "type": "gateway"}
    zero = {"id": "zero", "type": "set", "variables": {"n": "0"}, "start": True}
    count = {"id": "count", "type": "set", "variables": {"n": "vars.n + 1"}}
    d = definition(
        [zero, node, again, DONE, LATE, count],
        [
            {"from": "zero", "to": "each"},
            {"from": "each", "to": "again"},
            {"from": "again", "to": "count", "condition": "vars.n < 1"},
            {"from": "again", "to": "done", "default": True},
            {"from": "count", "to": "each"},
        ],
    )
    fake = FakeEnv()
    instance = start(d, fake, {"items": ["ann"]})
    (first,) = boundaries(instance)
    approve(instance, d, item_tasks(instance)[0], fake)
    assert instance.bookmarks[first.id].status is BookmarkStatus.CANCELLED
    (second,) = boundaries(instance)  # the first was closed before the node was re-entered
    assert second.id != first.id and second.boundary_of == first.boundary_of
    approve(instance, d, item_tasks(instance)[0], fake)
    assert instance.status == "completed"
    assert_replays(instance)


def test_a_migration_renaming_the_node_keeps_its_boundary_attached() -> None:
    from domain.definition import Definition
    from domain.engine import migration

    d, fake = each("approval", {"timer": "PT4H", "to": "late"}), FakeEnv()
    instance = start(d, fake, {"items": ["ann", "bob"]})
    document = dict(d.document)
    document["nodes"] = [
        {**n, "id": "review"} if n["id"] == "each" else n for n in d.document["nodes"]
    ]
    document["routes"] = [
        {**r, "from": "review"} if r["from"] == "each" else r for r in d.document["routes"]
    ]
    renamed = Definition.from_document(document, version=2)
    migration.migrate(
        instance, d, renamed, {"each": "review"}, by="ops", reason=None, env=fake.env()
    )
    (timer,) = boundaries(instance)  # still open: its host is the renamed node's run
    assert timer.node_id == "review" and "review" in instance.for_each
    fake.advance(hours=4)
    engine.fire_timer(instance, renamed, timer.id, fake.env())
    assert instance.status == "failed" and instance.error["node_id"] == "late"
    names = event_names(instance)
    # The run was cancelled as the boundary's host (not merely closed by the instance's end).
    assert names.index("BoundaryFired") < names.index("ForEachCompleted") < names.index("Failed")
    assert "review" not in instance.for_each
