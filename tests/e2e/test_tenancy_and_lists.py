"""Cancelling, listing with filters and cursors, and tenant isolation: another tenant's
definitions, instances and tasks do not exist for you (404, never 403)."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import (
    instance,
    is_problem,
    open_bookmark,
    open_tasks,
    publish,
    start,
    unique,
)
from tests.e2e.flow_support import approving, waiting

pytestmark = pytest.mark.e2e


def test_cancel(acme: httpx.Client) -> None:
    name = unique("held")
    publish(acme, waiting(name))
    view = start(acme, name)

    cancelled = acme.post(f"/v1/instances/{view['id']}/cancel", json={"reason": "not needed"})

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["bookmarks"] == []
    again = acme.post(f"/v1/instances/{view['id']}/cancel")
    assert is_problem(again, 409, "instance-not-active")["instance_status"] == "cancelled"
    bookmark = acme.post(
        f"/v1/instances/{view['id']}/bookmarks/{open_bookmark(view, 'hold')['id']}/resume",
        json={},
    )
    assert is_problem(bookmark, 409, "bookmark-not-open")["bookmark"]["status"] == "cancelled"


def test_list_filters_and_paginates(acme: httpx.Client) -> None:
    # Given five instances of one definition, two of them cancelled
    name = unique("listed")
    publish(acme, waiting(name))
    ids = [start(acme, name, correlation_id=f"batch-{name}")["id"] for _ in range(5)]
    for instance_id in ids[:2]:
        assert acme.post(f"/v1/instances/{instance_id}/cancel").status_code == 200

    # When they are listed two at a time
    seen: list[str] = []
    pages = 0
    cursor = None
    while True:
        params = {"definition": name, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = acme.get("/v1/instances", params=params)
        assert page.status_code == 200, page.text
        pages += 1
        assert len(page.json()["items"]) <= 2
        seen += [item["id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if not cursor:
            break

    # Then every instance is seen exactly once
    assert sorted(seen) == sorted(ids) and pages == 3
    by_status = acme.get("/v1/instances", params={"definition": name, "status": "cancelled"})
    assert sorted(i["id"] for i in by_status.json()["items"]) == sorted(ids[:2])
    suspended = acme.get("/v1/instances", params={"definition": name, "status": "suspended"})
    assert len(suspended.json()["items"]) == 3
    correlated = acme.get("/v1/instances", params={"correlation_id": f"batch-{name}"})
    assert len(correlated.json()["items"]) == 5
    future = acme.get(
        "/v1/instances", params={"definition": name, "created_after": "2999-01-01T00:00:00Z"}
    )
    assert future.json()["items"] == []


def test_list_parameters_are_checked(acme: httpx.Client) -> None:
    too_many = acme.get("/v1/instances", params={"limit": 501})
    errors = is_problem(too_many, 422, "invalid-request")["errors"]
    assert [e["path"] for e in errors] == ["query.limit"]
    is_problem(acme.get("/v1/instances", params={"cursor": "garbage!"}), 400, "invalid-cursor")
    typo = acme.get("/v1/instances", params={"status": "done"})
    assert [e["path"] for e in is_problem(typo, 422, "invalid-request")["errors"]] == [
        "query.status"
    ]
    is_problem(acme.get("/v1/tasks", params={"urgency": "asap"}), 422, "invalid-request")
    is_problem(acme.get("/v1/instances/not-a-uuid"), 404, "not-found")
    is_problem(acme.get("/v1/instances/not-a-uuid/history"), 404, "not-found")


def test_tenants_cannot_see_each_other(acme: httpx.Client, globex: httpx.Client) -> None:
    # Given acme's definition, an instance waiting on an approval, and its task
    name = unique("private")
    publish(acme, approving(name))
    view = start(acme, name)
    [task] = open_tasks(acme, view["id"])
    bookmark = open_bookmark(view, "ok")

    # Then, for globex, none of it exists
    is_problem(globex.get(f"/v1/definitions/{name}"), 404, "not-found")
    is_problem(globex.post("/v1/instances", json={"definition": name}), 404, "not-found")
    is_problem(globex.get(f"/v1/instances/{view['id']}"), 404, "not-found")
    is_problem(globex.get(f"/v1/instances/{view['id']}/history"), 404, "not-found")
    is_problem(globex.post(f"/v1/instances/{view['id']}/cancel"), 404, "not-found")
    is_problem(
        globex.post(f"/v1/instances/{view['id']}/bookmarks/{bookmark['id']}/resume", json={}),
        404,
        "not-found",
    )
    is_problem(globex.get(f"/v1/tasks/{task['id']}"), 404, "not-found")
    is_problem(globex.post(f"/v1/tasks/{task['id']}/claim"), 404, "not-found")
    is_problem(
        globex.post(f"/v1/tasks/{task['id']}/complete", json={"outcome": "approved"}),
        404,
        "not-found",
    )
    assert view["id"] not in [i["id"] for i in globex.get("/v1/instances").json()["items"]]
    assert task["id"] not in [t["id"] for t in globex.get("/v1/tasks").json()["items"]]
    assert name not in [d["name"] for d in globex.get("/v1/definitions").json()["items"]]

    # And globex publishing the same name starts its own version 1
    assert publish(globex, approving(name))["version"] == 1
    assert instance(acme, view["id"])["status"] == "suspended"
