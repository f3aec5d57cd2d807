"""WCP-17 (interleaved parallel routing) and WCP-18 (milestone) through the engine.

Interleaved: each branch runs exactly once, never two at once, in an order decided at run
time. Milestone: a dependent task only completes while the milestone is open, and is
withdrawn once it is passed. Every history replays (in memory and through the stored
JSON form) to the same state.
"""

from __future__ import annotations

from typing import Any

import pytest

from domain import engine
from domain.definition import Definition
from domain.engine import migration
from domain.errors import MilestoneNotReachedError
from domain.instance import WorkflowInstance
from domain.state import InterleaveState
from tests.patterns_support import routes, task
from tests.unit.engine_support import (
    FakeEnv,
    assert_replays,
    complete_at,
    complete_bookmark,
    definition,
    event_names,
    open_at,
    resume_at,
    start,
)

# --- WCP-17 ------------------------------------------------------------------------------


def interleaved_flow(order: str | None = None, interleaved: bool = True) -> Definition:
    fork: dict[str, Any] = {"id": "fork", "type": "parallel", "start": True}
    if interleaved:
        fork["interleaved"] = True
    if order:
        fork["order"] = order
    return definition(
        [
            fork,
            task("a"),
            task("a2"),
            task("b"),
            task("c"),
            {"id": "meet", "type": "join"},
            {"id": "done", "type": "end"},
        ],
        routes("fork>a fork>b fork>c a>a2 a2>meet b>meet c>meet meet>done"),
    )


def run_to_end(instance: WorkflowInstance, d: Definition, fake: FakeEnv) -> list[str]:
    """Complete whatever single task is open until the instance ends; the order they ran."""
    ran: list[str] = []
    while not instance.is_ended:
        # never two branches at once: exactly one task is open at every step
        assert len(instance.open_bookmarks()) == 1, open_at(instance)
        (node_id,) = open_at(instance)
        ran.append(node_id)
        complete_at(instance, d, node_id, fake)
    return ran


def test_interleaved_branches_run_one_at_a_time_each_exactly_once_in_route_order():
    d, fake = interleaved_flow(), FakeEnv()
    instance = start(d, fake)
    assert open_at(instance) == ["a"]
    # a branch runs until it reaches the join: b does not start after a, but after a2
    complete_at(instance, d, "a", fake)
    assert open_at(instance) == ["a2"]
    assert run_to_end(instance, d, fake) == ["a2", "b", "c"]
    assert instance.status == "completed"
    names = event_names(instance)
    assert names.count("InterleavedBranchStarted") == 3
    assert names.count("JoinArrived") == 3
    assert names.count("JoinCompleted") == 1
    entered = [e.node_id for e in instance.pending_events if type(e).__name__ == "NodeEntered"]
    assert [entered.count(n) for n in ("a", "a2", "b", "c", "done")] == [1, 1, 1, 1, 1]
    assert instance.interleaved == {}
    assert_replays(instance)


def test_negative_control_a_plain_parallel_opens_every_branch_at_once():
    d = interleaved_flow(interleaved=False)
    instance = start(d)
    assert open_at(instance) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [(["c", "a", "b"], ["c", "a", "a2", "b"]), (["b", "c", "a"], ["b", "c", "a", "a2"])],
)
def test_the_order_expression_decides_at_run_time(given, expected):
    d, fake = interleaved_flow(order="input.order"), FakeEnv()
    instance = start(d, fake, input={"order": given})
    assert run_to_end(instance, d, fake) == expected
    assert instance.status == "completed"
    assert_replays(instance)


