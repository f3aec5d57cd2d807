"""Every endpoint that takes an id, called by another tenant with a real id of acme's and
with a missing one: 404 both times, with the same body once the id itself is masked. So a
caller cannot tell "exists elsewhere" from "does not exist". The walk is checked against the
OpenAPI document: a new route with a path parameter fails here until it is walked."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from tests.e2e.conftest import Server, open_bookmark, open_tasks, publish, start, unique

pytestmark = pytest.mark.e2e

# Not tenant-owned: signed callbacks and webhooks find their tenant from the token or the
# definition and signature (tests/integration/test_tenant_leaks.py); templates are global.
NOT_TENANT_OWNED = {
    "/v1/callbacks/{token}",
    "/v1/webhooks/{definition}",
    "/v1/task-links/{token}",  # signed; binds its tenant (tests/e2e/test_task_links.py)
    "/v1/templates/{template_id}",
    "/v1/templates/{template_id}/instantiate",
}


def flow(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "nodes": [
            {"id": "ok", "type": "approval", "approver_role": "manager"},
            {"id": "hold", "type": "wait"},
            {"id": "done", "type": "end"},
        ],
        "routes": [
            {"from": "ok", "to": "hold", "outcome": "approved"},
            {"from": "ok", "to": "done", "outcome": "rejected"},
            {"from": "hold", "to": "done"},
        ],
    }


def masked(response: httpx.Response, ids: list[str]) -> tuple[int, str]:
    text = response.text
    for value in ids:
        # Whole values only: a short numeric id must not mask the "1" of "/v1".
        text = re.sub(rf"(?<![0-9A-Za-z-]){re.escape(value)}(?![0-9A-Za-z-])", "<id>", text)
    return response.status_code, json.dumps(json.loads(text), sort_keys=True)


def test_every_id_taking_endpoint_answers_404_alike_for_foreign_and_missing_ids(
    server: Server, module_database_url: str
) -> None:
    name = unique("walked")
    with server.client("k-acme") as acme:
        publish(acme, flow(name))
        view = start(acme, name)
        task = open_tasks(acme, view["id"])[0]
        # Reach the wait too: a real open bookmark of acme's.
        done = acme.post(f"/v1/tasks/{task['id']}/complete", json={"outcome": "approved"})
        assert done.status_code == 200, done.text
        later = start(acme, name)
        task = open_tasks(acme, later["id"])[0]
        bookmark = open_bookmark(acme.get(f"/v1/instances/{view['id']}").json(), "hold")
        publish(acme, flow(name))  # version 2: a migration job of acme's to look for
        body = {"from_version": 1, "to_version": 2, "mapping": {}, "dry_run": True}
        job = acme.post(f"/v1/definitions/{name}/migrations", json={**body, "dry_run": False})
        assert job.status_code == 202, job.text
    with psycopg.connect(module_database_url) as conn:
        (dead_letter,) = conn.execute(
            "INSERT INTO outbox_dead_letters (publisher, position, instance_id, tenant, "
            "event_type, error) VALUES ('kafka', 999999, %s, 'acme', 'Started', 'test') "
            "RETURNING id",
            (view["id"],),
        ).fetchone()

    foreign = {
        "name": name,
        "instance_id": view["id"],
        "bookmark_id": bookmark["id"],
        "task_id": task["id"],
        "dead_letter_id": str(dead_letter),
        "job_id": job.json()["id"],
    }
    missing = {
        "name": unique("missing"),
        "instance_id": str(uuid.uuid4()),
        "bookmark_id": f"{bookmark['id']}x",
        "task_id": f"{task['id']}x",
        "dead_letter_id": str(dead_letter + 1000),
        "job_id": str(uuid.uuid4()),
    }
    bodies: dict[str, Any] = {
        "/v1/instances/{instance_id}/cancel": {"reason": "walk"},
        "/v1/instances/{instance_id}/bookmarks/{bookmark_id}/resume": {},
        "/v1/instances/{instance_id}/erase": {"reason": "walk"},
        "/v1/instances/{instance_id}/modify": {"operations": [{"cancel": "ask"}]},
        "/v1/instances/{instance_id}/retry": {"reason": "walk"},
        "/v1/instances/{instance_id}/skip": {"reason": "walk"},
        "/v1/definitions/{name}/migrations": {"from_version": 1, "to_version": 2, "mapping": {}},
        "/v1/tasks/{task_id}/claim": {"user": "mallory"},
        "/v1/tasks/{task_id}/delegate": {"assignee": "mallory"},
        "/v1/tasks/{task_id}/complete": {"outcome": "approved"},
    }
    with server.client("k-acme") as acme:
        document = acme.get("/openapi.json").json()
    walked: set[str] = set()
    with server.client("k-globex") as globex:
        for path, item in document["paths"].items():
            if "{" not in path or path in NOT_TENANT_OWNED:
                continue
            for method in item:
                call: Callable[..., httpx.Response] = getattr(globex, method)
                answers = []
                for ids in (foreign, missing):
                    url = path.format(**ids)
                    kwargs = {"json": bodies[path]} if method == "post" and path in bodies else {}
                    response = call(url, **kwargs)
                    assert response.status_code == 404, (method, url, response.text)
                    assert response.headers["content-type"] == "application/problem+json"
                    used = [v for k, v in ids.items() if "{" + k + "}" in path]
                    answers.append(masked(response, sorted(used, key=len, reverse=True)))
                assert answers[0] == answers[1], (method, path, answers)
                walked.add(path)
        # Lists: none of acme's ids shows up in globex's.
        for url in (
            "/v1/definitions",
            "/v1/instances",
            "/v1/tasks",
            "/v1/feed",
            "/v1/audit",
            "/v1/outbox/dead-letters",
        ):
            response = globex.get(url)
            assert response.status_code == 200, (url, response.text)
            for value in (view["id"], later["id"], task["id"], name):
                assert value not in response.text, (url, value)
    expected = {p for p in document["paths"] if "{" in p} - NOT_TENANT_OWNED
    assert walked == expected

    # Positive control: acme itself finds every one of them.
    with server.client("k-acme") as acme:
        assert acme.get(f"/v1/definitions/{name}").status_code == 200
        assert acme.get(f"/v1/instances/{view['id']}").status_code == 200
        assert acme.get(f"/v1/tasks/{task['id']}").status_code == 200
