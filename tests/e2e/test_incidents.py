"""Operator recovery over HTTP: incidents, retry after the target is fixed, skip, the
audit trail, and time travel (docs/operations-recovery.md)."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Target, instance, publish, start, unique, wait_for_status
from tests.e2e.flow_support import history

pytestmark = pytest.mark.e2e

# The actor recorded is the API key's stable name (infrastructure.bootstrap._key_name).
ACME_KEY_NAME = "key-" + hashlib.sha256(b"k-acme").hexdigest()[:10]
RETRY = {"max_attempts": 2, "initial_interval": "PT0.1S", "backoff": 1.0}


def charging(name: str, url: str, **top: Any) -> dict[str, Any]:
    return {
        "name": name,
        **top,
        "nodes": [
            {
                "id": "charge",
                "type": "service_task",
                "retry": RETRY,
                "timeout": "PT5S",
                "result_var": "receipt",
                "action": {"type": "http", "method": "POST", "url": url, "body": {"n": 1}},
            },
            {"id": "done", "type": "end", "output": {"receipt": "vars.receipt"}},
        ],
        "routes": [{"from": "charge", "to": "done"}],
    }


def held(client: httpx.Client, target: Target, path: str, name: str) -> dict[str, Any]:
    target.fail(path, 500)
    publish(client, charging(name, target.base_url + path, on_failure="incident"))
    view = start(client, name)
    return wait_for_status(client, view["id"], "incident", "failed", "completed")


def test_a_failing_call_is_held_listed_retried_after_the_fix_and_completes(
    acme: httpx.Client, globex: httpx.Client, target: Target
) -> None:
    path, name = "/" + unique("pay"), unique("charge")
    view = held(acme, target, path, name)
    assert view["status"] == "incident", view
    assert len(target.received(path)) == 2  # the retries ran out first

    # Listed, with the node and the error, for this tenant only.
    listed = acme.get("/v1/incidents", params={"definition": name}).json()["items"]
    assert [(i["instance_id"], i["node_id"]) for i in listed] == [(view["id"], "charge")]
    assert "500" in listed[0]["error"]["message"]
    assert (
        acme.get("/v1/incidents", params={"definition": name, "node_id": "x"}).json()["items"] == []
    )
    assert globex.get("/v1/incidents", params={"definition": name}).json()["items"] == []

    # Fixed downstream; the operator retries with a changed variable.
    target.fail(path, 200)
    response = acme.post(
        f"/v1/instances/{view['id']}/retry",
        json={"variables": {"card": "new"}, "reason": "provider fixed"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["recovery"] == {"action": "retried", "node_id": "charge"}
    done = wait_for_status(acme, view["id"], "completed", "failed", "incident")
    assert done["status"] == "completed" and done["variables"]["card"] == "new"
    assert acme.get("/v1/incidents", params={"definition": name}).json()["items"] == []

    retried = [e for e in history(acme, view["id"]) if e["type"] == "IncidentRetried"]
    assert len(retried) == 1
    assert retried[0]["data"]["actor"] == ACME_KEY_NAME
    assert retried[0]["data"]["reason"] == "provider fixed"
    # An administrative act: in the audit log too, with who and why.
    audited = acme.get("/v1/audit", params={"target": f"instance:{view['id']}"}).json()["items"]
    assert [(e["action"], e["details"].get("reason")) for e in audited] == [
        ("instance.retried", "provider fixed")
    ]
    assert audited[0]["actor"] == f"key:{ACME_KEY_NAME}"
    assert len({c.headers.get("idempotency-key") for c in target.received(path)}) == 3


def test_skip_completes_the_node_with_a_result_and_a_second_action_is_refused(
    acme: httpx.Client, target: Target
) -> None:
    path, name = "/" + unique("pay"), unique("charge")
    view = held(acme, target, path, name)
    response = acme.post(
        f"/v1/instances/{view['id']}/skip",
        json={"result": {"manual": True}, "reason": "charged by hand"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed"
    assert response.json()["output"] == {"receipt": {"manual": True}}
    skipped = [e for e in history(acme, view["id"]) if e["type"] == "IncidentSkipped"]
    assert skipped[0]["data"]["actor"] == ACME_KEY_NAME
    assert skipped[0]["data"]["reason"] == "charged by hand"
    again = acme.post(f"/v1/instances/{view['id']}/retry", json={})
    assert again.status_code == 409 and again.json()["type"].endswith("not-recoverable")


def test_a_failed_instance_is_retried_and_reopened(acme: httpx.Client, target: Target) -> None:
    path, name = "/" + unique("pay"), unique("charge")
    target.fail(path, 500)
    publish(acme, charging(name, target.base_url + path))  # default on_failure: fail
    view = wait_for_status(acme, start(acme, name)["id"], "failed", "completed")
    assert view["status"] == "failed"
    target.fail(path, 200)
    response = acme.post(f"/v1/instances/{view['id']}/retry", json={"reason": "fixed"})
    assert response.status_code == 200, response.text
    done = wait_for_status(acme, view["id"], "completed", "failed")
    assert done["status"] == "completed" and done["error"] is None
    (event,) = [e for e in history(acme, view["id"]) if e["type"] == "IncidentRetried"]
    assert event["data"]["reopened"] is True


_DYNAMIC = ("sla_due_at", "late", "incidents")


def _comparable(view: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k not in _DYNAMIC}


def test_time_travel_equals_the_states_observed_during_the_run(
    acme: httpx.Client, target: Target
) -> None:
    path, name = "/" + unique("pay"), unique("charge")
    observed = [held(acme, target, path, name)]
    instance_id = observed[0]["id"]
    target.fail(path, 200)
    acme.post(f"/v1/instances/{instance_id}/retry", json={"variables": {"k": 1}})
    observed.append(wait_for_status(acme, instance_id, "completed", "failed"))
    observed.insert(0, instance(acme, instance_id))  # the final state again (a no-op read)

    for state in observed:
        version = state["aggregate_version"]
        past = acme.get(f"/v1/instances/{instance_id}", params={"at_version": version})
        assert past.status_code == 200, past.text
        assert _comparable(past.json()) == _comparable(state), version
        at = acme.get(f"/v1/instances/{instance_id}", params={"at": state["updated_at"]})
        assert _comparable(at.json()) == _comparable(state), state["updated_at"]

    # Every earlier version is a real state too: version 1 is the bare start.
    first = acme.get(f"/v1/instances/{instance_id}", params={"at_version": 1}).json()
    assert first["aggregate_version"] == 1 and first["status"] == "running"
    before = acme.get(f"/v1/instances/{instance_id}", params={"at": "2000-01-01T00:00:00Z"})
    assert before.status_code == 404
    naive = acme.get(f"/v1/instances/{instance_id}", params={"at": "2999-01-01T00:00:00"})
    assert naive.status_code == 200 and naive.json()["status"] == "completed"


def test_the_incident_list_pages_with_a_cursor(acme: httpx.Client, target: Target) -> None:
    path, name = "/" + unique("pay"), unique("charge")
    ids = {held(acme, target, path, name)["id"] for _ in range(3)}
    seen: list[str] = []
    cursor = None
    while True:
        params = {"definition": name, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = acme.get("/v1/incidents", params=params).json()
        seen += [i["instance_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 3
