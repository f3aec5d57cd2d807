"""`GET /v1/analytics` over HTTP: authenticated, per definition, the caller's tenant only."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import is_problem, open_bookmark, publish, start, unique

pytestmark = pytest.mark.e2e


def approving(name: str) -> dict:
    return {
        "name": name,
        "sla_hours": 24,
        "nodes": [
            {"id": "ok", "type": "approval", "approver_role": "manager"},
            {"id": "done", "type": "end"},
        ],
        "routes": [{"from": "ok", "to": "done"}],
    }


def test_analytics_per_definition_for_the_callers_tenant_only(
    acme: httpx.Client, globex: httpx.Client, anonymous: httpx.Client
) -> None:
    name = unique("reported")
    publish(acme, approving(name))
    done, _waiting = start(acme, name), start(acme, name)
    task_id = open_bookmark(done, "ok")["id"]
    completed = acme.post(f"/v1/tasks/{task_id}/complete", json={"outcome": "approved"})
    assert completed.status_code == 200, completed.text

    response = acme.get("/v1/analytics", params={"definition": name})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["generated_at"]
    (item,) = body["items"]
    assert {k: item[k] for k in ("definition", "started", "completed", "running")} == {
        "definition": name,
        "started": 2,
        "completed": 1,
        "running": 1,
    }
    assert item["avg_duration_seconds"] >= 0 and item["p95_duration_seconds"] >= 0
    assert item["sla"] == {"hours": 24, "met": 1, "breached": 0, "compliance": 1.0}
    assert item["tasks"] == {"open": 1, "overdue": 0}
    assert name in [i["definition"] for i in acme.get("/v1/analytics").json()["items"]]

    # Another tenant sees nothing of it; no key, no report.
    theirs = globex.get("/v1/analytics")
    assert theirs.status_code == 200, theirs.text
    assert name not in [i["definition"] for i in theirs.json()["items"]]
    assert globex.get("/v1/analytics", params={"definition": name}).json()["items"] == []
    is_problem(anonymous.get("/v1/analytics"), 401, "unauthorized")
    bad = acme.get("/v1/analytics", params={"created_after": "yesterday"})
    is_problem(bad, 422, "invalid-request")
