"""The purchase approval of SPEC §2, end to end: start idempotently, decide both approvals
over the task API, watch the in-process task worker call the ERP, read the history."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import (
    Target,
    instance,
    is_problem,
    open_bookmark,
    open_tasks,
    publish,
    purchase_approval,
    start,
    unique,
    wait_for,
    wait_for_status,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def definition(acme: httpx.Client, target: Target) -> str:
    name = unique("purchase-approval")
    publish(acme, purchase_approval(name, target.base_url))
    return name


def test_purchase_approval_runs_to_the_erp_call(
    acme: httpx.Client, target: Target, definition: str
) -> None:
    po_id = unique("PO-1")
    key = unique("start")

    # Given an instance started with an idempotency key
    first = acme.post(
        "/v1/instances",
        json={
            "definition": definition,
            "input": {"amount": 15000, "po_id": po_id},
            "idempotency_key": key,
        },
    )
    assert first.status_code == 201, first.text
    again = acme.post(
        "/v1/instances",
        json={
            "definition": definition,
            "input": {"amount": 15000, "po_id": po_id},
            "idempotency_key": key,
        },
    )
    assert again.status_code == 200, again.text
    instance_id = first.json()["id"]
    assert again.json()["id"] == instance_id
    assert first.json()["version"] == 1

    # Then it waits for the manager, with one open task in the queue
    view = first.json()
    assert view["status"] == "suspended"
    assert open_bookmark(view, "manager_approval")["kind"] == "task"
    [task] = open_tasks(acme, instance_id)
    assert (task["node_id"], task["kind"]) == ("manager_approval", "approval")
    assert task["role"] == "manager"
    assert acme.get(f"/v1/tasks/{task['id']}").json()["id"] == task["id"]

    # When the manager approves, then the amount (> 10000) needs the CFO
    decided = acme.post(f"/v1/tasks/{task['id']}/complete", json={"outcome": "approved"})
    assert decided.status_code == 200, decided.text
    assert open_bookmark(decided.json(), "cfo_approval")["kind"] == "task"
    again_decided = acme.post(f"/v1/tasks/{task['id']}/complete", json={"outcome": "approved"})
    problem = is_problem(again_decided, 409, "bookmark-not-open")
    assert problem["bookmark"]["status"] != "open"
    [cfo_task] = open_tasks(acme, instance_id)
    assert cfo_task["node_id"] == "cfo_approval"

    # When the CFO approves, then the ERP receives the PO exactly as templated
    assert (
        acme.post(f"/v1/tasks/{cfo_task['id']}/complete", json={"outcome": "approved"}).status_code
        == 200
    )
    [call] = wait_for(lambda: target.received(f"/po/{po_id}/approved"), what="the ERP call")
    assert call.method == "POST"
    assert call.headers.get("idempotency-key", "").startswith(f"{instance_id}:notify:")
    done = wait_for_status(acme, instance_id, "completed")
    assert done["ended_at"] and done["bookmarks"] == []

    # And the history lists every event in order
    history = acme.get(f"/v1/instances/{instance_id}/history")
    assert history.status_code == 200
    items = history.json()["items"]
    assert history.json()["next_cursor"] is None
    assert [e["version"] for e in items] == list(range(1, len(items) + 1))
    positions = [e["position"] for e in items]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert all(e["type"] and e["timestamp"] and isinstance(e["data"], dict) for e in items)


def test_wrong_outcomes_and_claims(acme: httpx.Client, definition: str) -> None:
    view = start(acme, definition, input={"amount": 50, "po_id": unique("PO")})
    [task] = open_tasks(acme, view["id"])

    # An approval only knows approved/rejected
    wrong = acme.post(f"/v1/tasks/{task['id']}/complete", json={"outcome": "maybe"})
    assert set(is_problem(wrong, 422, "invalid-outcome")["allowed"]) == {"approved", "rejected"}

    # Claim (for the caller by default) and delegate
    claimed = acme.post(f"/v1/tasks/{task['id']}/claim")
    assert claimed.status_code == 200, claimed.text
    assert acme.get(f"/v1/tasks/{task['id']}").json()["claimed_by"]
    delegated = acme.post(f"/v1/tasks/{task['id']}/delegate", json={"assignee": "bob"})
    assert delegated.status_code == 200, delegated.text
    assert acme.get(f"/v1/tasks/{task['id']}").json()["assignee"] == "bob"
    is_problem(acme.post(f"/v1/tasks/{task['id']}/delegate", json={}), 422, "invalid-request")

    # Rejection ends at the failed end node
    rejected = acme.post(f"/v1/tasks/{task['id']}/complete", json={"outcome": "rejected"})
    assert rejected.status_code == 200
    assert rejected.json()["status"] == "failed"
    is_problem(acme.get("/v1/tasks/no-such-task"), 404, "not-found")


def test_bad_start_requests(acme: httpx.Client, definition: str) -> None:
    # Input that violates the definition's input_schema
    bad_input = acme.post(
        "/v1/instances", json={"definition": definition, "input": {"amount": "lots"}}
    )
    errors = is_problem(bad_input, 422, "invalid-data")["errors"]
    assert [e["path"] for e in errors] == ["$.amount"]

    # A body that is not the request schema: JSON paths of the offending fields
    bogus = acme.post(
        "/v1/instances", json={"definition": definition, "input": [1], "tenant": "globex"}
    )
    paths = {e["path"] for e in is_problem(bogus, 422, "invalid-request")["errors"]}
    assert paths == {"$.input", "$.tenant"}

    is_problem(acme.post("/v1/instances", json={"definition": unique("nope")}), 404, "not-found")


def test_disabled_definitions_start_nothing(acme: httpx.Client, definition: str) -> None:
    assert acme.post(f"/v1/definitions/{definition}/disable").json()["enabled"] is False
    refused = acme.post("/v1/instances", json={"definition": definition, "input": {"amount": 1}})
    is_problem(refused, 409, "definition-disabled")

    assert acme.post(f"/v1/definitions/{definition}/enable").json()["enabled"] is True
    view = start(acme, definition, input={"amount": 1, "po_id": unique("PO")})
    assert instance(acme, view["id"])["status"] == "suspended"
    is_problem(acme.post(f"/v1/definitions/{unique('nope')}/enable"), 404, "not-found")
