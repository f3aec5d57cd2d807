"""Helpers the e2e flow tests share: publish a fresh definition from its nodes and routes,
and read an instance's history (every page)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.conftest import is_problem, publish, unique


def define(
    client: httpx.Client,
    nodes: list[dict[str, Any]],
    routes: list[dict[str, Any]],
    *,
    prefix: str = "wcp",
    **top: Any,
) -> str:
    """Publishes a definition under a fresh name `<prefix>-...`; the name."""
    name = unique(prefix)
    publish(client, {"name": name, "nodes": nodes, "routes": routes, **top})
    return name


def refusals(
    client: httpx.Client, nodes: list[dict[str, Any]], routes: list[dict[str, Any]]
) -> list[tuple[str, str]]:
    """Publishes a definition that must be refused (422 invalid-definition); the (code, JSON
    path) of each error."""
    document = {"name": unique("bad"), "nodes": nodes, "routes": routes}
    body = is_problem(client.post("/v1/definitions", json=document), 422, "invalid-definition")
    return [(e["code"], e["path"]) for e in body["errors"]]


def history(client: httpx.Client, instance_id: str) -> list[dict[str, Any]]:
    """Every history entry of the instance, following `next_cursor` page by page."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        response = client.get(f"/v1/instances/{instance_id}/history", params=params)
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return items


def history_types(client: httpx.Client, instance_id: str) -> list[str]:
    """The types of every history entry of the instance, in order."""
    return [e["type"] for e in history(client, instance_id)]


def waiting(name: str) -> dict:
    """A definition `name` that waits for event `release`, then ends."""
    return {
        "name": name,
        "nodes": [
            {"id": "hold", "type": "wait", "event": "release"},
            {"id": "done", "type": "end"},
        ],
        "routes": [{"from": "hold", "to": "done"}],
    }


def approving(name: str) -> dict:
    """A definition `name`: one approval by role manager, then the end."""
    return {
        "name": name,
        "nodes": [
            {"id": "ok", "type": "approval", "approver_role": "manager"},
            {"id": "done", "type": "end"},
        ],
        "routes": [{"from": "ok", "to": "done"}],
    }


def calling(name: str, url: str) -> dict:
    """A definition `name`: one service task that POSTs to `url` (an http action), then ends."""
    return {
        "name": name,
        "nodes": [
            {"id": "call", "type": "service_task", "action": {"type": "http", "url": url}},
            {"id": "done", "type": "end"},
        ],
        "routes": [{"from": "call", "to": "done"}],
    }
