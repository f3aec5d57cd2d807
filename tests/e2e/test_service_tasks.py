"""Service tasks against a failing endpoint: retries per the node's policy, then the
instance fails — or follows the node's `error` route (SPEC §2, §3)."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import Target, publish, start, unique, wait_for, wait_for_status

pytestmark = pytest.mark.e2e

RETRY = {"max_attempts": 3, "initial_interval": "PT0.1S", "backoff": 1.0}


def calling(name: str, url: str, *, error_route: bool = False) -> dict:
    nodes = [
        {
            "id": "call",
            "type": "service_task",
            "retry": RETRY,
            "timeout": "PT5S",
            "result_var": "response",
            "action": {
                "type": "http",
                "method": "POST",
                "url": url,
                "body": {"order": "{{ input.order }}"},
            },
        },
        {"id": "done", "type": "end"},
    ]
    routes = [{"from": "call", "to": "done"}]
    if error_route:
        nodes += [
            {"id": "apologise", "type": "set", "variables": {"apologised": "true"}},
            {"id": "handled", "type": "end", "output": {"apologised": "vars.apologised"}},
        ]
        routes += [
            {"from": "call", "to": "apologise", "outcome": "error"},
            {"from": "apologise", "to": "handled"},
        ]
    return {"name": name, "nodes": nodes, "routes": routes}


def test_a_failing_call_is_retried_then_fails_the_instance(
    acme: httpx.Client, target: Target
) -> None:
    # Given an endpoint that always answers 500
    path = "/" + unique("flaky")
    target.fail(path, 500)
    name = unique("caller")
    publish(acme, calling(name, target.base_url + path))

    # When an instance runs the call
    view = start(acme, name, input={"order": "A-1"})
    assert view["status"] in ("running", "suspended")

    # Then it is tried max_attempts times, and the instance fails with the error recorded
    failed = wait_for_status(acme, view["id"], "failed", "completed")
    assert failed["status"] == "failed"
    calls = target.received(path)
    assert len(calls) == 3
    assert all(c.json() == {"order": "A-1"} for c in calls)
    assert failed["error"]["node_id"] == "call"
    assert "3 attempt" in failed["error"]["message"]
    assert len({c.headers.get("idempotency-key") for c in calls}) == 3


def test_a_failing_call_can_take_the_error_route(acme: httpx.Client, target: Target) -> None:
    path = "/" + unique("down")
    target.fail(path, 500)
    name = unique("caller")
    publish(acme, calling(name, target.base_url + path, error_route=True))

    view = start(acme, name, input={"order": "B-2"})

    done = wait_for_status(acme, view["id"], "completed", "failed")
    assert done["status"] == "completed", done
    assert done["output"] == {"apologised": True}
    assert len(target.received(path)) == 3


def test_a_successful_call_continues_the_instance(acme: httpx.Client, target: Target) -> None:
    path = "/" + unique("fine")
    name = unique("caller")
    publish(acme, calling(name, target.base_url + path))

    view = start(acme, name, input={"order": "C-3"})

    wait_for_status(acme, view["id"], "completed")
    [call] = wait_for(lambda: target.received(path), what="the call")
    assert call.headers["idempotency-key"] == f"{view['id']}:call:1"


def test_health_shows_the_circuit_breaker_of_each_called_target(
    acme: httpx.Client, anonymous: httpx.Client, target: Target
) -> None:
    # Given the in-process task worker called the target (failing, here)
    path = "/" + unique("watched")
    target.fail(path, 500)
    name = unique("caller")
    publish(acme, calling(name, target.base_url + path))
    wait_for_status(acme, start(acme, name, input={"order": "C-3"})["id"], "failed")

    # Then /health lists that target's breaker (closed: the e2e servers' rule never opens)
    port = target.base_url.rsplit(":", 1)[1]
    breakers = anonymous.get("/health").json()["components"]["breakers"]
    assert breakers["status"] == "up"
    state = breakers["targets"][f"host:127.0.0.1:{port}"]
    assert state["state"] == "closed" and state["failures"] >= 3
