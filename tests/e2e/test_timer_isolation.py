"""One tenant cannot halt the timer worker for all tenants (issue 5 item 2), over HTTP
against `waymark serve` with its in-process timer worker."""

from __future__ import annotations

import time
from typing import Any

import httpx
import psycopg
import pytest

from application.session import MAX_SUB_WORKFLOW_DEPTH
from tests.e2e.conftest import (
    Server,
    instance,
    publish,
    start,
    unique,
    wait_for,
    wait_for_status,
)

pytestmark = pytest.mark.e2e

TIMER_SLACK = 2.5  # seconds a due timer may take to fire on a loaded test machine


def recursive_pair(client: httpx.Client, duration: str) -> str:
    """Two definitions that start each other after a timer; the name of the first."""
    ping, pong = unique("ping"), unique("pong")
    for name, other in ((ping, pong), (pong, ping)):
        publish(
            client,
            {
                "name": name,
                "nodes": [
                    {"id": "tick", "type": "timer", "duration": duration},
                    {"id": "call", "type": "sub_workflow", "definition": other},
                    {"id": "done", "type": "end"},
                ],
                "routes": [{"from": "tick", "to": "call"}, {"from": "call", "to": "done"}],
            },
        )
    return ping


def timer_until(client: httpx.Client) -> str:
    name = unique("until")
    publish(
        client,
        {
            "name": name,
            "nodes": [
                {"id": "at", "type": "timer", "until": "input.at"},
                {"id": "done", "type": "end"},
            ],
            "routes": [{"from": "at", "to": "done"}],
        },
    )
    return name


def tree(client: httpx.Client, correlation_id: str) -> list[dict[str, Any]]:
    """Every instance of a recursion (children inherit the root's correlation id)."""
    response = client.get("/v1/instances", params={"correlation_id": correlation_id, "limit": 500})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def timer_worker(client: httpx.Client) -> dict[str, Any]:
    body = client.get("/health").json()
    return {"timers": body["components"]["timers"], **body["components"]["workers"]["workers"]}


def test_another_tenants_timer_fires_on_time_beside_a_year_1_timer_and_a_recursion(
    server: Server, acme: httpx.Client, globex: httpx.Client, module_database_url: str
) -> None:
    # Given acme's year-1 timer: refused where it is evaluated, with a clear error
    until = timer_until(acme)
    year_1 = start(acme, until, input={"at": "0001-01-01T00:00:00+14:00"})
    assert year_1["status"] == "failed"
    assert "outside the supported range" in year_1["error"]["message"]
    far = start(acme, until, input={"at": "9999-12-31T23:00:00-05:00"})
    assert far["status"] == "failed" and far["error"]["node_id"] == "at"
    # and one stored before that check existed (year 0 in UTC: unreadable), due first
    legacy = start(acme, until, input={"at": "2100-01-01T00:00:00Z"})
    legacy_bookmark = legacy["bookmarks"][0]["id"]
    with psycopg.connect(module_database_url) as conn:
        conn.execute(
            "UPDATE bookmarks SET due_at = '0001-01-01 00:00:00+14' WHERE id = %s",
            (legacy_bookmark,),
        )
    # and acme's two definitions calling each other through a timer
    correlation = unique("recursion")
    root = start(acme, recursive_pair(acme, "PT0.2S"), correlation_id=correlation)

    # When globex starts a 2 s timer
    name = unique("two-seconds")
    publish(
        globex,
        {
            "name": name,
            "nodes": [
                {"id": "pause", "type": "timer", "duration": "PT2S"},
                {"id": "done", "type": "end"},
            ],
            "routes": [{"from": "pause", "to": "done"}],
        },
    )
    started = time.monotonic()
    two_seconds = start(globex, name)

    # Then it fires on time
    wait_for_status(globex, two_seconds["id"], "completed", timeout=2 + TIMER_SLACK + 5)
    elapsed = time.monotonic() - started
    assert 2.0 <= elapsed <= 2 + TIMER_SLACK, f"the 2 s timer fired after {elapsed:.2f} s"

    # and the recursion stops at the depth limit, failing from the leaf to the root
    failed_root = wait_for_status(acme, root["id"], "failed", timeout=60)
    assert "sub-workflow depth limit exceeded" in failed_root["error"]["message"]
    instances = tree(acme, correlation)
    assert len(instances) == MAX_SUB_WORKFLOW_DEPTH + 1
    assert {i["status"] for i in instances} == {"failed"}

    # and the unreadable row is set aside, shown on its bookmark and counted in /health
    view = wait_for(
        lambda: (v := instance(acme, legacy["id"]))["bookmarks"][0].get("timer_error") and v,
        what="the unreadable timer to be set aside",
    )
    assert "outside the supported range" in view["bookmarks"][0]["timer_error"]
    health = timer_worker(acme)
    assert health["timers"] == {"status": "up", "set_aside": 1}
    assert health["timer-worker"]["consecutive_failures"] == 0

    # When an operator resumes it by hand (the documented retry), it continues
    resumed = acme.post(f"/v1/instances/{legacy['id']}/bookmarks/{legacy_bookmark}/resume", json={})
    assert resumed.status_code == 200, resumed.text
    assert instance(acme, legacy["id"])["status"] == "completed"
    assert timer_worker(acme)["timers"]["set_aside"] == 0


def test_cancelling_the_root_of_a_deep_recursion_cancels_the_whole_tree(
    acme: httpx.Client,
) -> None:
    # Given a recursion more than 20 levels deep (cancel was a 500 past 20)
    correlation = unique("deep")
    root = start(acme, recursive_pair(acme, "PT0.1S"), correlation_id=correlation)
    wait_for(lambda: len(tree(acme, correlation)) > 22, timeout=60, what="22 levels")

    # When the root is cancelled
    response = acme.post(f"/v1/instances/{root['id']}/cancel", json={"reason": "runaway"})

    # Then it answers 200 and every instance of the tree is cancelled, the worker unharmed
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    instances = tree(acme, correlation)
    assert {i["status"] for i in instances} == {"cancelled"}, instances
    assert timer_worker(acme)["timer-worker"]["consecutive_failures"] == 0
