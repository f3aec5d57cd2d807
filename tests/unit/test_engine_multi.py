"""Multi-instance nodes (`for_each`, WCP-12/13/14) in the engine: 0, 1 and 1,000 items,
parallel and sequential, the completion expression, bounds, batches, replay."""

from __future__ import annotations

from typing import Any

import pytest

from domain import engine
from domain.env import CommandEnv, ForEachLimits
from domain.state import BATCH_PURPOSE
from tests.unit.engine_support import (
    FakeEnv,
    complete_bookmark,
    definition,
    event_names,
    replay,
    start,
    state,
)

END = {"id": "done", "type": "end", "output": {"results": "vars.results"}}


def flow(node_type: str = "service_task", **for_each: Any):
    spec = {"items": "input.items", **for_each}
    node: dict[str, Any] = {"id": "each", "type": node_type, "result_var": "results"}
    node["for_each"] = spec
    if node_type == "service_task":
        node["action"] = {"type": "http", "url": "http://x/{{ item.id }}?i={{ index }}"}
    elif node_type == "approval":
        node["approver_role"] = "reviewer"
        node["assignee"] = "{{ item }}"
    elif node_type == "sub_workflow":
        node["definition"] = "child-flow"
        node["input"] = {"who": "item", "at": "index"}
    return definition([node, END], [{"from": "each", "to": "done"}])


def ok(instance, d, fake, activity, output, env: CommandEnv | None = None) -> bool:
    return engine.record_activity_result(
        instance,
        d,
        activity.id,
        attempt=activity.attempt,
        ok=True,
        output=output,
        error=None,
        retryable=True,
        env=env or fake.env(),
    )


def items_of(instance):
    return [a for a in instance.scheduled_activities() if a.item_index is not None]


def test_empty_list_completes_at_once():
    d, fake = flow(), FakeEnv()
    instance = start(d, fake, {"items": []})
    assert instance.status == "completed"
    assert instance.output == {"results": []}
    assert "ForEachStarted" in event_names(instance)
    assert "ForEachCompleted" in event_names(instance)


def test_one_item_parallel_service_task():
    d, fake = flow(), FakeEnv()
    instance = start(d, fake, {"items": [{"id": "a"}]})
    (activity,) = instance.scheduled_activities()
    assert activity.action["url"] == "http://x/a?i=0"
    assert activity.idempotency_key == f"{instance.id}:each:1:item0:1"
    assert ok(instance, d, fake, activity, {"n": 1})
    assert instance.output == {"results": [{"n": 1}]}


def test_parallel_results_are_in_item_order_whatever_the_finishing_order():
    d, fake = flow(), FakeEnv()
    instance = start(d, fake, {"items": [{"id": "a"}, {"id": "b"}, {"id": "c"}]})
    acts = items_of(instance)
    assert [a.item_index for a in acts] == [0, 1, 2]
    for activity in reversed(acts):
        ok(instance, d, fake, activity, activity.action["url"])
        assert instance.status == ("completed" if activity.item_index == 0 else "running")
    assert instance.output["results"] == ["http://x/a?i=0", "http://x/b?i=1", "http://x/c?i=2"]
    assert state(replay(instance)) == state(instance)


def test_sequential_opens_one_item_after_the_other():
    d, fake = flow(mode="sequential"), FakeEnv()
    instance = start(d, fake, {"items": [{"id": "a"}, {"id": "b"}]})
    (first,) = instance.scheduled_activities()
    assert first.item_index == 0
    ok(instance, d, fake, first, 1)
    (second,) = instance.scheduled_activities()
    assert second.item_index == 1
    ok(instance, d, fake, second, 2)
    assert instance.output == {"results": [1, 2]}


def test_thousand_items_start_in_bounded_batches_and_complete():
    d, fake = flow(), FakeEnv()
    env_limits = ForEachLimits(max_items=10_000, batch=100)

    def env() -> CommandEnv:
        base = fake.env()
        return CommandEnv(
            now=base.now, new_id=base.new_id, new_token=base.new_token, for_each=env_limits
        )

    from uuid import uuid4

    from domain.instance import WorkflowInstance

    instance = WorkflowInstance(
        id=uuid4(),
        tenant="t1",
        definition=d.name,
        definition_version=1,
        input={"items": [{"id": str(i)} for i in range(1000)]},
        correlation_id=None,
        idempotency_key=None,
        parent=None,
    )
    engine.start(instance, d, env())
    commands = 1
    biggest = len(instance.pending_events)
    while True:
        batches = [a for a in instance.scheduled_activities() if a.purpose == BATCH_PURPOSE]
        if not batches:
            break
        assert len(batches) == 1
        before = len(instance.pending_events)
        ok(instance, d, fake, batches[0], None, env())
        biggest = max(biggest, len(instance.pending_events) - before)
        commands += 1
    assert commands == 10  # 1,000 items / 100 per command
    assert biggest < 250  # no command wrote the thousand items at once
    acts = items_of(instance)
    assert len(acts) == 1000
    for activity in acts:
        ok(instance, d, fake, activity, activity.item_index, env())
    assert instance.status == "completed"
    assert instance.output["results"] == list(range(1000))


