"""Bulk cancel and retry by filter over HTTP (`POST /v1/instances/bulk`, application/bulk.py):
a dry run that changes nothing, a tracked job with done/refused counts at `GET /v1/jobs/{id}`,
each instance by its own command, refusals with their reasons."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Target, instance, publish, start, unique, wait_for, wait_for_status

pytestmark = pytest.mark.e2e

RETRY = {"max_attempts": 1, "initial_interval": "PT0.1S", "backoff": 1.0}


def waiting(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "nodes": [
            {"id": "a", "type": "approval", "approver_role": "m"},
            {"id": "done", "type": "end"},
        ],
        "routes": [
            {"from": "a", "to": "done", "outcome": "approved"},
            {"from": "a", "to": "done", "outcome": "rejected"},
        ],
    }


def charging(name: str, url: str) -> dict[str, Any]:
    return {
        "name": name,
        "on_failure": "incident",
        "nodes": [
            {
                "id": "charge",
                "type": "service_task",
                "retry": RETRY,
                "timeout": "PT5S",
                "action": {"type": "http", "method": "POST", "url": url, "body": {"n": 1}},
            },
            {"id": "done", "type": "end"},
        ],
        "routes": [{"from": "charge", "to": "done"}],
    }


def job_done(client: httpx.Client, job_id: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        response = client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        return body if body["status"] != "running" else None

    return wait_for(probe, timeout=30, what=f"job {job_id}")


def bulk(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/v1/instances/bulk", json=body)


def test_bulk_cancel_by_definition_and_version_cancels_exactly_the_matching_instances(
    acme: httpx.Client, globex: httpx.Client
) -> None:
    name, other = unique("bulk"), unique("bulk-other")
    publish(acme, waiting(name))
    publish(acme, waiting(other))
    publish(globex, waiting(name))
    targets = [start(acme, name)["id"] for _ in range(3)]
    publish(acme, waiting(name))  # version 2: not selected by version 1
    newer = start(acme, name, version=2)["id"]
    bystanders = [newer, start(acme, other)["id"], start(globex, name)["id"]]
    selection = {"definition": name, "version": 1}

    # The dry run lists the matching instances and changes nothing.
    plan = bulk(acme, action="cancel", filter=selection, dry_run=True)
    assert plan.status_code == 200, plan.text
    assert plan.json()["total"] == 3 and sorted(plan.json()["instance_ids"]) == sorted(targets)
    assert {instance(acme, i)["status"] for i in targets} == {"suspended"}

    response = bulk(acme, action="cancel", filter=selection, reason="supplier gone")
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["kind"] == "bulk-cancel" and job["total"] == 3
    assert globex.get(f"/v1/jobs/{job['id']}").status_code == 404  # tenant-scoped
    done = job_done(acme, job["id"])
    assert done["status"] == "succeeded", done
    assert (done["done"], done["refused"], done["failed"], done["remaining"]) == (3, 0, 0, 0)
    for instance_id in targets:
        view = instance(acme, instance_id)
        assert view["status"] == "cancelled", view
    assert instance(acme, bystanders[0])["status"] == "suspended"
    assert instance(acme, bystanders[1])["status"] == "suspended"
    assert instance(globex, bystanders[2])["status"] == "suspended"

    # Nothing is left to cancel: the same request now matches no instance.
    again = job_done(acme, bulk(acme, action="cancel", filter=selection).json()["id"])
    assert (again["total"], again["done"], again["refused"]) == (0, 0, 0)


def test_bulk_retry_retries_held_incidents_and_refuses_what_cannot_be_retried(
    acme: httpx.Client, target: Target
) -> None:
    path, name = "/" + unique("bulk-pay"), unique("bulk-charge")
    target.fail(path, 500)
    publish(acme, charging(name, target.base_url + path))
    held = [start(acme, name)["id"] for _ in range(2)]
    for instance_id in held:
        wait_for_status(acme, instance_id, "incident", "failed", "completed")
    assert {instance(acme, i)["status"] for i in held} == {"incident"}

    # Retrying instances that hold no incident is refused, one by one, with the reason.
    waiter = unique("bulk-wait")
    publish(acme, waiting(waiter))
    running = start(acme, waiter)["id"]
    refused = bulk(acme, action="retry", filter={"definition": waiter, "status": "suspended"})
    assert refused.status_code == 202, refused.text
    report = job_done(acme, refused.json()["id"])
    assert (report["done"], report["refused"], report["failed"]) == (0, 1, 0), report
    assert report["errors"][0]["instance_id"] == running and report["errors"][0]["reasons"]
    assert instance(acme, running)["status"] == "suspended"

    # Fixed downstream: one bulk retry takes both held instances (default: incident, failed).
    target.fail(path, 200)
    response = bulk(acme, action="retry", filter={"definition": name}, reason="provider fixed")
    assert response.status_code == 202, response.text
    done = job_done(acme, response.json()["id"])
    assert (done["done"], done["refused"], done["failed"]) == (2, 0, 0), done
    for instance_id in held:
        assert wait_for_status(acme, instance_id, "completed", "failed", "incident")["status"] == (
            "completed"
        )
    history = acme.get(f"/v1/instances/{held[0]}/history").json()["items"]
    retried = [e for e in history if e["type"].endswith("IncidentRetried")]
    assert retried, [e["type"] for e in history]


def test_a_bulk_request_needs_a_definition_and_a_known_action(acme: httpx.Client) -> None:
    assert bulk(acme, action="cancel", filter={}).status_code == 422
    assert bulk(acme, action="explode", filter={"definition": "x"}).status_code == 422
    assert bulk(acme, action="cancel", filter={"definition": "x", "colour": 1}).status_code == 422