def test_the_order_is_evaluated_again_when_each_branch_finishes():
    # Branch `a` sets vars.urgent: from then on the order puts c before b.
    d = definition(
        [
            {"id": "init", "type": "set", "variables": {"urgent": "False"}, "start": True},
            {
                "id": "fork",
                "type": "parallel",
                "interleaved": True,
                "order": "['a', 'c', 'b'] if vars.urgent else ['a', 'b', 'c']",
            },
            task("a"),
            {"id": "flag", "type": "set", "variables": {"urgent": "True"}},
            task("b"),
            task("c"),
            {"id": "meet", "type": "join"},
            {"id": "done", "type": "end"},
        ],
        routes("init>fork fork>a fork>b fork>c a>flag flag>meet b>meet c>meet", "meet>done"),
    )
    fake = FakeEnv()
    instance = start(d, fake)
    assert run_to_end(instance, d, fake) == ["a", "c", "b"]
    started = [e for e in instance.pending_events if type(e).__name__ == "InterleavedBranchStarted"]
    assert [len(e.started) for e in started] == [1, 2, 3]
    assert_replays(instance)


@pytest.mark.parametrize("bad", [["a", "b"], ["a", "b", "c", "c"], ["a", "b", "x"], "abc", [1]])
def test_an_order_that_is_not_each_branch_once_fails_the_split_with_a_clear_error(bad):
    d = interleaved_flow(order="input.order")
    instance = start(d, input={"order": bad})
    assert instance.status == "failed"
    assert instance.error is not None
    assert "must list each of its branches once" in instance.error["message"]
    assert instance.open_bookmarks() == []
    assert_replays(instance)


def test_an_interleaved_split_inside_a_loop_runs_all_branches_again_each_round():
    d = definition(
        [
            {"id": "fork", "type": "parallel", "interleaved": True, "start": True},
            task("a"),
            task("b"),
            {"id": "meet", "type": "join"},
            {"id": "again", "type": "gateway"},
            {"id": "count", "type": "set", "variables": {"n": "vars.n + 1 if 'n' in vars else 1"}},
            {"id": "done", "type": "end"},
        ],
        routes(
            "fork>a fork>b a>meet b>meet meet>count count>again",
            {"from": "again", "to": "fork", "condition": "vars.n < 2"},
            {"from": "again", "to": "done", "default": True},
        ),
    )
    fake = FakeEnv()
    instance = start(d, fake)
    assert run_to_end(instance, d, fake) == ["a", "b", "a", "b"]
    assert instance.variables["n"] == 2
    assert_replays(instance)


# --- WCP-18 ------------------------------------------------------------------------------


def milestone_flow(withdrawn_route: bool = True, dependent: str = "user_task") -> Definition:
    """fork → prep → m (the milestone: a wait) → after; fork → d (needs m) → meet."""
    if dependent == "wait":
        dep = {"id": "d", "type": "wait", "event": "d.go", "milestone": "m"}
    else:
        dep = task("d", milestone="m")
    nodes = [
        {"id": "fork", "type": "parallel", "start": True},
        {"id": "prep", "type": "wait", "event": "prep.done"},
        {"id": "m", "type": "wait", "event": "m.done"},
        dep,
        {"id": "meet", "type": "join"},
        {"id": "done", "type": "end", "output": {"d": "nodes.d.result"}},
    ]
    links = routes("fork>prep fork>d prep>m m>meet d>meet meet>done")
    if withdrawn_route:  # d's two ways out merge (a gateway) before the join
        nodes += [
            {"id": "note", "type": "set", "variables": {"late": "True"}},
            {"id": "merge", "type": "gateway"},
        ]
        links[4] = {"from": "d", "to": "merge"}
        # after the plain route: the withdrawal takes the `cancelled` route all the same
        links.append({"from": "d", "to": "note", "outcome": "cancelled"})
        links += routes("note>merge", {"from": "merge", "to": "meet", "default": True})
    return definition(nodes, links)