def test_too_many_items_fail_the_node_clearly():
    d, fake = flow(), FakeEnv()
    base = fake.env()
    from uuid import uuid4

    from domain.instance import WorkflowInstance

    instance = WorkflowInstance(
        id=uuid4(),
        tenant="t1",
        definition=d.name,
        definition_version=1,
        input={"items": [1, 2, 3]},
        correlation_id=None,
        idempotency_key=None,
        parent=None,
    )
    engine.start(
        instance,
        d,
        CommandEnv(
            now=base.now,
            new_id=base.new_id,
            new_token=base.new_token,
            for_each=ForEachLimits(max_items=2),
        ),
    )
    assert instance.status == "failed"
    assert "more than the limit of 2" in instance.error["message"]


def test_items_that_are_not_a_list_fail_the_node():
    d, fake = flow(), FakeEnv()
    instance = start(d, fake, {"items": {"a": 1}})
    assert instance.status == "failed"
    assert "not a list" in instance.error["message"]


def test_completion_expression_cancels_the_approvals_still_open():
    d, fake = flow("approval", completion="approvals >= 2"), FakeEnv()
    instance = start(d, fake, {"items": ["ann", "bob", "cy"]})
    tasks = sorted(instance.open_bookmarks(), key=lambda b: b.item_index)
    assert [t.assignee for t in tasks] == ["ann", "bob", "cy"]
    for task in tasks[:2]:
        complete_bookmark(instance, d, task.id, fake, outcome="approved", by=task.assignee)
    assert instance.status == "completed"
    assert instance.bookmarks[tasks[2].id].status == "cancelled"
    results = instance.output["results"]
    assert [r and r["outcome"] for r in results] == ["approved", "approved", None]
    names = event_names(instance)
    assert names.count("ForEachItemCompleted") == 2 and "ForEachCompleted" in names
    assert state(replay(instance)) == state(instance)


def test_a_rejection_does_not_satisfy_the_completion():
    d, fake = flow("approval", completion="approvals >= 2"), FakeEnv()
    instance = start(d, fake, {"items": ["ann", "bob"]})
    first, second = sorted(instance.open_bookmarks(), key=lambda b: b.item_index)
    complete_bookmark(instance, d, first.id, fake, outcome="rejected")
    assert instance.status == "suspended"
    complete_bookmark(instance, d, second.id, fake, outcome="approved", by="bob")
    assert instance.status == "completed"  # all items finished


def test_sub_workflow_items_each_get_a_child_with_the_item():
    d, fake = flow("sub_workflow"), FakeEnv()
    instance = start(d, fake, {"items": ["x", "y"]})
    children = sorted(instance.open_bookmarks(), key=lambda b: b.item_index)
    assert [c.child_input for c in children] == [{"who": "x", "at": 0}, {"who": "y", "at": 1}]
    engine.child_finished(
        instance, d, children[1].id, status="completed", output={"y": 1}, error=None, env=fake.env()
    )
    engine.child_finished(
        instance,
        d,
        children[0].id,
        status="failed",
        output=None,
        error={"message": "boom"},
        env=fake.env(),
    )
    assert instance.status == "failed"
    assert "boom" in instance.error["message"]


def test_an_item_failing_for_good_cancels_the_others_and_takes_the_error_route():
    node = {
        "id": "each",
        "type": "service_task",
        "for_each": {"items": "input.items"},
        "action": {"type": "http", "url": "http://x/{{ item }}"},
        "retry": {"max_attempts": 2},
    }
    d = definition(
        [node, {"id": "done", "type": "end"}, {"id": "oops", "type": "end", "status": "failed"}],
        [{"from": "each", "to": "done"}, {"from": "each", "to": "oops", "outcome": "error"}],
    )
    fake = FakeEnv()
    instance = start(d, fake, {"items": ["a", "b"]})
    first, second = items_of(instance)
    engine.record_activity_result(
        instance,
        d,
        first.id,
        attempt=1,
        ok=False,
        output=None,
        error="503",
        retryable=True,
        env=fake.env(),
    )
    retried = instance.activities[first.id]
    assert retried.attempt == 2
    assert retried.idempotency_key == f"{instance.id}:each:1:item0:2"
    engine.record_activity_result(
        instance,
        d,
        first.id,
        attempt=2,
        ok=False,
        output=None,
        error="503",
        retryable=True,
        env=fake.env(),
    )
    assert instance.activities[second.id].status == "cancelled"
    assert instance.status == "failed" and instance.error["node_id"] == "oops"


@pytest.mark.parametrize("mode", ["parallel", "sequential"])
def test_withdrawing_an_item_task_counts_it_as_cancelled(mode):
    d, fake = flow("approval", mode=mode), FakeEnv()
    instance = start(d, fake, {"items": ["ann", "bob"]})
    first = min(instance.open_bookmarks(), key=lambda b: b.item_index)
    engine.withdraw_task(instance, d, first.id, reason="left", by="ops", env=fake.env())
    (second,) = instance.open_bookmarks()
    complete_bookmark(instance, d, second.id, fake, outcome="approved", by="bob")
    assert [r["outcome"] for r in instance.output["results"]] == ["cancelled", "approved"]
