"""What tests/e2e/test_event_feed.py drives on its server: a definition that waits once, and
`run_a_bit_of_everything`, the instances that between them record every event type (a new
event type must be produced here: the feed test checks every published type is seen)."""

from __future__ import annotations

import json

import httpx

from tests.e2e.conftest import (
    Target,
    open_tasks,
    publish,
    start,
    unique,
    wait_for,
    wait_for_status,
)
from tests.e2e.flow_support import define
from tests.patterns_support import routes
from tests.spec_examples import PURCHASE_APPROVAL_JSON

WAIT = {
    "nodes": [{"id": "wait", "type": "wait"}, {"id": "done", "type": "end"}],
    "routes": routes("wait>done"),
}


def waiting(client: httpx.Client) -> str:
    """A fresh definition that waits once; its name."""
    name = unique("feed-wait")
    publish(client, {"name": name, **WAIT})
    return name


def run_a_bit_of_everything(client: httpx.Client, target: Target) -> list[str]:
    """Instances that between them record every event type; their ids."""
    ids = []
    # A human task claimed, delegated, approved, then a service task (SPEC §2's example)
    approval = json.loads(PURCHASE_APPROVAL_JSON)
    approval["name"] = unique("po")
    approval.pop("triggers")
    notify = next(n for n in approval["nodes"] if n["id"] == "notify")
    notify["action"]["url"] = target.base_url + "/" + unique("erp")
    publish(client, approval)
    po = start(client, approval["name"], input={"amount": 500, "po_id": "PO-1"})["id"]
    [task] = wait_for(lambda: open_tasks(client, po), what="the manager's task")
    assert client.post(f"/v1/tasks/{task['id']}/claim").status_code == 200
    delegated = client.post(f"/v1/tasks/{task['id']}/delegate", json={"assignee": "bob"})
    assert delegated.status_code == 200, delegated.text
    done = client.post(f"/v1/tasks/{task['id']}/complete", json={"outcome": "approved"})
    assert done.status_code == 200, done.text
    ids.append(po)
    # A call that keeps failing: retried, then the instance fails
    flaky = "/" + unique("flaky")
    target.fail(flaky, 500)
    retry = {"max_attempts": 2, "initial_interval": "PT0.1S", "backoff": 1.0}
    call = {"id": "call", "type": "service_task", "retry": retry, "timeout": "PT5S"}
    call["action"] = {"type": "http", "method": "POST", "url": target.base_url + flaky}
    caller = define(
        client, [call, {"id": "done", "type": "end"}], routes("call>done"), prefix="caller"
    )
    ids.append(start(client, caller)["id"])
    # A slow retry cancelled meanwhile: the scheduled activity is withdrawn
    slow = {**call, "retry": {"max_attempts": 5, "initial_interval": "PT1H"}}
    slow_caller = define(
        client, [slow, {"id": "done", "type": "end"}], routes("call>done"), prefix="slow-caller"
    )
    cancelled = start(client, slow_caller)["id"]
    wait_for(lambda: len(target.received(flaky)) >= 3, what="the slow caller's first attempt")
    assert client.post(f"/v1/instances/{cancelled}/cancel", json={}).status_code == 200
    ids.append(cancelled)
    # Parallel branches meeting at a join, a sub-workflow, a timer and a wait that times out
    child = define(
        client,
        [
            {"id": "double", "type": "set", "variables": {"doubled": "input.n * 2"}},
            {"id": "done", "type": "end", "output": {"doubled": "vars.doubled"}},
        ],
        routes("double>done"),
        prefix="child",
    )
    mixed = define(
        client,
        [
            {"id": "fork", "type": "parallel"},
            {"id": "left", "type": "set", "variables": {"a": "1"}},
            {"id": "right", "type": "sub_workflow", "definition": child, "input": {"n": "2"}},
            {"id": "meet", "type": "join"},
            {"id": "pause", "type": "timer", "duration": "PT0.2S"},
            {"id": "wait", "type": "wait", "event": unique("never"), "timeout": "PT0.2S"},
            {"id": "done", "type": "end", "output": {"a": "vars.a"}},
        ],
        routes(
            "fork>left fork>right left>meet right>meet meet>pause pause>wait",
            "wait>done wait>done:timeout",
        ),
        prefix="mixed",
    )
    ids.append(start(client, mixed)["id"])
    # An event gateway decided by its timer, then an approval interrupted by a boundary timer
    racing = define(
        client,
        [
            {"id": "first", "type": "event_gateway"},
            {"id": "reply", "type": "wait", "event": unique("never")},
            {"id": "soon", "type": "timer", "duration": "PT0.2S"},
            {
                "id": "ask",
                "type": "approval",
                "approver_role": "clerk",
                "boundary": [{"timer": "PT0.2S", "to": "done"}],
            },
            {"id": "done", "type": "end"},
        ],
        routes("first>reply first>soon reply>done soon>ask", "ask>done:approved ask>done:rejected"),
        prefix="racing",
    )
    ids.append(start(client, racing)["id"])
    # An inclusive split taking both routes into a discriminator whose late arrival is
    # ignored, continuing to a branch end: the instance ends when no branch is left
    patterns = define(
        client,
        [
            {"id": "choose", "type": "inclusive"},
            {"id": "x", "type": "set", "variables": {"x": "1"}},
            {"id": "y", "type": "set", "variables": {"y": "1"}},
            {"id": "first", "type": "join", "wait_for": 1},
            {"id": "fin", "type": "end", "terminate": False},
        ],
        routes(
            {"from": "choose", "to": "x", "condition": "true"},
            {"from": "choose", "to": "y", "condition": "1 == 1"},
            "x>first y>first first>fin",
        ),
        prefix="patterns",
    )
    ended = start(client, patterns)
    assert ended["status"] == "completed", ended
    ids.append(ended["id"])
    # An interleaved parallel (WCP-17): its two branches run one after the other
    interleaved = define(
        client,
        [
            {"id": "fork", "type": "parallel", "interleaved": True, "order": "['y', 'x']"},
            {"id": "x", "type": "set", "variables": {"x": "1"}},
            {"id": "y", "type": "set", "variables": {"y": "1"}},
            {"id": "meet", "type": "join"},
            {"id": "fin", "type": "end"},
        ],
        routes("fork>x fork>y x>meet y>meet meet>fin"),
        prefix="interleaved",
    )
    one_by_one = start(client, interleaved)
    assert one_by_one["status"] == "completed", one_by_one
    ids.append(one_by_one["id"])
    # A task past its SLA (about 1 s) escalates, then its instance is cancelled
    task = {"id": "ok", "type": "approval", "approver_role": "clerk", "sla_hours": 0.0003}
    late = define(
        client,
        [{**task, "escalate_to_role": "boss"}, {"id": "done", "type": "end"}],
        routes("ok>done:approved ok>done:rejected"),
        prefix="late",
    )
    escalated = start(client, late)["id"]

    def has_escalated() -> bool:
        history = client.get(f"/v1/instances/{escalated}/history").json()["items"]
        return any(entry["type"] == "TaskEscalated" for entry in history)

    wait_for(has_escalated, timeout=30, what="the task's SLA escalation")
    assert client.post(f"/v1/instances/{escalated}/cancel", json={}).status_code == 200
    ids.append(escalated)
    # A for_each whose second step fails: the first step's undo runs (a saga)
    undo = {"type": "noop"}
    each = {"id": "each", "type": "service_task", "action": {"type": "noop"}}
    each.update(for_each={"items": "[1, 2]"}, compensation=undo)
    boom = {**call, "id": "boom", "retry": {"max_attempts": 1}}
    saga = define(
        client,
        [
            each,
            boom,
            {"id": "done", "type": "end"},
            {"id": "undo", "type": "compensate"},
        ],
        routes("each>boom boom>done boom>undo:error undo>done"),
        prefix="saga",
    )
    ids.append(start(client, saga)["id"])
    # A wait closed by cancelling its instance
    abandoned = start(client, waiting(client))["id"]
    assert client.post(f"/v1/instances/{abandoned}/cancel", json={}).status_code == 200
    ids.append(abandoned)
    # Incidents: a failing call held, retried (held again), then cancelled; another skipped
    held = define(
        client,
        [{**call, "retry": {"max_attempts": 1}}, {"id": "done", "type": "end"}],
        routes("call>done"),
        prefix="held",
        on_failure="incident",
    )
    for action in ("retry", "skip"):
        incident = start(client, held)["id"]
        wait_for_status(client, incident, "incident", timeout=30)
        acted = client.post(f"/v1/instances/{incident}/{action}", json={"reason": "feed test"})
        assert acted.status_code == 200, acted.text
        if action == "retry":  # still failing: held again, then given up
            wait_for_status(client, incident, "incident", timeout=30)
            assert client.post(f"/v1/instances/{incident}/cancel", json={}).status_code == 200
        ids.append(incident)
    # Operator recovery: a wait migrated to version 2 (renamed), then modified to go on
    moved = waiting(client)
    migrated = start(client, moved)["id"]
    publish(
        client,
        {
            "name": moved,
            "nodes": [{"id": "hold", "type": "wait"}, {"id": "done", "type": "end"}],
            "routes": routes("hold>done"),
        },
    )
    body = {"from_version": 1, "to_version": 2, "mapping": {"wait": "hold"}, "dry_run": False}
    job = client.post(f"/v1/definitions/{moved}/migrations", json=body)
    assert job.status_code == 202, job.text
    wait_for(
        lambda: client.get(f"/v1/jobs/{job.json()['id']}").json()["status"] == "succeeded",
        what="the migration job",
    )
    ops = {"operations": [{"cancel": "hold"}, {"start_before": "done"}], "reason": "test"}
    modified = client.post(f"/v1/instances/{migrated}/modify", json=ops)
    assert modified.status_code == 200, modified.text
    ids.append(migrated)
    for instance_id in ids:
        wait_for_status(client, instance_id, "completed", "failed", "cancelled", timeout=30)
    return ids
