"""Inclusive gateway, N-of-M joins, branch ends and the stalled-instance guard, driven
through the engine (no I/O), each replayed from its events as stored."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from domain import engine
from domain.definition import Definition
from domain.instance import WorkflowInstance
from tests.patterns_support import routes, skipping_gateway, skipping_routes, wait
from tests.unit.engine_support import (
    T0,
    FakeEnv,
    assert_replays,
    definition,
    event_names,
    open_at,
    start,
)
from tests.unit.engine_support import (
    resume_at as resume_node,
)


def resume_at(instance: WorkflowInstance, d: Definition, node_id: str, fake: FakeEnv) -> None:
    """Resumes node `node_id` with a payload that names it."""
    resume_node(instance, d, node_id, fake, payload={"from": node_id})


def inclusive_flow() -> Definition:
    return definition(
        [
            {"id": "choose", "type": "inclusive"},
            wait("a"),
            wait("b"),
            wait("c"),
            {"id": "meet", "type": "join"},
            {"id": "done", "type": "end", "output": {"n": "1"}},
        ],
        routes(
            {"from": "choose", "to": "a", "condition": "input.a"},
            {"from": "choose", "to": "b", "condition": "input.b"},
            {"from": "choose", "to": "c", "default": True},
            "a>meet b>meet c>meet meet>done",
        ),
    )


def test_inclusive_split_takes_every_route_whose_condition_holds_and_the_join_waits_for_them():
    d, fake = inclusive_flow(), FakeEnv()
    instance = start(d, fake, {"a": True, "b": True})
    assert open_at(instance) == ["a", "b"]  # not the default: conditions held
    split = [e for e in instance.pending_events if isinstance(e, WorkflowInstance.InclusiveSplit)]
    assert [(e.join_id, e.routes) for e in split] == [("meet", [0, 1])]

    resume_at(instance, d, "a", fake)
    assert instance.status == "suspended"  # the OR-join still waits for b
    resume_at(instance, d, "b", fake)

    assert instance.status == "completed"
    assert_replays(instance)


def test_the_or_join_waits_only_for_the_branches_actually_started():
    d, fake = inclusive_flow(), FakeEnv()
    instance = start(d, fake, {"a": False, "b": True})
    assert open_at(instance) == ["b"]

    resume_at(instance, d, "b", fake)

    assert instance.status == "completed"  # a and c never started; the join did not wait
    assert_replays(instance)


def test_inclusive_split_takes_its_default_when_no_condition_holds():
    d = inclusive_flow()
    instance = start(d, FakeEnv(), {"a": False, "b": False})
    assert open_at(instance) == ["c"]


def test_inclusive_branches_without_waiting_join_in_the_same_command():
    d = definition(
        [
            {"id": "choose", "type": "inclusive"},
            {"id": "x", "type": "set", "variables": {"x": "1"}},
            {"id": "y", "type": "set", "variables": {"y": "2"}},
            {"id": "meet", "type": "join"},
            {"id": "done", "type": "end", "output": {"sum": "vars.x + vars.y"}},
        ],
        routes(
            {"from": "choose", "to": "x", "condition": "true"},
            {"from": "choose", "to": "y", "condition": "input.y"},
            "x>meet y>meet meet>done",
        ),
    )
    instance = start(d, FakeEnv(), {"y": True})
    assert (instance.status, instance.output) == ("completed", {"sum": 3})
    assert event_names(instance).count("JoinCompleted") == 1


def discriminator(cancel_remaining: bool | None, wait_for: int = 1) -> Definition:
    join: dict[str, Any] = {"id": "first", "type": "join", "wait_for": wait_for}
    if cancel_remaining is not None:
        join["cancel_remaining"] = cancel_remaining
    return definition(
        [
            {"id": "fork", "type": "parallel"},
            wait("a"),
            wait("b"),
            wait("c"),
            join,
            {"id": "after", "type": "user_task", "role": "clerk"},
            {"id": "done", "type": "end"},
        ],
        routes("fork>a fork>b fork>c a>first b>first c>first first>after", "after>done"),
    )


def complete_task(instance: WorkflowInstance, d: Definition, fake: FakeEnv) -> None:
    (task,) = [b for b in instance.open_bookmarks() if b.kind == "task"]
    engine.complete_task(
        instance, d, task.id, outcome=None, data={}, comment=None, completed_by="u", env=fake.env()
    )


def test_discriminator_continues_after_the_first_arrival_and_ignores_the_rest():
    d, fake = discriminator(cancel_remaining=None), FakeEnv()
    instance = start(d, fake)
    resume_at(instance, d, "b", fake)
    # The first arrival released the join: the task after it is open, a and c still wait.
    assert open_at(instance) == ["a", "after", "c"]

    resume_at(instance, d, "a", fake)
    resume_at(instance, d, "c", fake)
    assert event_names(instance).count("JoinArrivalIgnored") == 2
    assert open_at(instance) == ["after"]  # the join did not fire a second time
    assert instance.join_late == {}

    complete_task(instance, d, fake)
    assert instance.status == "completed"
    assert_replays(instance)


def test_cancelling_discriminator_cancels_the_other_branches():
    d, fake = discriminator(cancel_remaining=True), FakeEnv()
    instance = start(d, fake)

    resume_at(instance, d, "c", fake)

    assert open_at(instance) == ["after"]
    cancelled = [b.node_id for b in instance.bookmarks.values() if b.status == "cancelled"]
    assert sorted(cancelled) == ["a", "b"]
    (partial,) = [
        e for e in instance.pending_events if isinstance(e, WorkflowInstance.PartialJoinCompleted)
    ]
    assert (partial.arrived, partial.expected, partial.cancelled) == (1, 3, True)
    assert_replays(instance)


def test_partial_join_fires_on_the_nth_arrival():
    d, fake = discriminator(cancel_remaining=True, wait_for=2), FakeEnv()
    instance = start(d, fake)
    resume_at(instance, d, "a", fake)
    assert open_at(instance) == ["b", "c"]  # 1 of 2: still waiting

    resume_at(instance, d, "c", fake)

    assert open_at(instance) == ["after"]
    assert_replays(instance)


def test_a_cancelling_join_stops_branches_still_queued_in_the_same_command():
    d = definition(
        [
            {"id": "fork", "type": "parallel"},
            {"id": "x", "type": "set", "variables": {"x": "1"}},
            {"id": "y", "type": "set", "variables": {"y": "1"}},
            {"id": "y2", "type": "set", "variables": {"y2": "1"}},
            {"id": "first", "type": "join", "wait_for": 1, "cancel_remaining": True},
            {"id": "pause", "type": "timer", "duration": "PT1M"},
            {"id": "done", "type": "end"},
        ],
        routes("fork>x fork>y x>first y>y2 y2>first first>pause pause>done"),
    )
    instance = start(d, FakeEnv())
    assert "y2" not in instance.variables  # y's branch was stopped before its next step
    assert open_at(instance) == ["pause"]
    assert event_names(instance).count("NodeEntered") == 5  # fork, x, y, first, pause


def branch_ends() -> Definition:
    return definition(
        [
            {"id": "fork", "type": "parallel"},
            {"id": "quick", "type": "set", "variables": {"quick": "1"}},
            {"id": "slow", "type": "timer", "duration": "PT5M"},
            {"id": "quick_end", "type": "end", "terminate": False},
            {"id": "slow_end", "type": "end", "terminate": False},
        ],
        routes("fork>quick fork>slow quick>quick_end slow>slow_end"),
        output={"quick": "vars.quick"},
    )


def test_a_branch_end_ends_its_branch_and_the_instance_ends_when_none_is_left():
    d, fake = branch_ends(), FakeEnv()
    instance = start(d, fake)
    assert instance.status == "suspended"  # quick ended its branch only: slow still waits
    assert "BranchEnded" in event_names(instance)

    fake.advance(minutes=5)
    (timer,) = instance.open_bookmarks()
    engine.fire_timer(instance, d, timer.id, fake.env())

    assert (instance.status, instance.output) == ("completed", {"quick": 1})
    assert instance.ended_at == T0 + timedelta(minutes=5)
    assert_replays(instance)


def test_a_terminating_end_still_ends_every_branch():
    d, fake = branch_ends(), FakeEnv()
    document = dict(d.document)
    document["nodes"] = [
        {**n, "terminate": True} if n["id"] == "quick_end" else n for n in document["nodes"]
    ]
    d2 = Definition.from_document(document, version=1)
    instance = start(d2, fake)
    assert instance.status == "completed"
    assert [b.status for b in instance.bookmarks.values()] == ["cancelled"]


def test_a_join_that_can_no_longer_fire_fails_the_instance_instead_of_hanging():
    # Given a join that waits for all three branches (wait_for 3 skips the publish check)
    # while one branch can end early: not decidable from the graph alone.
    d = definition(
        [
            {"id": "fork", "type": "parallel"},
            wait("a"),
            *skipping_gateway(),
            wait("c"),
            {"id": "meet", "type": "join", "wait_for": 3},
            {"id": "done", "type": "end"},
        ],
        routes(
            "fork>a fork>check fork>c",
            *skipping_routes("meet"),
            "a>meet c>meet meet>done",
        ),
    )
    fake = FakeEnv()
    instance = start(d, fake, {"go": False})
    resume_at(instance, d, "a", fake)
    assert instance.status == "suspended"

    resume_at(instance, d, "c", fake)

    assert instance.status == "failed"
    assert instance.error is not None
    assert instance.error["type"] == "stalled"
    assert "join meet waits (2 of 3 branches arrived)" in instance.error["message"]
    assert_replays(instance)

    # Negative control: when the branch reaches the join, it completes.
    fake2 = FakeEnv()
    ok = start(d, fake2, {"go": True})
    resume_at(ok, d, "a", fake2)
    resume_at(ok, d, "c", fake2)
    assert ok.status == "completed"


def timer_flow(duration: str) -> Definition:
    return definition(
        [
            {"id": "t", "type": "timer", "duration": duration},
            {"id": "done", "type": "end"},
        ],
        routes("t>done"),
    )


@pytest.mark.parametrize(
    ("given", "delay"),
    [("PT10M", 600), ("input.delay", 90), ("input.text if input.text else 'PT1H'", 3600)],
)
def test_timer_duration_may_be_an_expression_evaluated_when_the_timer_starts(given, delay):
    instance = start(timer_flow(given), FakeEnv(), {"delay": 90, "text": ""})
    (timer,) = instance.open_bookmarks()
    assert timer.due_at == T0 + timedelta(seconds=delay)


@pytest.mark.parametrize("bad", ["soon", -5, True, "P99999D"])
def test_a_bad_timer_duration_fails_the_node_with_a_clear_error(bad):
    instance = start(timer_flow("input.delay"), FakeEnv(), {"delay": bad})
    assert instance.status == "failed"
    assert instance.error is not None
    message = instance.error["message"]
    assert message.startswith("error at t:"), message
    assert "duration" in message


def test_a_cancelling_join_drops_the_arrivals_of_joins_inside_the_cancelled_branches():
    # Given a discriminator whose second branch holds a parallel of its own, half arrived
    d = definition(
        [
            {"id": "outer", "type": "parallel"},
            wait("a"),
            {"id": "inner", "type": "parallel"},
            wait("b1"),
            {"id": "b2", "type": "set", "variables": {"b2": "1"}},
            {"id": "inner_join", "type": "join"},
            {"id": "first", "type": "join", "wait_for": 1, "cancel_remaining": True},
            {"id": "fin", "type": "end", "terminate": False},
        ],
        routes(
            "outer>a outer>inner inner>b1 inner>b2 b1>inner_join b2>inner_join",
            "a>first inner_join>first first>fin",
        ),
    )
    fake = FakeEnv()
    instance = start(d, fake)
    assert instance.join_arrivals == {"inner_join": [5]}  # b2 arrived, b1 waits

    # When the first branch wins
    resume_at(instance, d, "a", fake)

    # Then the inner join's half-arrival is dropped with its branch, and the instance
    # completes (a stale arrival would have failed it as stalled)
    (partial,) = [
        e for e in instance.pending_events if isinstance(e, WorkflowInstance.PartialJoinCompleted)
    ]
    assert partial.reset == ["inner_join"]
    assert instance.status == "completed"
    assert_replays(instance)
