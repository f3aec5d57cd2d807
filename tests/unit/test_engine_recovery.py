"""Instance modification and version migration in the pure engine (no I/O).

Each scenario parks an instance of version 1 at one kind of waiting point, modifies or
migrates it, drives it to the end, and compares the result with a fresh run of version 2
driven the same way.
"""

from __future__ import annotations

from typing import Any

import pytest

from domain import engine
from domain.definition import Definition
from domain.engine import migration, modify
from domain.errors import InvalidModificationError, MigrationRefusedError, NodeNotActiveError
from domain.instance import WorkflowInstance
from domain.state import BookmarkKind, BookmarkStatus
from tests.unit.engine_support import FakeEnv, definition, event_names, replay, start, state

HOLDS: dict[str, dict[str, Any]] = {
    "task": {"type": "approval", "approver_role": "manager"},
    "wait": {"type": "wait", "event": "payment.settled", "correlation": "input.order"},
    "timer": {"type": "timer", "duration": "PT1H"},
    "child": {"type": "sub_workflow", "definition": "child-flow"},
}
DONE = {"id": "done", "type": "end"}


def linear(kind: str, version: int, hold_id: str = "hold") -> Definition:
    """v1: prep → hold → done; v2 adds `audit` after the hold (and may rename it)."""
    nodes = [
        {"id": "prep", "type": "set", "start": True, "variables": {"prepared": "true"}},
        {"id": hold_id, **HOLDS[kind]},
        DONE,
    ]
    routes = [{"from": "prep", "to": hold_id}]
    if version == 1:
        routes.append({"from": hold_id, "to": "done"})
        return definition(nodes, routes, output={"prepared": "vars.prepared"})
    nodes.append({"id": "audit", "type": "set", "variables": {"audited": "true"}})
    routes += [{"from": hold_id, "to": "audit"}, {"from": "audit", "to": "done"}]
    d = definition(nodes, routes, output={"prepared": "vars.prepared", "audited": "vars.audited"})
    return _versioned(d, 2)


def parallel(version: int) -> Definition:
    """fork → (a: approval, b: timer) → join → done; v2 renames a → a2 and adds audit."""
    a = "a" if version == 1 else "a2"
    nodes = [
        {"id": "fork", "type": "parallel", "start": True},
        {"id": a, **HOLDS["task"]},
        {"id": "b", **HOLDS["timer"]},
        {"id": "join", "type": "join"},
        DONE,
    ]
    routes = [
        {"from": "fork", "to": a},
        {"from": "fork", "to": "b"},
        {"from": a, "to": "join"},
        {"from": "b", "to": "join"},
    ]
    if version == 1:
        routes.append({"from": "join", "to": "done"})
        return definition(nodes, routes, output={"ok": "true"})
    nodes.append({"id": "audit", "type": "set", "variables": {"audited": "true"}})
    # another route order: b → join is route 1 here, route 3 in version 1
    routes = [routes[1], routes[3], routes[0], routes[2]]
    routes += [{"from": "join", "to": "audit"}, {"from": "audit", "to": "done"}]
    return _versioned(
        definition(nodes, routes, output={"ok": "true", "audited": "vars.audited"}), 2
    )


def _versioned(d: Definition, version: int) -> Definition:
    return Definition.from_document(d.document, version=version)


def drive(instance: WorkflowInstance, d: Definition, fake: FakeEnv) -> None:
    """Resolve every open bookmark (approve, deliver, fire, child done) until it ends."""
    for _ in range(20):
        if instance.is_ended:
            return
        bookmark = sorted(instance.open_bookmarks(), key=lambda b: b.created_at)[0]
        fake.advance(hours=2)
        env = fake.env()
        if bookmark.kind is BookmarkKind.TASK:
            engine.complete_task(
                instance, d, bookmark.id, outcome="approved", data=None, comment=None,
                completed_by="ann", env=env,
            )  # fmt: skip
        elif bookmark.kind is BookmarkKind.WAIT:
            engine.resume(instance, d, bookmark.id, payload={"paid": 1}, source="t", env=env)
        elif bookmark.kind is BookmarkKind.TIMER:
            engine.fire_timer(instance, d, bookmark.id, env)
        else:
            engine.child_finished(
                instance, d, bookmark.id, status="completed", output={"c": 1}, error=None, env=env
            )
    raise AssertionError("did not end")


