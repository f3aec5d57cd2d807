"""Property: random valid graphs either complete or suspend, never crash the engine, and
replaying an instance's events — as they are, and as they come back from storage — rebuilds
exactly the same state."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain import engine
from domain.definition import Definition
from domain.engine import milestones
from domain.errors import MilestoneNotReachedError
from domain.validation import validate_document
from tests.unit.engine_support import FakeEnv, replay, replay_stored, start, state

BLOCKS = (
    "set",
    "gateway",
    "approval",
    "wait",
    "timer",
    "service",
    "parallel",
    "user_task",
    "event_gateway",
    "guarded_task",
    "guarded_service",
    # multi-instance (`for_each` over `input.items`, 0-3 items) and a saga step
    "each_service",
    "each_approval",
    "undoable",
    # issue 10: inclusive split + OR-join, a branch end beside the main path, N-of-M joins
    "inclusive",
    "branch_end",
    "first_cancel",
    "first_ignore",
    # WCP-17 interleaved parallel (order by input.x), WCP-18 a task waiting on a milestone
    "interleaved",
    "milestone",
)
NEXT = "@next"  # a boundary's `to` placeholder: the next block's entry


def build_document(blocks: list[str]) -> dict[str, Any]:
    """A chain of blocks ending at `done`; each block's exits lead to the next block."""
    nodes: list[dict[str, Any]] = []
    routes: list[dict[str, Any]] = []
    entries: list[str] = []
    for i, block in enumerate(blocks):
        entries.append(_add_block(i, block, nodes, routes))
    entries.append("done")
    # Wire each block's exits (routes with "to": None) to the next block's entry.
    for route in routes:
        if route["to"] is None:
            route["to"] = entries[route.pop("_block") + 1]
        else:
            route.pop("_block", None)
    for node in nodes:
        for spec in node.get("boundary", ()):
            if spec["to"].startswith(NEXT):
                spec["to"] = entries[int(spec["to"][len(NEXT) :]) + 1]
    nodes.append({"id": "done", "type": "end", "output": {"x": "input.x"}})
    failed: dict[str, Any] = {"id": "failed", "type": "end", "status": "failed"}
    if "undoable" in blocks:  # a failure undoes the completed saga steps first
        failed["compensate"] = True
    nodes.append(failed)
    # An entry gateway keeps `failed` reachable whatever the blocks are.
    nodes.insert(0, {"id": "entry", "type": "gateway"})
    routes.append({"from": "entry", "to": entries[0], "default": True})
    routes.append({"from": "entry", "to": "failed", "condition": "false"})
    return {"name": "random-flow", "nodes": nodes, "routes": routes}