def test_a_dependent_task_is_refused_until_the_milestone_is_reached():
    d, fake = milestone_flow(), FakeEnv()
    instance = start(d, fake)
    assert open_at(instance) == ["d", "prep"]
    before = len(instance.pending_events)
    with pytest.raises(MilestoneNotReachedError, match="has not been reached yet") as caught:
        complete_at(instance, d, "d", fake)
    assert caught.value.milestone == "m" and caught.value.where == "pending"
    assert len(instance.pending_events) == before  # nothing changed
    assert open_at(instance) == ["d", "prep"]
    resume_at(instance, d, "prep", fake)  # now at the milestone
    complete_at(instance, d, "d", fake)  # accepted
    assert open_at(instance) == ["m"]
    resume_at(instance, d, "m", fake)
    assert instance.status == "completed"
    assert instance.output == {
        "d": {"outcome": "completed", "data": {}, "comment": None, "by": "ann"}
    }
    assert_replays(instance)


def test_passing_the_milestone_withdraws_the_dependent_along_its_cancelled_route():
    d, fake = milestone_flow(), FakeEnv()
    instance = start(d, fake)
    resume_at(instance, d, "prep", fake)
    resume_at(instance, d, "m", fake)  # the milestone is passed while d waits
    assert instance.status == "completed"
    cancelled = [e for e in instance.pending_events if type(e).__name__ == "BookmarkCancelled"]
    assert [e.reason for e in cancelled] == ["withdrawn: milestone m was passed"]
    assert instance.variables == {"late": True}
    assert instance.node_results["d"]["withdrawn"] is True
    assert_replays(instance)


def test_without_a_cancelled_route_the_withdrawn_dependent_is_skipped_along_its_plain_route():
    d, fake = milestone_flow(withdrawn_route=False), FakeEnv()
    instance = start(d, fake)
    resume_at(instance, d, "prep", fake)
    resume_at(instance, d, "m", fake)
    assert instance.status == "completed"
    assert instance.output == {"d": {"withdrawn": True, "milestone": "m", "outcome": None}}
    assert_replays(instance)


def test_a_dependent_acting_after_the_milestone_passed_is_refused_or_already_withdrawn():
    d, fake = milestone_flow(), FakeEnv()
    instance = start(d, fake)
    (dep,) = [b for b in instance.open_bookmarks() if b.node_id == "d"]
    resume_at(instance, d, "prep", fake)
    resume_at(instance, d, "m", fake)
    assert not instance.bookmarks[dep.id].is_open
    with pytest.raises(Exception, match="cancelled"):  # BookmarkNotOpenError: withdrawn
        complete_bookmark(instance, d, dep.id, fake, data={}, by="a")


def test_a_dependent_entered_after_the_milestone_was_passed_is_withdrawn_at_once():
    d = definition(
        [
            {"id": "m", "type": "wait", "event": "m.done", "start": True},
            task("d", milestone="m"),
            {"id": "done", "type": "end"},
        ],
        routes("m>d d>done"),
    )
    fake = FakeEnv()
    instance = start(d, fake)
    resume_at(instance, d, "m", fake)
    assert instance.status == "completed"
    names = event_names(instance)
    assert names.index("BookmarkCancelled") > names.index("BookmarkResumed")
    assert_replays(instance)


def test_a_dependent_wait_is_resumed_only_at_the_milestone():
    d, fake = milestone_flow(dependent="wait"), FakeEnv()
    instance = start(d, fake)
    with pytest.raises(MilestoneNotReachedError):
        resume_at(instance, d, "d", fake)
    resume_at(instance, d, "prep", fake)
    resume_at(instance, d, "d", fake)
    assert open_at(instance) == ["m"]
    assert_replays(instance)


def fire_the_boundary_timer(instance: WorkflowInstance, d: Definition, fake: FakeEnv) -> None:
    """Two hours on, the one boundary timer (PT1H) of the instance fires."""
    (timer,) = [b for b in instance.open_bookmarks() if b.boundary_of is not None]
    fake.advance(hours=2)
    engine.fire_timer(instance, d, timer.id, fake.env())


