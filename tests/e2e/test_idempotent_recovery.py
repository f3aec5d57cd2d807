"""Retry, skip and modify with an idempotency key (header `Idempotency-Key` or body field),
over the real API: the same key and body again replays the first answer (200,
`Idempotent-Replayed: true`) and acts no second time; the key with another body is
422 `idempotency-key-reused` and changes nothing. Negative controls: the same request
without a key acts again (a retry) or is refused (skip, modify: 409)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Target, is_problem, publish, start, unique, wait_for, wait_for_status
from tests.e2e.flow_support import history_types
from tests.e2e.test_incidents import held

pytestmark = pytest.mark.e2e


def test_a_timed_out_retry_repeated_with_its_key_does_not_retry_twice(
    acme: httpx.Client, target: Target
) -> None:
    # Given an instance held as an incident at a call that still fails
    path, name = "/" + unique("pay"), unique("charge")
    view = held(acme, target, path, name)
    assert view["status"] == "incident", view
    url, key = f"/v1/instances/{view['id']}/retry", unique("retry")
    body = {"reason": "try once more", "variables": {"card": "new"}}

    # When it is retried with a key, and the retry fails again (two more calls) ...
    first = acme.post(url, json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers
    wait_for(lambda: len(target.received(path)) == 4, what="the retried calls")
    wait_for_status(acme, view["id"], "incident")
    # ... and the client, which never saw the answer, repeats the same request
    again = acme.post(url, json=body, headers={"Idempotency-Key": key})
    in_body = acme.post(url, json={**body, "idempotency_key": key})

    # Then both answer with the first result and nothing ran again
    for replay in (again, in_body):
        assert replay.status_code == 200, replay.text
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == first.json()
    assert history_types(acme, view["id"]).count("IncidentRetried") == 1
    assert len(target.received(path)) == 4

    # The key with another body is refused and changes nothing
    other = acme.post(url, json={"reason": "other"}, headers={"Idempotency-Key": key})
    is_problem(other, 422, "idempotency-key-reused")
    assert history_types(acme, view["id"]).count("IncidentRetried") == 1

    # Negative control: the same request without a key retries a second time
    unkeyed = acme.post(url, json=body)
    assert unkeyed.status_code == 200, unkeyed.text
    assert history_types(acme, view["id"]).count("IncidentRetried") == 2
    wait_for(lambda: len(target.received(path)) == 6, what="the unkeyed retry's calls")


def test_a_repeated_skip_with_its_key_replays_and_another_result_is_refused(
    acme: httpx.Client, target: Target
) -> None:
    path, name = "/" + unique("pay"), unique("charge")
    view = held(acme, target, path, name)
    url, key = f"/v1/instances/{view['id']}/skip", unique("skip")
    body: dict[str, Any] = {"result": {"manual": 1}, "reason": "paid by phone"}
    first = acme.post(url, json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "completed"

    replay = acme.post(url, json=body, headers={"Idempotency-Key": key})
    assert replay.status_code == 200, replay.text
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    changed = acme.post(
        url, json={**body, "result": {"manual": 2}}, headers={"Idempotency-Key": key}
    )
    is_problem(changed, 422, "idempotency-key-reused")
    assert history_types(acme, view["id"]).count("IncidentSkipped") == 1
    # Negative control: without the key the repeat is the 409 it always was
    is_problem(acme.post(url, json=body), 409, "not-recoverable")


def test_a_repeated_modification_with_its_key_replays_and_other_operations_are_refused(
    acme: httpx.Client,
) -> None:
    name = unique("modify")
    publish(
        acme,
        {
            "name": name,
            "nodes": [
                {"id": "review", "type": "approval", "approver_role": "manager"},
                {"id": "audit", "type": "set", "variables": {"audited": "true"}},
                {"id": "done", "type": "end"},
            ],
            "routes": [{"from": "review", "to": "audit"}, {"from": "audit", "to": "done"}],
        },
    )
    started = start(acme, name)["id"]
    url, key = f"/v1/instances/{started}/modify", unique("modify")
    body = {"operations": [{"cancel": "review"}, {"start_before": "audit"}], "reason": "leave"}
    first = acme.post(url, json={**body, "idempotency_key": key})
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "completed"

    replay = acme.post(url, json=body, headers={"Idempotency-Key": key})
    assert replay.status_code == 200, replay.text
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    other = acme.post(
        url, json={"operations": [{"cancel": "review"}]}, headers={"Idempotency-Key": key}
    )
    is_problem(other, 422, "idempotency-key-reused")
    assert history_types(acme, started).count("InstanceModified") == 1
    # Negative control: without the key the repeat is refused (the instance has ended)
    is_problem(acme.post(url, json=body), 409, "instance-not-active")
