"""A service task whose result cannot be recorded runs its side effect once, never again every
lease period (issue 5, item 3): real PostgreSQL, a real task worker, an action that counts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from application.commands import StartInstance
from application.errors import CommandConflictError
from application.ports import ActionResult
from workers.task_worker import MAX_UNRECORDED_RUNS, TaskWorker

pytestmark = pytest.mark.integration

TENANT = "acme"
LEASE_SECONDS = 30.0


class Target:
    """The external system: counts the calls and answers `reply`."""

    def __init__(self, reply: Any):
        self.reply = reply
        self.calls = 0
        self.actions: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, action: dict[str, Any], idempotency_key: str, timeout: float) -> Any:
        with self.lock:
            self.calls += 1
            self.actions.append(action)
        return ActionResult(ok=True, output=self.reply)


class LaterClock:
    """The worker's clock, moved past the lease by hand (no sleeping)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        from infrastructure.clock import SystemClock

        return SystemClock().now() + self.offset


class FailingRecorder:
    """The real ActivityService, but recording a success (or anything) raises `error`."""

    def __init__(self, real: Any, error: Exception, *, failures_too: bool = False):
        self.real = real
        self.error = error
        self.failures_too = failures_too

    def record(self, activity: Any, result: ActionResult) -> bool:
        raise self.error

    def record_many(self, results: list[Any]) -> list[Exception]:
        # The batch form the worker uses: each result's outcome is the error.
        return [self.error for _ in results]

    def fail_unrecordable(self, activity: Any, reason: str) -> bool:
        if self.failures_too:
            raise self.error
        return bool(self.real.fail_unrecordable(activity, reason))


@pytest.fixture
def container(database_url: str) -> Iterator[Any]:
    from infrastructure.settings import Settings
    from tests.containers import build_engine

    built = build_engine(
        Settings(
            database_url=database_url,
            api_keys="k=acme:admin",
            task_lease_seconds=LEASE_SECONDS,
            db_pool_size=4,
        )
    )
    built.definitions.publish(
        TENANT,
        {
            "name": "call-then-use",
            "nodes": [
                {
                    "id": "call",
                    "type": "service_task",
                    "action": {"type": "target"},
                    "result_var": "reply",
                    "retry": {"max_attempts": 5, "initial_interval": "PT0.1S"},
                },
                {
                    "id": "forward",
                    "type": "service_task",
                    "action": {"type": "sink", "text": "{{ vars.reply.body }}"},
                },
                {"id": "done", "type": "end", "output": {"reply": "vars.reply"}},
            ],
            "routes": [{"from": "call", "to": "forward"}, {"from": "forward", "to": "done"}],
        },
    )
    yield built
    built.close()


def run_for_several_leases(
    container: Any, target: Target, recorder: Any = None, sink: Target | None = None
) -> dict:
    """Start an instance, then let a worker claim and run it over five lease periods."""
    container.actions.register("target", target)
    container.actions.register("sink", sink or Target(None))
    view, _ = container.instances.start(StartInstance(TENANT, "call-then-use"))
    worker = TaskWorker(container, worker_id="w1")
    worker.clock = clock = LaterClock()
    if recorder is not None:
        worker.activities = recorder
    try:
        for _ in range(5):
            worker.tick()
            clock.offset += timedelta(seconds=LEASE_SECONDS + 1)  # every lease has expired
    finally:
        worker.close()
    return dict(container.instances.get(TENANT, UUID(view["id"])))


def test_a_result_the_store_cannot_hold_runs_its_action_exactly_once(container: Any) -> None:
    # Given an action answering a value no JSON store can hold (a Python set)
    target = Target({"tags": {1, 2}})

    # When a worker runs it and five lease periods pass
    final = run_for_several_leases(container, target)

    # Then the side effect happened once and the instance failed saying why
    assert target.calls == 1
    assert final["status"] == "failed"
    assert "the result of call cannot be stored: a set is not JSON" in final["error"]["message"]


def test_a_nul_in_a_result_used_by_the_next_template_is_replaced_and_runs_once(
    container: Any,
) -> None:
    # Given a reply with U+0000, which the next action's template copies: jsonb cannot hold
    # it, so before the fix recording failed every time and the call repeated every lease
    target, sink = Target({"body": "a\x00b"}), Target(None)

    final = run_for_several_leases(container, target, sink=sink)

    # Then both calls happened once, the NUL replaced by U+FFFD
    assert target.calls == 1
    assert sink.actions == [{"type": "sink", "text": "a\ufffdb"}]
    assert final["status"] == "completed", final.get("error")
    assert final["output"] == {"reply": {"body": "a\ufffdb"}}


def test_when_recording_keeps_failing_the_attempt_fails_once(container: Any) -> None:
    target = Target({"ok": True})
    recorder = FailingRecorder(container.activities, RuntimeError("cannot store this"))

    final = run_for_several_leases(container, target, recorder)

    assert target.calls == 1
    assert final["status"] == "failed"
    message = final["error"]["message"]
    assert "could not be recorded: RuntimeError: cannot store this" in message
    assert "after 1 attempt" in message  # not retried by the node's policy either


def test_when_even_the_failure_cannot_be_recorded_the_action_never_runs_again(
    container: Any,
) -> None:
    target = Target({"ok": True})
    recorder = FailingRecorder(container.activities, RuntimeError("broken"), failures_too=True)

    final = run_for_several_leases(container, target, recorder)

    assert target.calls == 1
    assert final["status"] == "running"  # left leased, for an operator to look at


def test_a_transient_recording_error_reruns_the_attempt_a_bounded_number_of_times(
    container: Any,
) -> None:
    target = Target({"ok": True})
    recorder = FailingRecorder(container.activities, CommandConflictError([]))

    final = run_for_several_leases(container, target, recorder)

    assert target.calls == MAX_UNRECORDED_RUNS
    assert final["status"] == "failed"
    assert f"it ran {MAX_UNRECORDED_RUNS} times without being recorded" in final["error"]["message"]