def fresh_run(d: Definition) -> WorkflowInstance:
    fake = FakeEnv()
    instance = start(d, fake, input={"order": "o-1"})
    drive(instance, d, fake)
    return instance


def outcome(instance: WorkflowInstance) -> tuple[Any, ...]:
    return instance.status, instance.output, instance.variables


@pytest.mark.parametrize("kind", ["task", "wait", "timer", "child"])
@pytest.mark.parametrize("renamed", [False, True])
def test_a_migrated_instance_finishes_like_a_fresh_run_of_the_new_version(
    kind: str, renamed: bool
) -> None:
    v1 = linear(kind, 1)
    v2 = linear(kind, 2, hold_id="hold2" if renamed else "hold")
    mapping = {"hold": "hold2"} if renamed else {}
    fake = FakeEnv()
    instance = start(v1, fake, input={"order": "o-1"})
    (held,) = instance.open_bookmarks()
    assert migration.plan(instance, v1, v2, mapping).possible
    migration.migrate(instance, v1, v2, mapping, by="ops", reason="fix", env=fake.env())
    assert event_names(instance)[-1] == "InstanceMigrated"
    assert instance.definition_version == 2
    moved = instance.bookmarks[held.id]
    assert (moved.token, moved.due_at, moved.status) == (held.token, held.due_at, held.status)
    assert moved.node_id == ("hold2" if renamed else "hold")
    assert state(replay(instance)) == state(instance)
    drive(instance, v2, fake)
    assert outcome(instance) == outcome(fresh_run(v2))
    assert instance.output == {"prepared": True, "audited": True}


def test_migration_inside_a_parallel_branch_keeps_the_join_arrival() -> None:
    v1, v2 = parallel(1), parallel(2)
    fake = FakeEnv()
    instance = start(v1, fake)
    timer = next(b for b in instance.open_bookmarks() if b.kind is BookmarkKind.TIMER)
    fake.advance(hours=2)
    engine.fire_timer(instance, v1, timer.id, fake.env())  # b arrived at the join (route 3)
    assert instance.join_arrivals == {"join": [3]}
    found = migration.migrate(instance, v1, v2, {"a": "a2"}, by="ops", reason=None, env=fake.env())
    assert (found.nodes, found.routes) == ({"a": "a2"}, {"3": 1})
    assert instance.join_arrivals == {"join": [1]}  # renumbered: b → join is route 1 in v2
    drive(instance, v2, fake)
    assert outcome(instance) == outcome(fresh_run(v2))
    assert instance.output == {"ok": True, "audited": True}


def test_a_join_arrival_the_new_graph_cannot_take_refuses_and_changes_nothing() -> None:
    v1 = parallel(1)
    nodes = [
        {"id": "fork", "type": "parallel", "start": True},
        {"id": "a", **HOLDS["task"]},
        {"id": "b", **HOLDS["timer"]},
        {"id": "join", "type": "join"},
        DONE,
    ]  # b no longer leads to the join
    routes = [
        {"from": "fork", "to": "a"},
        {"from": "fork", "to": "b"},
        {"from": "a", "to": "join"},
        {"from": "fork", "to": "join"},
        {"from": "b", "to": "done"},
        {"from": "join", "to": "done"},
    ]
    v2 = _versioned(definition(nodes, routes), 2)
    fake = FakeEnv()
    instance = start(v1, fake)
    timer = next(b for b in instance.open_bookmarks() if b.kind is BookmarkKind.TIMER)
    engine.fire_timer(instance, v1, timer.id, fake.env())
    before, events = state(instance), len(instance.pending_events)
    found = migration.plan(instance, v1, v2, {})
    assert any("cannot take" in r for r in found.reasons), found.reasons
    with pytest.raises(MigrationRefusedError):
        migration.migrate(instance, v1, v2, {}, by=None, reason=None, env=fake.env())
    assert state(instance) == before and len(instance.pending_events) == events


