"""Due times a node computes must be storable (issue 5 item 2), and steps are counted per
loop so a long acyclic graph runs while a loop without a waiting node fails (item 7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest

from application.session import MAX_SUB_WORKFLOW_DEPTH, CommandAttempt
from domain import engine
from domain.definition import Definition
from domain.engine.waits import EARLIEST_DUE, LATEST_DUE, checked_due
from domain.env import MAX_NODE_ENTRIES_PER_COMMAND
from domain.instance import WorkflowInstance, parent_ref
from tests.unit.engine_support import T0, FakeEnv, definition, start

END = {"id": "done", "type": "end"}


def unvalidated(nodes: list[dict[str, Any]], routes: list[dict[str, Any]]) -> Definition:
    """A definition as stored, without the publish-time checks (which may refuse some of
    these values earlier): the engine must still fail the node cleanly."""
    return Definition.from_document({"name": "t", "nodes": nodes, "routes": routes}, version=1)


def one_node(node: dict[str, Any]) -> Definition:
    return unvalidated([node, END], [{"from": node["id"], "to": "done"}])


# --- storable due times ---------------------------------------------------------------


@pytest.mark.parametrize(
    "due",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),  # year 0 in UTC
        datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),  # year 10000 in UTC
        datetime(1899, 12, 31, 23, 59, tzinfo=UTC),
        LATEST_DUE,
    ],
)
def test_due_times_postgresql_cannot_hand_back_are_refused(due: datetime) -> None:
    with pytest.raises(ValueError, match="outside the supported range"):
        checked_due(due, "timer 'until'")


def test_due_times_in_range_are_kept_as_given() -> None:
    plus_two = datetime(2030, 5, 1, 8, tzinfo=timezone(timedelta(hours=2)))
    assert checked_due(plus_two, "x") is plus_two
    assert checked_due(EARLIEST_DUE, "x") == EARLIEST_DUE


@pytest.mark.parametrize(
    "until", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:00:00-05:00", "1066-10-14T09:00:00Z"]
)
def test_a_timer_until_out_of_range_fails_the_node_with_a_clear_error(until: str) -> None:
    d = one_node({"id": "t", "type": "timer", "until": "input.at"})
    instance = start(d, input={"at": until})
    assert instance.status == "failed"
    assert instance.error is not None and instance.error["node_id"] == "t"
    assert "outside the supported range" in instance.error["message"]
    assert not instance.open_bookmarks()


def test_a_timer_until_in_the_past_but_in_range_still_fires_at_once() -> None:
    d = one_node({"id": "t", "type": "timer", "until": "input.at"})
    instance = start(d, input={"at": "2001-01-01T00:00:00+14:00"})
    (bookmark,) = instance.open_bookmarks()
    assert bookmark.due_at < T0


@pytest.mark.parametrize(
    "node",
    [
        {"id": "n", "type": "timer", "duration": "P3000000D"},
        {"id": "n", "type": "wait", "event": "e", "timeout": "P3000000D"},
        {"id": "n", "type": "user_task", "role": "r", "sla_hours": 1e300},
        {"id": "n", "type": "user_task", "role": "r", "sla_hours": 8e7},  # year ~11000
    ],
    ids=["timer-duration", "wait-timeout", "sla-overflow", "sla-too-far"],
)
def test_due_times_beyond_the_range_fail_the_node(node: dict[str, Any]) -> None:
    instance = start(one_node(node))
    assert instance.status == "failed", instance.open_bookmarks()
    assert instance.error is not None and instance.error["node_id"] == "n"
    assert "due time" in instance.error["message"] or "too large" in instance.error["message"]


@pytest.mark.parametrize(
    "retry",
    [
        {"backoff": 1e308},  # the third delay would be 1e308 ** 2: a float overflow
        {"initial_interval": "P3000000D", "max_interval": "P3000000D"},  # beyond year 9999
    ],
    ids=["backoff-overflow", "interval-too-far"],
)
def test_a_retry_policy_published_before_the_bounds_is_clamped_never_overflows(
    retry: dict[str, Any],
) -> None:
    # Publishing refuses these policies now; one stored before the bounds existed is
    # clamped (intervals to one day, backoff to 10), so every retry stays storable.
    d = one_node(
        {
            "id": "call",
            "type": "service_task",
            "action": {"type": "http", "url": "http://x/"},
            "retry": {"max_attempts": 5, "initial_interval": "PT1S", **retry},
        }
    )
    fake = FakeEnv()
    instance = start(d, fake)
    activity_id = instance.scheduled_activities()[0].id
    for attempt in (1, 2, 3):
        engine.record_activity_result(
            instance,
            d,
            activity_id,
            attempt=attempt,
            ok=False,
            output=None,
            error="boom",
            retryable=True,
            env=fake.env(),
        )
        activity = instance.activities[activity_id]
        assert activity.status == "scheduled" and activity.attempt == attempt + 1
        assert activity.run_after <= fake.env().now + timedelta(days=1)


# --- steps per loop ----------------------------------------------------------------


def chain(length: int) -> Definition:
    nodes = [{"id": f"n{i}", "type": "set", "variables": {"last": str(i)}} for i in range(length)]
    routes = [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(length - 1)]
    return definition([*nodes, END], [*routes, {"from": f"n{length - 1}", "to": "done"}])


def test_a_long_acyclic_chain_runs_to_its_end() -> None:
    instance = start(chain(5_000))
    assert instance.status == "completed", instance.error
    assert instance.variables["last"] == 4_999


def test_a_loop_without_a_waiting_node_fails_naming_the_node() -> None:
    d = definition(
        [
            {"id": "inc", "type": "set", "variables": {"i": "get(vars, 'i', 0) + 1"}},
            {"id": "g", "type": "gateway"},
            END,
        ],
        [
            {"from": "inc", "to": "g"},
            {"from": "g", "to": "done", "condition": "vars.i > 100000"},
            {"from": "g", "to": "inc", "default": True},
        ],
    )
    instance = start(d)
    assert instance.status == "failed"
    assert instance.error is not None
    assert instance.error["message"].startswith("step limit exceeded: the graph loops")
    assert "node inc entered 1,000 times" in instance.error["message"]
    assert instance.variables["i"] == MAX_NODE_ENTRIES_PER_COMMAND


def test_a_loop_that_waits_each_round_is_counted_per_command() -> None:
    # Each round suspends on the timer, so no command enters a node more than twice.
    d = definition(
        [
            {"id": "inc", "type": "set", "variables": {"i": "get(vars, 'i', 0) + 1"}},
            {"id": "pause", "type": "timer", "duration": "PT1S"},
            {"id": "g", "type": "gateway"},
            END,
        ],
        [
            {"from": "inc", "to": "pause"},
            {"from": "pause", "to": "g"},
            {"from": "g", "to": "done", "condition": "vars.i >= 1500"},
            {"from": "g", "to": "inc", "default": True},
        ],
    )
    fake = FakeEnv()
    instance = start(d, fake)
    while not instance.is_ended:
        (bookmark,) = instance.open_bookmarks()
        fake.advance(seconds=1)
        engine.fire_timer(instance, d, bookmark.id, fake.env())
    assert instance.status == "completed" and instance.variables["i"] == 1500


# --- sub-workflow depth ----------------------------------------------------------------


class MemoryStore:
    """Instances by id, as a stand-in InstanceStore for `CommandAttempt.depth_of` (reads only)."""

    def __init__(self, instances: list[WorkflowInstance]) -> None:
        self.by_id = {i.id: i for i in instances}

    def get(self, instance_id: Any, tenant: str | None = None) -> WorkflowInstance | None:
        return self.by_id.get(instance_id)


def tree(levels: int, *, record_depth: bool) -> list[WorkflowInstance]:
    """A root and `levels` descendants, each the only child of the one before."""
    chain: list[WorkflowInstance] = []
    for level in range(levels + 1):
        parent = None
        if chain:
            ref = parent_ref(chain[-1].id, "b", level)
            parent = ref if record_depth else {k: ref[k] for k in ("instance_id", "bookmark_id")}
        chain.append(
            WorkflowInstance(
                id=uuid4(),
                tenant="t",
                definition="d",
                definition_version=1,
                input={},
                correlation_id=None,
                idempotency_key=None,
                parent=parent,
            )
        )
    return chain


def session_over(instances: list[WorkflowInstance]) -> CommandAttempt:
    clock = type("Clock", (), {"now": staticmethod(lambda: T0)})()
    return CommandAttempt(MemoryStore(instances), None, None, clock)  # type: ignore[arg-type]


@pytest.mark.parametrize("record_depth", [True, False], ids=["recorded", "old-events"])
def test_the_depth_of_an_instance_is_its_level_in_the_tree(record_depth: bool) -> None:
    instances = tree(5, record_depth=record_depth)
    session = session_over(instances)
    assert [session.depth_of(i) for i in instances] == [0, 1, 2, 3, 4, 5]


def test_the_depth_of_old_deep_trees_is_found_without_loading_every_ancestor() -> None:
    instances = tree(MAX_SUB_WORKFLOW_DEPTH + 20, record_depth=False)
    session = session_over(instances)
    assert session.depth_of(instances[-1]) == MAX_SUB_WORKFLOW_DEPTH + 1
    assert len(session.instances) <= MAX_SUB_WORKFLOW_DEPTH + 1