def _add_block(i: int, block: str, nodes: list, routes: list) -> str:
    n = f"b{i}"

    def exit_from(source: str, **extra: Any) -> None:
        routes.append({"from": source, "to": None, "_block": i, **extra})

    if block == "set":
        nodes.append({"id": n, "type": "set", "variables": {f"v{i}": "input.x + 1"}})
        exit_from(n)
    elif block == "gateway":
        nodes.append({"id": n, "type": "gateway"})
        exit_from(n, condition="input.x > 5")
        exit_from(n, default=True)
    elif block in ("approval", "user_task"):
        extra = {"approver_role": "r"} if block == "approval" else {"role": "r"}
        nodes.append({"id": n, "type": block, **extra})
        if block == "approval":
            exit_from(n, outcome="approved")
            routes.append({"from": n, "to": "failed", "outcome": "rejected", "_block": i})
        else:
            exit_from(n)
    elif block == "wait":
        nodes.append({"id": n, "type": "wait", "event": "e", "timeout": "PT1M"})
        exit_from(n)
        exit_from(n, outcome="timeout")
    elif block == "timer":
        nodes.append({"id": n, "type": "timer", "duration": "PT5M"})
        exit_from(n)
    elif block == "service":
        nodes.append(
            {
                "id": n,
                "type": "service_task",
                "action": {"type": "noop"},
                "retry": {"max_attempts": 2, "initial_interval": "PT1S"},
            }
        )
        exit_from(n)
        routes.append({"from": n, "to": "failed", "outcome": "error", "_block": i})
    elif block == "event_gateway":  # first of: an event, a timer
        nodes.append({"id": n, "type": "event_gateway"})
        nodes.append({"id": f"{n}w", "type": "wait", "event": "e"})
        nodes.append({"id": f"{n}t", "type": "timer", "duration": "PT2M"})
        routes.extend([{"from": n, "to": f"{n}w"}, {"from": n, "to": f"{n}t"}])
        exit_from(f"{n}w")
        exit_from(f"{n}t")
    elif block == "guarded_task":  # a task interrupted by a timer or an event
        boundary = [
            {"timer": "PT3M", "to": f"{NEXT}{i}"},
            {"event": "stop", "to": "failed", "result_var": f"stop{i}"},
        ]
        nodes.append({"id": n, "type": "user_task", "role": "r", "boundary": boundary})
        exit_from(n)
    elif block == "guarded_service":  # a service task withdrawn by an event
        nodes.append(
            {
                "id": n,
                "type": "service_task",
                "action": {"type": "noop"},
                "boundary": [{"event": "cancel", "to": f"{NEXT}{i}"}],
            }
        )
        exit_from(n)
    elif block in ("each_service", "undoable"):
        node: dict[str, Any] = {
            "id": n,
            "type": "service_task",
            "action": {"type": "noop", "item": "{{ item }}"},
            "retry": {"max_attempts": 2, "initial_interval": "PT1S"},
        }
        if block == "each_service":
            node["for_each"] = {"items": "input.items", "mode": "parallel"}
        else:
            node["compensation"] = {"type": "noop", "undo": "{{ result }}"}
            node["action"] = {"type": "noop"}
        nodes.append(node)
        exit_from(n)
        routes.append({"from": n, "to": "failed", "outcome": "error", "_block": i})
    elif block == "each_approval":
        spec = {"items": "input.items", "mode": "sequential", "completion": "approvals >= 1"}
        nodes.append({"id": n, "type": "approval", "approver_role": "r", "for_each": spec})
        exit_from(n)
    elif block == "inclusive":  # 1 to 3 branches, by input.x; the OR-join waits for those
        nodes.append({"id": n, "type": "inclusive"})
        nodes.append({"id": f"{n}l", "type": "timer", "duration": "PT1M"})
        nodes.append({"id": f"{n}r", "type": "set", "variables": {f"i{i}": "1"}})
        nodes.append({"id": f"{n}d", "type": "wait", "event": "e", "timeout": "PT1M"})
        nodes.append({"id": f"{n}j", "type": "join"})
        routes.extend(
            [
                {"from": n, "to": f"{n}l", "condition": "input.x > 3"},
                {"from": n, "to": f"{n}r", "condition": "input.x > 7"},
                {"from": n, "to": f"{n}d", "default": True},
                {"from": f"{n}l", "to": f"{n}j"},
                {"from": f"{n}r", "to": f"{n}j"},
                {"from": f"{n}d", "to": f"{n}j"},
                {"from": f"{n}d", "to": f"{n}j", "outcome": "timeout"},
            ]
        )
        exit_from(f"{n}j")
    elif block == "branch_end":  # a side branch that ends on its own (terminate: false)
        nodes.append({"id": n, "type": "parallel"})
        nodes.append({"id": f"{n}s", "type": "wait", "event": "e", "timeout": "PT1M"})
        nodes.append({"id": f"{n}e", "type": "end", "terminate": False})
        routes.extend(
            [
                {"from": n, "to": f"{n}s"},
                {"from": f"{n}s", "to": f"{n}e"},
                {"from": f"{n}s", "to": f"{n}e", "outcome": "timeout"},
            ]
        )
        exit_from(n)
    elif block in ("first_cancel", "first_ignore"):  # a discriminator over two branches
        nodes.append({"id": n, "type": "parallel"})
        nodes.append({"id": f"{n}l", "type": "timer", "duration": "PT2M"})
        nodes.append({"id": f"{n}r", "type": "approval", "approver_role": "r"})
        join = {"id": f"{n}j", "type": "join", "wait_for": 1}
        nodes.append({**join, "cancel_remaining": block == "first_cancel"})
        routes.extend(
            [
                {"from": n, "to": f"{n}l"},
                {"from": n, "to": f"{n}r"},
                {"from": f"{n}l", "to": f"{n}j"},
                {"from": f"{n}r", "to": f"{n}j"},
            ]
        )
        exit_from(f"{n}j")
    elif block == "interleaved":  # two branches, one at a time, the order by input.x
        order = f"['{n}a', '{n}b'] if input.x > 4 else ['{n}b', '{n}a']"
        nodes.append({"id": n, "type": "parallel", "interleaved": True, "order": order})
        nodes.append({"id": f"{n}a", "type": "user_task", "role": "r"})
        nodes.append({"id": f"{n}b", "type": "wait", "event": "e", "timeout": "PT1M"})
        nodes.append({"id": f"{n}j", "type": "join"})
        routes.extend(
            [
                {"from": n, "to": f"{n}a"},
                {"from": n, "to": f"{n}b"},
                {"from": f"{n}a", "to": f"{n}j"},
                {"from": f"{n}b", "to": f"{n}j"},
                {"from": f"{n}b", "to": f"{n}j", "outcome": "timeout"},
            ]
        )
        exit_from(f"{n}j")
    elif block == "milestone":  # a task that may act only while the other branch is at m
        nodes.append({"id": n, "type": "parallel"})
        nodes.append({"id": f"{n}p", "type": "timer", "duration": "PT1M"})
        nodes.append({"id": f"{n}m", "type": "wait", "event": "e", "timeout": "PT2M"})
        nodes.append({"id": f"{n}d", "type": "user_task", "role": "r", "milestone": f"{n}m"})
        nodes.append({"id": f"{n}g", "type": "gateway"})
        nodes.append({"id": f"{n}j", "type": "join"})
        routes.extend(
            [
                {"from": n, "to": f"{n}p"},
                {"from": n, "to": f"{n}d"},
                {"from": f"{n}p", "to": f"{n}m"},
                {"from": f"{n}m", "to": f"{n}j"},
                {"from": f"{n}m", "to": f"{n}j", "outcome": "timeout"},
                {"from": f"{n}d", "to": f"{n}g"},
                {"from": f"{n}d", "to": f"{n}g", "outcome": "cancelled"},
                {"from": f"{n}g", "to": f"{n}j", "default": True},
            ]
        )
        exit_from(f"{n}j")
    else:  # parallel block: fork -> two branches -> join
        nodes.append({"id": n, "type": "parallel"})
        nodes.append({"id": f"{n}l", "type": "timer", "duration": "PT1M"})
        nodes.append({"id": f"{n}r", "type": "set", "variables": {f"p{i}": "1"}})
        nodes.append({"id": f"{n}j", "type": "join"})
        routes.extend(
            [
                {"from": n, "to": f"{n}l"},
                {"from": n, "to": f"{n}r"},
                {"from": f"{n}l", "to": f"{n}j"},
                {"from": f"{n}r", "to": f"{n}j"},
            ]
        )
        exit_from(f"{n}j")
    return n