def test_an_interleaved_branch_interrupted_away_from_the_join_fails_as_stalled():
    # The first branch's task is interrupted by a boundary timer that leads past the join:
    # the next branch can never start, so the instance fails instead of completing.
    d = definition(
        [
            {"id": "fork", "type": "parallel", "interleaved": True, "start": True},
            task("a", boundary=[{"timer": "PT1H", "to": "elsewhere"}]),
            task("b"),
            {"id": "meet", "type": "join"},
            {"id": "elsewhere", "type": "end", "terminate": False},
            {"id": "done", "type": "end"},
        ],
        routes("fork>a fork>b a>meet b>meet meet>done"),
    )
    fake = FakeEnv()
    instance = start(d, fake)
    fire_the_boundary_timer(instance, d, fake)
    assert instance.status == "failed"
    assert instance.error is not None and instance.error["type"] == "stalled"
    assert "join meet waits (0 of 2 branches arrived)" in instance.error["message"]
    assert_replays(instance)


def test_a_migration_renames_the_running_interleaving_and_replays():
    d, fake = interleaved_flow(), FakeEnv()
    instance = start(d, fake)
    complete_at(instance, d, "a", fake)
    complete_at(instance, d, "a2", fake)  # b runs now: routes 0 and 1 started
    assert instance.interleaved == {"meet": InterleaveState(split="fork", started=(0, 1))}
    instance.migrate(1, 2, {"fork": "split", "meet": "met"}, {"0": 5, "1": 6}, None, None, fake.now)
    assert instance.interleaved == {"met": InterleaveState(split="split", started=(5, 6))}
    assert_replays(instance)


def test_a_migration_plan_is_refused_while_an_interleaving_runs():
    d, fake = interleaved_flow(), FakeEnv()
    instance = start(d, fake)
    refused = migration.plan(instance, d, d, {})
    assert "an interleaved parallel (WCP-17) is under way" in refused.reasons
    plain = interleaved_flow(interleaved=False)
    assert migration.plan(start(plain), plain, plain, {}).reasons == []  # negative control


def test_an_interrupting_boundary_escalation_path_counts_as_its_branch_reaching_the_join():
    d = definition(
        [
            {"id": "fork", "type": "parallel", "interleaved": True, "start": True},
            task("a", boundary=[{"timer": "PT1H", "to": "escalate"}]),
            task("escalate"),
            task("b"),
            {"id": "meet", "type": "join"},
            {"id": "done", "type": "end"},
        ],
        routes("fork>a fork>b a>meet escalate>meet b>meet meet>done"),
    )
    fake = FakeEnv()
    instance = start(d, fake)
    fire_the_boundary_timer(instance, d, fake)
    assert open_at(instance) == ["escalate"]  # b waits: branch a is not done yet
    assert run_to_end(instance, d, fake) == ["escalate", "b"]
    assert instance.status == "completed"
    assert_replays(instance)


def test_a_cancelling_discriminator_around_an_interleaving_forgets_it():
    # The interleaving is one branch of a first-wins race; the other branch wins, the
    # interleaving is cancelled, and the instance ends by a branch end (implicit
    # termination) instead of being taken for stalled on the forgotten interleaving.
    d = definition(
        [
            {"id": "race", "type": "parallel", "start": True},
            {"id": "fork", "type": "parallel", "interleaved": True},
            task("a"),
            task("b"),
            {"id": "meet", "type": "join"},
            {"id": "quick", "type": "wait", "event": "quick"},
            {"id": "first", "type": "join", "wait_for": 1, "cancel_remaining": True},
            {"id": "fin", "type": "end", "terminate": False},
        ],
        routes(
            "race>fork race>quick fork>a fork>b a>meet b>meet meet>first", "quick>first first>fin"
        ),
    )
    fake = FakeEnv()
    instance = start(d, fake)
    assert open_at(instance) == ["a", "quick"]
    resume_at(instance, d, "quick", fake)
    assert instance.interleaved == {}
    assert instance.status == "completed"
    assert_replays(instance)
