"""The engine stores only JSON-clean, bounded values: a value that cannot be stored fails its
node once (error route or instance), a caller's payload is refused, and nothing overflows."""

from __future__ import annotations

import pytest

from domain import engine
from domain.definition import Definition, Node
from domain.engine.retry import MAX_RETRY_INTERVAL_SECONDS, retry_policy_of
from domain.values import UnstorableValueError
from tests.unit.engine_support import (
    FakeEnv,
    complete_bookmark,
    definition,
    event_names,
    replay_stored,
    start,
)

END = {"id": "done", "type": "end"}


def set_flow(expression: str) -> Definition:
    return definition(
        [{"id": "s", "type": "set", "variables": {"x": expression}}, END],
        [{"from": "s", "to": "done"}],
    )


def test_a_set_expression_giving_a_python_set_fails_the_node_with_a_clear_error():
    instance = start(set_flow("{1, 2}"))
    assert instance.status == "failed"
    assert instance.error["node_id"] == "s"
    assert "a set is not JSON" in instance.error["message"]
    assert "VariablesSet" not in event_names(instance)
    replay_stored(instance)  # every event it recorded can be stored


def test_a_set_expression_giving_a_tuple_stores_a_list():
    instance = start(set_flow("(1, 2)"))
    assert instance.status == "completed"
    assert instance.variables["x"] == [1, 2]


def test_an_unstorable_value_takes_the_error_route():
    d = definition(
        [
            {"id": "s", "type": "set", "variables": {"x": "{1}"}},
            {"id": "oops", "type": "end", "output": {"e": "nodes.s.result.error"}},
            END,
        ],
        [{"from": "s", "to": "done"}, {"from": "s", "to": "oops", "outcome": "error"}],
    )
    instance = start(d)
    assert instance.status == "completed"
    assert "a set is not JSON" in instance.output["e"]


def test_an_end_output_and_a_rendered_action_are_checked_too():
    ended = start(
        definition([{"id": "done", "type": "end", "output": {"o": "{input.a}"}}], []),
        input={"a": 1},
    )
    assert ended.status == "failed" and "a set is not JSON" in ended.error["message"]
    call = definition(
        [{"id": "c", "type": "service_task", "action": {"type": "x", "v": "{{ input.s }}"}}, END],
        [{"from": "c", "to": "done"}],
    )
    # the start input bypasses the API here, standing in for any value with a NUL in it
    instance = start(call, input={"s": "a\x00"})
    assert instance.status == "failed" and "NUL character" in instance.error["message"]
    assert instance.scheduled_activities() == []


def service_flow(**node: object) -> Definition:
    return definition(
        [
            {
                "id": "call",
                "type": "service_task",
                "result_var": "r",
                "action": {"type": "x"},
                **node,
            },
            END,
        ],
        [{"from": "call", "to": "done"}],
    )


def record(instance, d, fake, *, ok=True, output=None, error=None, attempt=1):
    (activity,) = [a for a in instance.activities.values() if a.is_scheduled]
    return engine.record_activity_result(
        instance,
        d,
        activity.id,
        attempt=attempt,
        ok=ok,
        output=output,
        error=error,
        retryable=True,
        env=fake.env(),
    )


def test_a_nul_in_an_action_result_is_replaced_and_recorded():
    d, fake = service_flow(), FakeEnv()
    instance = start(d, fake)
    assert record(instance, d, fake, output={"body": "a\x00b"})
    assert instance.status == "completed"
    assert instance.variables["r"] == {"body": "a\ufffdb"}
    replay_stored(instance)


def test_an_unstorable_action_result_fails_the_node_once_without_retrying():
    d, fake = service_flow(retry={"max_attempts": 5}), FakeEnv()
    instance = start(d, fake)
    deep: object = 1
    for _ in range(100):
        deep = [deep]
    assert record(instance, d, fake, output={"body": deep})
    assert instance.status == "failed"
    assert "the result of call cannot be stored" in instance.error["message"]
    assert "after 1 attempt" in instance.error["message"]
    assert "ActivityRetryScheduled" not in event_names(instance)


def test_an_action_error_with_a_nul_is_recorded_cleaned():
    d, fake = service_flow(retry={"max_attempts": 1}), FakeEnv()
    instance = start(d, fake)
    assert record(instance, d, fake, ok=False, error="HTTP 500: \x00" + "x" * 5000)
    assert "\x00" not in instance.error["message"]
    assert len(instance.error["message"]) < 2100


def test_retry_delays_of_old_unbounded_policies_never_overflow():
    # Published before the bounds existed: the policy is clamped when it is read.
    node = Node(
        "call",
        "service_task",
        "call",
        config={"retry": {"initial_interval": "P3000000D", "backoff": 1e308, "max_attempts": 9}},
    )
    policy = retry_policy_of(node)
    assert policy.initial_interval == MAX_RETRY_INTERVAL_SECONDS
    assert [policy.delay_before(n) for n in (1, 2, 50)] == [0.0] + [policy.max_interval] * 2
    unclamped = type(policy)(max_attempts=9, initial_interval=1, backoff=1e308, max_interval=60)
    assert unclamped.delay_before(9) == 60  # 1e308 ** 7 overflows: capped, not raised


def test_a_caller_payload_that_cannot_be_stored_is_refused_and_changes_nothing():
    d = definition(
        [{"id": "w", "type": "wait", "event": "paid"}, END], [{"from": "w", "to": "done"}]
    )
    fake = FakeEnv()
    instance = start(d, fake)
    (bookmark,) = instance.open_bookmarks()
    before = len(instance.pending_events)
    with pytest.raises(UnstorableValueError, match="payload resuming bookmark"):
        engine.resume(instance, d, bookmark.id, payload={"x": "\x00"}, source="api", env=fake.env())
    assert len(instance.pending_events) == before and instance.status == "suspended"


def test_task_data_that_cannot_be_stored_is_refused():
    d = definition(
        [{"id": "a", "type": "approval", "approver_role": "r"}, END],
        [
            {"from": "a", "to": "done", "outcome": "approved"},
            {"from": "a", "to": "done", "outcome": "rejected"},
        ],
    )
    fake = FakeEnv()
    instance = start(d, fake)
    (bookmark,) = instance.open_bookmarks()
    with pytest.raises(UnstorableValueError, match="data completing task"):
        complete_bookmark(
            instance, d, bookmark.id, fake, outcome="approved", data={"tags": {"a"}}, by="u"
        )
    assert instance.status == "suspended"