def test_missing_nodes_and_changed_bookmark_kinds_are_reported() -> None:
    v1 = linear("task", 1)
    missing = linear("task", 2, hold_id="other")
    timer_now = _versioned(linear("timer", 1), 2)
    instance = start(v1)
    assert migration.plan(instance, v1, missing, {}).reasons == [
        f"the node of open bookmark {instance.open_bookmarks()[0].id} hold is missing in version 2"
    ]
    (reason,) = migration.plan(instance, v1, timer_now, {}).reasons
    assert reason.startswith("bookmark kind changed")
    with pytest.raises(InvalidModificationError) as raised:
        migration.check_mapping(v1, missing, {"hold": "nowhere", "ghost": "other"})
    assert [e["path"] for e in raised.value.errors] == ["/mapping/hold", "/mapping/ghost"]


@pytest.mark.parametrize("kind", ["task", "wait", "timer", "child"])
def test_modification_cancels_the_active_node_and_starts_another(kind: str) -> None:
    """Cancel the hold of v2, start before `audit`: finishes like a run that passed it."""
    v2 = linear(kind, 2)
    fake = FakeEnv()
    instance = start(v2, fake, input={"order": "o-1"})
    (held,) = instance.open_bookmarks()
    ops = [{"cancel": "hold"}, {"start_before": "audit"}]
    modify.modify(instance, v2, ops, by="ops", reason="stuck", env=fake.env())
    names = event_names(instance)
    at = names.index("InstanceModified")
    assert names[at + 1] == "BookmarkCancelled"
    assert instance.bookmarks[held.id].status is BookmarkStatus.CANCELLED
    assert outcome(instance) == outcome(fresh_run(v2))
    assert state(replay(instance)) == state(instance)


def test_modification_inside_a_parallel_branch() -> None:
    v2 = parallel(2)
    fake = FakeEnv()
    instance = start(v2, fake)
    # The timer branch is stuck: cancel it and start it again (a fresh timer).
    old_timer = next(b for b in instance.open_bookmarks() if b.kind is BookmarkKind.TIMER)
    modify.modify(
        instance, v2, [{"cancel": "b"}, {"start_before": "b"}], by="ops", reason=None,
        env=fake.env(),
    )  # fmt: skip
    timers = [b for b in instance.open_bookmarks() if b.kind is BookmarkKind.TIMER]
    assert len(timers) == 1 and timers[0].id != old_timer.id
    drive(instance, v2, fake)
    assert outcome(instance) == outcome(fresh_run(v2))


def test_an_invalid_modification_changes_nothing() -> None:
    v2 = linear("task", 2)
    instance = start(v2)
    before, events = state(instance), len(instance.pending_events)
    with pytest.raises(InvalidModificationError) as raised:
        modify.modify(
            instance, v2, [{"cancel": "hold"}, {"start_before": "ghost"}], by=None, reason=None,
            env=FakeEnv().env(),
        )  # fmt: skip
    assert raised.value.errors[0]["path"] == "/operations/1/start_before"
    with pytest.raises(NodeNotActiveError) as not_active:
        modify.modify(
            instance, v2, [{"cancel": "audit"}], by=None, reason=None, env=FakeEnv().env()
        )
    assert not_active.value.path == "/operations/0/cancel"
    assert state(instance) == before and len(instance.pending_events) == events


def test_cancelling_the_only_active_node_ends_the_instance() -> None:
    v1 = linear("task", 1)
    instance = start(v1)
    modify.modify(instance, v1, [{"cancel": "hold"}], by="ops", reason=None, env=FakeEnv().env())
    # nothing left to wait for: it ends as every branch ended (branches.settle_quiet)
    assert (instance.status, instance.output) == ("completed", {"prepared": True})