def assert_interleaving_and_milestones(instance, d: Definition) -> None:
    """Never two branches of an interleaved split at once; no open task past its milestone."""
    open_nodes = [b.node_id for b in instance.open_bookmarks() if b.boundary_of is None]
    for node in d.nodes.values():
        if node.get("interleaved"):
            branches = {f"{node.id}a", f"{node.id}b"}
            assert len([n for n in open_nodes if n in branches]) <= 1, open_nodes
        milestone = node.get("milestone")
        if milestone and node.id in open_nodes:
            assert milestones.state(instance, milestone) != "passed"


def act(instance, d: Definition, fake: FakeEnv, data: st.DataObject) -> None:
    """Resolve one randomly chosen open bookmark or scheduled activity."""
    choices = [("b", b) for b in instance.open_bookmarks()]
    choices += [("a", a) for a in instance.scheduled_activities()]
    what, item = data.draw(st.sampled_from(choices))
    env = fake.env()
    if what == "a":
        ok = data.draw(st.booleans())
        engine.record_activity_result(
            instance,
            d,
            item.id,
            attempt=item.attempt,
            ok=ok,
            output={"n": 1},
            error=None if ok else "boom",
            retryable=True,
            env=env,
        )
    elif item.kind == "task":
        outcome = (
            data.draw(st.sampled_from(["approved", "rejected"]))
            if (item.task_kind == "approval")
            else None
        )
        before = len(instance.pending_events)
        try:
            engine.complete_task(
                instance,
                d,
                item.id,
                outcome=outcome,
                data={},
                comment=None,
                completed_by="u",
                env=env,
            )
        except MilestoneNotReachedError:  # refused away from its milestone: nothing changed
            assert milestones.state(instance, item.node_id[:-1] + "m") == "pending"
            assert len(instance.pending_events) == before
    elif item.kind == "wait" and data.draw(st.booleans()):
        engine.resume(instance, d, item.id, payload={"k": 1}, source="t", env=env)
    else:
        engine.fire_timer(instance, d, item.id, env)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    blocks=st.lists(st.sampled_from(BLOCKS), min_size=1, max_size=6),
    x=st.integers(min_value=0, max_value=10),
    items=st.lists(st.integers(min_value=0, max_value=9), max_size=3),
    data=st.data(),
)
def test_random_graphs_complete_or_suspend_and_replay_identically(blocks, x, items, data):
    document = build_document(blocks)
    assert validate_document(document) == []
    d = Definition.from_document(document, version=1)
    fake = FakeEnv()
    instance = start(d, fake, {"x": x, "items": items})
    for _ in range(120):
        assert instance.status in ("running", "suspended", "completed", "failed")
        if instance.is_ended:
            break
        assert instance.open_bookmarks() or instance.scheduled_activities()
        assert_interleaving_and_milestones(instance, d)
        fake.advance(minutes=1)
        act(instance, d, fake, data)
    assert instance.is_ended, "every block resolves, so 120 steps always end the instance"
    if instance.status == "completed":
        assert instance.output == {"x": x}
    assert state(replay(instance)) == state(instance)
    assert state(replay_stored(instance)) == state(instance)
