"""Incidents in the engine: holding a failed node, retry, skip, a failed instance retried."""

from __future__ import annotations

import pytest

from domain import engine
from domain.engine import recovery
from domain.errors import NotRecoverableError
from domain.state import IncidentStatus
from domain.validation import validate_document
from tests.unit.engine_support import FakeEnv, definition, replay, start

END = {"id": "done", "type": "end", "output": {"reply": "vars.reply"}}


def service_flow(**top):
    return definition(
        [
            {
                "id": "call",
                "type": "service_task",
                "result_var": "reply",
                "action": {"type": "http", "url": "http://x/{{ input.id }}"},
                "retry": {"max_attempts": 1},
            },
            END,
        ],
        [{"from": "call", "to": "done"}],
        **top,
    )


def fail_last_attempt(instance, d, fake):
    (activity,) = instance.scheduled_activities()
    engine.record_activity_result(
        instance,
        d,
        activity.id,
        attempt=activity.attempt,
        ok=False,
        output=None,
        error="HTTP 503",
        retryable=True,
        env=fake.env(),
    )


def test_default_policy_fails_the_instance():
    d, fake = service_flow(), FakeEnv()
    instance = start(d, fake, {"id": "A"})
    fail_last_attempt(instance, d, fake)
    assert instance.status == "failed" and not instance.incidents


def test_incident_holds_then_retry_with_variables_completes():
    d, fake = service_flow(on_failure="incident"), FakeEnv()
    instance = start(d, fake, {"id": "A"})
    fail_last_attempt(instance, d, fake)
    assert instance.status == "incident" and not instance.is_ended
    (incident,) = instance.open_incidents()
    assert incident.node_id == "call" and "HTTP 503" in incident.error["message"]
    recovery.retry(
        instance,
        d,
        incident_id=None,
        variables={"fixed": True},
        actor="ops",
        reason="downstream fixed",
        env=fake.env(),
    )
    assert instance.incidents[incident.id].status is IncidentStatus.RETRIED
    assert instance.incidents[incident.id].resolved_by == "ops"
    (activity,) = instance.scheduled_activities()
    assert activity.idempotency_key == f"{instance.id}:call:2"  # a fresh attempt number
    assert instance.variables["fixed"] is True
    engine.record_activity_result(
        instance, d, activity.id, attempt=1, ok=True, output={"ok": 1}, error=None,
        retryable=True, env=fake.env(),
    )  # fmt: skip
    assert instance.status == "completed" and instance.output == {"reply": {"ok": 1}}
    rebuilt = replay(instance)
    assert rebuilt.incidents == instance.incidents and rebuilt.status == instance.status


def test_skip_completes_the_node_with_the_result():
    d, fake = service_flow(on_failure="incident"), FakeEnv()
    instance = start(d, fake, {"id": "A"})
    fail_last_attempt(instance, d, fake)
    recovery.skip(
        instance, d, incident_id=None, result={"stub": 1}, outcome=None, actor="ops",
        reason="manual", env=fake.env(),
    )  # fmt: skip
    assert instance.status == "completed" and instance.output == {"reply": {"stub": 1}}


def test_node_policy_overrides_the_definition_and_an_expression_error_holds():
    d = definition(
        [
            {"id": "s", "type": "set", "variables": {"q": "10 / vars.d"}, "on_failure": "incident"},
            {"id": "a", "type": "end", "output": {"q": "vars.q"}},
        ],
        [{"from": "s", "to": "a"}],
        on_failure="fail",
    )
    fake = FakeEnv()
    instance = start(d, fake, {})
    assert instance.status == "incident", instance.error
    assert "expression error" in instance.open_incidents()[0].error["message"]
    recovery.retry(
        instance, d, incident_id=None, variables={"d": 2}, actor="ops", reason=None,
        env=fake.env(),
    )  # fmt: skip
    assert instance.status == "completed" and instance.output == {"q": 5}


def test_a_failed_instance_can_be_retried_and_others_refused():
    d, fake = service_flow(), FakeEnv()
    instance = start(d, fake, {"id": "A"})
    fail_last_attempt(instance, d, fake)
    recovery.retry(
        instance, d, incident_id=None, variables=None, actor="ops", reason="again", env=fake.env()
    )
    assert instance.status == "running" and instance.error is None
    (retried,) = [e for e in instance.pending_events if type(e).__name__ == "IncidentRetried"]
    assert retried.reopened is True and retried.actor == "ops" and retried.reason == "again"
    engine.cancel(instance, "stop", fake.env())
    with pytest.raises(NotRecoverableError):
        recovery.retry(
            instance, d, incident_id=None, variables=None, actor=None, reason=None,
            env=fake.env(),
        )  # fmt: skip


def test_cancel_closes_open_incidents():
    d, fake = service_flow(on_failure="incident"), FakeEnv()
    instance = start(d, fake, {"id": "A"})
    fail_last_attempt(instance, d, fake)
    engine.cancel(instance, "give up", fake.env())
    (incident,) = instance.incidents.values()
    assert incident.status is IncidentStatus.CLOSED and instance.status == "cancelled"


def test_on_failure_is_validated_at_publish():
    doc = {
        "name": "x",
        "on_failure": "retry-forever",
        "nodes": [{"id": "e", "type": "end", "on_failure": "nope"}],
        "routes": [],
    }
    paths = {p.path for p in validate_document(doc)}
    assert len(paths) == 2, paths


def test_an_incident_holds_one_branch_while_the_other_runs_then_the_join_fires():
    d = definition(
        [
            {"id": "fork", "type": "parallel"},
            {"id": "bad", "type": "set", "variables": {"q": "10 / vars.d"}},
            {"id": "ask", "type": "approval", "approver_role": "clerk"},
            {"id": "meet", "type": "join"},
            {"id": "done", "type": "end", "output": {"q": "vars.q"}},
            {"id": "no", "type": "end", "status": "failed"},
        ],
        [
            {"from": "fork", "to": "bad"},
            {"from": "fork", "to": "ask"},
            {"from": "bad", "to": "meet"},
            {"from": "ask", "to": "meet", "outcome": "approved"},
            {"from": "ask", "to": "no", "outcome": "rejected"},
            {"from": "meet", "to": "done"},
        ],
        on_failure="incident",
    )
    fake = FakeEnv()
    instance = start(d, fake)
    assert instance.status == "incident" and len(instance.open_bookmarks()) == 1
    (task,) = instance.open_bookmarks()
    engine.complete_task(
        instance, d, task.id, outcome="approved", data=None, comment=None, completed_by="ann",
        env=fake.env(),
    )  # fmt: skip
    assert instance.status == "incident"  # the other branch waits at the join
    recovery.retry(
        instance, d, incident_id=None, variables={"d": 5}, actor="ops", reason=None,
        env=fake.env(),
    )  # fmt: skip
    assert instance.status == "completed" and instance.output == {"q": 2}
