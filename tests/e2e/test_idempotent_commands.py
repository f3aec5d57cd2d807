"""Cancel and task completion with an idempotency key (body field or `Idempotency-Key`
header), like start and resume: a repeat answers with the first result (200,
`Idempotent-Replayed: true`) instead of the 409 a second attempt would get; the same key for
another target is 422 `idempotency-key-reused`."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import instance, is_problem, open_tasks, publish, start, unique
from tests.e2e.flow_support import approving, history_types, waiting

pytestmark = pytest.mark.e2e


def test_a_repeated_cancel_with_its_key_replays_the_first_result(acme: httpx.Client) -> None:
    # Given a waiting instance, cancelled once with a key in the body
    name = unique("held")
    publish(acme, waiting(name))
    view = start(acme, name)
    key = unique("cancel")
    url = f"/v1/instances/{view['id']}/cancel"
    first = acme.post(url, json={"reason": "not needed", "idempotency_key": key})
    assert first.status_code == 200, first.text
    assert "idempotent-replayed" not in first.headers

    # When the same cancel is repeated: with the key in the body, then in the header
    by_body = acme.post(url, json={"reason": "again", "idempotency_key": key})
    by_header = acme.post(url, headers={"Idempotency-Key": key})

    # Then both answer with the first result, flagged, and nothing else happened
    for replay in (by_body, by_header):
        assert replay.status_code == 200, replay.text
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == first.json()
    assert first.json()["status"] == "cancelled"
    assert instance(acme, view["id"])["error"] == first.json()["error"]
    assert history_types(acme, view["id"]).count("Cancelled") == 1
    # Negative control: without the key, a second cancel is the 409 it always was
    unkeyed = acme.post(url, json={"reason": "again"})
    assert is_problem(unkeyed, 409, "instance-not-active")["instance_status"] == "cancelled"


def test_a_cancel_key_reused_for_another_instance_is_refused(acme: httpx.Client) -> None:
    name = unique("held")
    publish(acme, waiting(name))
    one, other = start(acme, name), start(acme, name)
    key = unique("cancel")
    first = acme.post(f"/v1/instances/{one['id']}/cancel", headers={"Idempotency-Key": key})
    assert first.status_code == 200, first.text

    reused = acme.post(f"/v1/instances/{other['id']}/cancel", headers={"Idempotency-Key": key})

    is_problem(reused, 422, "idempotency-key-reused")
    assert instance(acme, other["id"])["status"] == "suspended"


def test_a_repeated_completion_with_its_key_replays_the_first_result(acme: httpx.Client) -> None:
    # Given an approval task, approved once with a key in the header
    name = unique("approve")
    publish(acme, approving(name))
    view = start(acme, name)
    (task,) = open_tasks(acme, view["id"])
    key = unique("complete")
    url = f"/v1/tasks/{task['id']}/complete"
    first = acme.post(url, json={"outcome": "approved"}, headers={"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "completed"
    assert "idempotent-replayed" not in first.headers

    # When it is repeated — even with another outcome — with the key in the header or body
    by_header = acme.post(url, json={"outcome": "rejected"}, headers={"Idempotency-Key": key})
    by_body = acme.post(url, json={"outcome": "approved", "idempotency_key": key})

    # Then the first result comes back, flagged, and the task was completed once
    for replay in (by_header, by_body):
        assert replay.status_code == 200, replay.text
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == first.json()
    assert history_types(acme, view["id"]).count("TaskCompleted") == 1
    assert instance(acme, view["id"])["variables"] == first.json()["variables"]
    # Negative control: without the key, a second completion is refused as before
    unkeyed = acme.post(url, json={"outcome": "approved"})
    is_problem(unkeyed, 409, "bookmark-not-open")


def test_a_completion_key_reused_for_another_task_is_refused(acme: httpx.Client) -> None:
    name = unique("approve")
    publish(acme, approving(name))
    one, other = start(acme, name), start(acme, name)
    (task_one,), (task_other,) = open_tasks(acme, one["id"]), open_tasks(acme, other["id"])
    key = unique("complete")
    first = acme.post(
        f"/v1/tasks/{task_one['id']}/complete", json={"outcome": "approved", "idempotency_key": key}
    )
    assert first.status_code == 200, first.text

    reused = acme.post(
        f"/v1/tasks/{task_other['id']}/complete",
        json={"outcome": "approved", "idempotency_key": key},
    )

    is_problem(reused, 422, "idempotency-key-reused")
    assert instance(acme, other["id"])["status"] == "suspended"
