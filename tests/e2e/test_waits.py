"""`wait` nodes resumed three ways — by bookmark id, by signed callback, by event — and the
guarantees around them: consumed bookmarks give 409, repeated deliveries replay (SPEC §3)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.conftest import (
    TENANT_SECRETS,
    Server,
    instance,
    is_problem,
    open_bookmark,
    post_signed,
    publish,
    start,
    unique,
    wait_for_status,
)

pytestmark = pytest.mark.e2e

EVENT = "payment.received"


@pytest.fixture(scope="module")
def definition(server: Server) -> str:
    """wait for the payment -> wait for the shipment -> end with what both said."""
    name = unique("two-waits")
    with server.client("k-acme") as acme:
        publish(
            acme,
            {
                "name": name,
                "nodes": [
                    {
                        "id": "payment",
                        "type": "wait",
                        "event": EVENT,
                        "correlation": "input.order_id",
                        "result_var": "paid",
                    },
                    {"id": "shipment", "type": "wait", "result_var": "shipped"},
                    {
                        "id": "done",
                        "type": "end",
                        "output": {"amount": "vars.paid.amount", "carrier": "vars.shipped.carrier"},
                    },
                ],
                "routes": [
                    {"from": "payment", "to": "shipment"},
                    {"from": "shipment", "to": "done"},
                ],
            },
        )
    return name


def resume(client: httpx.Client, view: dict, node_id: str, **body: object) -> httpx.Response:
    bookmark = open_bookmark(view, node_id)
    return client.post(f"/v1/instances/{view['id']}/bookmarks/{bookmark['id']}/resume", json=body)


def signed_post(
    client: httpx.Client,
    token: str,
    payload: object,
    *,
    secret: str = TENANT_SECRETS["acme"],
    at: int | None = None,
    key: str | None = None,
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return post_signed(
        client, f"/v1/callbacks/{token}", payload, secret=secret, at=at, headers=headers
    )


def test_resume_by_bookmark_id(acme: httpx.Client, definition: str) -> None:
    view = start(acme, definition, input={"order_id": unique("order")})
    payment = open_bookmark(view, "payment")

    first = resume(acme, view, "payment", payload={"amount": 12})
    assert first.status_code == 200, first.text
    assert first.json()["bookmark_id"] == payment["id"]
    assert "idempotent-replayed" not in first.headers

    # The consumed bookmark answers 409 with its state
    again = acme.post(
        f"/v1/instances/{view['id']}/bookmarks/{payment['id']}/resume", json={"payload": {}}
    )
    assert is_problem(again, 409, "bookmark-not-open")["bookmark"]["status"] == "consumed"

    done = resume(acme, instance(acme, view["id"]), "shipment", payload={"carrier": "DHL"})
    assert done.json()["status"] == "completed"
    assert instance(acme, view["id"])["output"] == {"amount": 12, "carrier": "DHL"}
    missing = acme.post(f"/v1/instances/{view['id']}/bookmarks/nope/resume", json={})
    is_problem(missing, 404, "not-found")


def test_repeated_delivery_with_the_same_key_replays(acme: httpx.Client, definition: str) -> None:
    view = start(acme, definition, input={"order_id": unique("order")})
    key = unique("resume")

    first = resume(acme, view, "payment", payload={"amount": 1}, idempotency_key=key)
    replay = acme.post(
        f"/v1/instances/{view['id']}/bookmarks/{open_bookmark(view, 'payment')['id']}/resume",
        json={"payload": {"amount": 999}, "idempotency_key": key},
    )

    assert first.status_code == replay.status_code == 200
    assert replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert instance(acme, view["id"])["variables"]["paid"] == {"amount": 1}


def test_resume_by_signed_callback(
    acme: httpx.Client, anonymous: httpx.Client, definition: str
) -> None:
    view = start(acme, definition, input={"order_id": unique("order")})
    token = open_bookmark(view, "payment")["token"]
    assert token

    # Wrong secret, stale timestamp, no signature: 401 and nothing changes
    forged = signed_post(anonymous, token, {"amount": 5}, secret="guess")
    is_problem(forged, 401, "invalid-signature")
    stale = signed_post(anonymous, token, {"amount": 5}, at=int(time.time()) - 600)
    is_problem(stale, 401, "invalid-signature")
    unsigned = anonymous.post(f"/v1/callbacks/{token}", json={"amount": 5})
    is_problem(unsigned, 401, "invalid-signature")
    # the other tenant's secret does not sign acme's callbacks
    other = signed_post(anonymous, token, {"amount": 5}, secret=TENANT_SECRETS["globex"])
    is_problem(other, 401, "invalid-signature")
    unchanged = instance(acme, view["id"])
    assert unchanged["status"] == "suspended"
    assert open_bookmark(unchanged, "payment")["token"] == token

    # A valid callback resumes; its repeat (same Idempotency-Key) replays the answer
    key = unique("delivery")
    ok = signed_post(anonymous, token, {"amount": 5}, key=key)
    assert ok.status_code == 200, ok.text
    repeat = signed_post(anonymous, token, {"amount": 5}, key=key)
    assert repeat.status_code == 200 and repeat.json() == ok.json()
    assert repeat.headers["idempotent-replayed"] == "true"
    assert instance(acme, view["id"])["variables"]["paid"] == {"amount": 5}

    # Without the key, a second delivery finds the bookmark consumed
    is_problem(signed_post(anonymous, token, {"amount": 5}), 409, "bookmark-not-open")
    # An unknown token is refused like a forged signature: tokens cannot be probed
    is_problem(signed_post(anonymous, "no-such-token", {}), 401, "invalid-signature")


def test_resume_by_event(acme: httpx.Client, definition: str) -> None:
    order_id = unique("order")
    view = start(acme, definition, input={"order_id": order_id})
    bystander = start(acme, definition, input={"order_id": unique("order")})

    response = acme.post(
        "/v1/events",
        json={
            "type": EVENT,
            "correlation": order_id,
            "payload": {"amount": 7},
            "idempotency_key": unique("event"),
        },
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == EVENT and body["started"] == []
    assert [r["instance_id"] for r in body["resumed"]] == [view["id"]]
    assert instance(acme, view["id"])["variables"]["paid"] == {"amount": 7}
    assert open_bookmark(instance(acme, bystander["id"]), "payment")
    nothing = acme.post("/v1/events", json={"type": EVENT, "correlation": order_id})
    assert nothing.json()["resumed"] == []
    is_problem(acme.post("/v1/events", json={"correlation": "x"}), 422, "invalid-request")


def test_an_event_starts_the_definitions_it_triggers(acme: httpx.Client) -> None:
    event, name = unique("order.placed"), unique("on-order")
    publish(
        acme,
        {
            "name": name,
            "nodes": [{"id": "done", "type": "end", "output": {"order": "input.order"}}],
            "triggers": [{"type": "event", "event": event}],
        },
    )
    body = {"type": event, "payload": {"order": 42}, "idempotency_key": unique("event")}

    first = acme.post("/v1/events", json=body)
    replay = acme.post("/v1/events", json=body)

    assert first.status_code == 200, first.text
    [started] = first.json()["started"]
    assert replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    view = instance(acme, started)
    assert (view["definition"], view["status"]) == (name, "completed")
    assert view["output"] == {"order": 42}


def test_timer_and_wait_timeout_fire_without_anyone_acting(acme: httpx.Client) -> None:
    # Given a flow that pauses 0.3 s, then waits at most 0.3 s for an event that never comes
    name = unique("timers")
    publish(
        acme,
        {
            "name": name,
            "nodes": [
                {"id": "pause", "type": "timer", "duration": "PT0.3S"},
                {"id": "wait", "type": "wait", "event": unique("never"), "timeout": "PT0.3S"},
                {"id": "late", "type": "end", "output": {"timed_out": "true"}},
                {"id": "done", "type": "end"},
            ],
            "routes": [
                {"from": "pause", "to": "wait"},
                {"from": "wait", "to": "done"},
                {"from": "wait", "to": "late", "outcome": "timeout"},
            ],
        },
    )
    # When it starts, it is suspended on a timer bookmark with its due time
    view = start(acme, name)
    assert open_bookmark(view, "pause")["due_at"]
    # Then the in-process timer worker fires both without any request
    done = wait_for_status(acme, view["id"], "completed", timeout=15)
    assert done["output"] == {"timed_out": True}
