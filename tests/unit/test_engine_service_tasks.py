"""Service tasks in the engine: scheduling, recording results, retries, error routes."""

from __future__ import annotations

from datetime import timedelta

from domain import engine
from tests.unit.engine_support import FakeEnv, definition, start

END = {"id": "done", "type": "end"}


def service_flow(**node):
    return definition(
        [
            {
                "id": "call",
                "type": "service_task",
                "result_var": "reply",
                "action": {"type": "http", "url": "http://x/{{ input.id }}"},
                **node,
            },
            END,
        ],
        [{"from": "call", "to": "done"}],
    )


def test_service_task_is_scheduled_then_result_recorded():
    d, fake = service_flow(), FakeEnv()
    instance = start(d, fake, {"id": "A1"})
    (activity,) = instance.scheduled_activities()
    assert activity.action["url"] == "http://x/A1"
    assert activity.idempotency_key == f"{instance.id}:call:1"
    assert instance.status == "running"
    assert engine.record_activity_result(
        instance,
        d,
        activity.id,
        attempt=1,
        ok=True,
        output={"status": 200},
        error=None,
        retryable=True,
        env=fake.env(),
    )
    assert instance.status == "completed" and instance.variables["reply"] == {"status": 200}
    # A second delivery of the same result is stale and changes nothing.
    assert not engine.record_activity_result(
        instance,
        d,
        activity.id,
        attempt=1,
        ok=True,
        output=None,
        error=None,
        retryable=True,
        env=fake.env(),
    )


def test_service_task_retries_with_backoff_then_fails():
    d, fake = (
        service_flow(retry={"max_attempts": 3, "initial_interval": "PT1S", "backoff": 2.0}),
        FakeEnv(),
    )
    instance = start(d, fake, {"id": "A1"})
    activity_id = instance.scheduled_activities()[0].id
    for attempt, delay in [(1, 1), (2, 2)]:
        engine.record_activity_result(
            instance,
            d,
            activity_id,
            attempt=attempt,
            ok=False,
            output=None,
            error="HTTP 500",
            retryable=True,
            env=fake.env(),
        )
        activity = instance.activities[activity_id]
        assert activity.attempt == attempt + 1
        assert activity.run_after == fake.now + timedelta(seconds=delay)
        assert activity.idempotency_key.endswith(f":call:{attempt + 1}")
    engine.record_activity_result(
        instance,
        d,
        activity_id,
        attempt=3,
        ok=False,
        output=None,
        error="HTTP 500",
        retryable=True,
        env=fake.env(),
    )
    assert instance.status == "failed"
    assert "HTTP 500 (after 3 attempt(s))" in instance.error["message"]


def test_non_retryable_failure_follows_error_route():
    d = definition(
        [
            {"id": "call", "type": "service_task", "action": {"type": "noop"}},
            {"id": "fallback", "type": "set", "variables": {"fallback": "true"}},
            END,
        ],
        [
            {"from": "call", "to": "done"},
            {"from": "call", "to": "fallback", "outcome": "error"},
            {"from": "fallback", "to": "done"},
        ],
    )
    fake = FakeEnv()
    instance = start(d, fake)
    engine.record_activity_result(
        instance,
        d,
        instance.scheduled_activities()[0].id,
        attempt=1,
        ok=False,
        output=None,
        error="HTTP 404",
        retryable=False,
        env=fake.env(),
    )
    assert instance.status == "completed" and instance.variables == {"fallback": True}
