"""WCP-13 and WCP-15 through the engine (the other multi-instance patterns, WCP-12 and 14,
are in test_engine_multi.py and tests/integration/test_for_each_emit.py).

WCP-13: a `for_each` over a list written in the definition (known at design time).
WCP-15: instances added while earlier ones still run, their number unknown until the
last is added: a loop whose `parallel` fork starts one task per arriving request in a
branch that ends on its own (`"terminate": false`); the instance completes when the loop
has stopped and every task is done (implicit termination, WCP-11).
"""

from __future__ import annotations

from typing import Any

from domain import engine
from domain.definition import Definition
from domain.instance import WorkflowInstance
from tests.unit.engine_support import (
    FakeEnv,
    complete_bookmark,
    definition,
    replay_stored,
    start,
    state,
)


def complete(instance: WorkflowInstance, d: Definition, bookmark_id: str, fake: FakeEnv) -> None:
    complete_bookmark(instance, d, bookmark_id, fake, data={"ok": True})


def test_wcp13_multiple_instances_with_a_priori_design_time_knowledge():
    reviews: dict[str, Any] = {
        "id": "review",
        "type": "user_task",
        "role": "reviewer",
        "assignee": "{{ item }}",
        "result_var": "reviews",
        "for_each": {"items": "['legal', 'finance', 'it']", "as": "item", "mode": "parallel"},
    }
    d = definition(
        [reviews, {"id": "done", "type": "end", "output": {"n": "len(vars.reviews)"}}],
        [{"from": "review", "to": "done"}],
    )
    fake = FakeEnv()
    instance = start(d, fake)
    tasks = sorted(instance.open_bookmarks(), key=lambda b: b.item_index)
    assert [t.assignee for t in tasks] == ["legal", "finance", "it"]  # all three at once
    for t in reversed(tasks):  # finishing order does not matter
        assert instance.status == "suspended"
        complete(instance, d, t.id, fake)
    assert (instance.status, instance.output) == ("completed", {"n": 3})
    assert state(replay_stored(instance)) == state(instance)


def wcp15_flow() -> Definition:
    return definition(
        [
            {"id": "request", "type": "wait", "event": "request.added"},
            {"id": "more", "type": "gateway"},
            {"id": "fork", "type": "parallel"},
            {
                "id": "handle",
                "type": "user_task",
                "role": "clerk",
                "assignee": "{{ nodes.request.result.who }}",
            },
            {"id": "handled", "type": "end", "terminate": False},
            {"id": "closed", "type": "end", "terminate": False},
        ],
        [
            {"from": "request", "to": "more"},
            {"from": "more", "to": "closed", "condition": "get(nodes.request.result, 'last')"},
            {"from": "more", "to": "fork", "default": True},
            {"from": "fork", "to": "handle"},
            {"from": "fork", "to": "request"},
            {"from": "handle", "to": "handled"},
        ],
        output={"ok": "true"},
    )


def test_wcp15_multiple_instances_without_a_priori_run_time_knowledge():
    d, fake = wcp15_flow(), FakeEnv()
    instance = start(d, fake)

    def request(payload: dict[str, Any]) -> None:
        (wait,) = [b for b in instance.open_bookmarks() if b.node_id == "request"]
        engine.resume(instance, d, wait.id, payload=payload, source="t", env=fake.env())

    def handling() -> list[str]:
        return sorted(str(b.assignee) for b in instance.open_bookmarks() if b.node_id == "handle")

    request({"who": "ann"})
    assert handling() == ["ann"]
    (ann,) = [b for b in instance.open_bookmarks() if b.node_id == "handle"]
    complete(instance, d, ann.id, fake)  # one done meanwhile
    request({"who": "bob"})
    request({"who": "cy"})
    assert handling() == ["bob", "cy"]  # they run at the same time
    request({"last": True})  # no more: the loop stops, the open tasks go on
    assert handling() == ["bob", "cy"] and instance.status == "suspended"
    for t in [b for b in instance.open_bookmarks() if b.node_id == "handle"]:
        assert instance.status == "suspended"  # synchronised: not before the last one
        complete(instance, d, t.id, fake)
    assert (instance.status, instance.output) == ("completed", {"ok": True})
    entered = [e.node_id for e in instance.pending_events if type(e).__name__ == "NodeEntered"]
    assert entered.count("handle") == 3
    assert state(replay_stored(instance)) == state(instance)
