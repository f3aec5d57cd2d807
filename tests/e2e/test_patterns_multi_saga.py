"""Over HTTP: multi-instance approvals with a completion condition (WCP-14 with an early
completion), a parallel for_each over the batch limit run by the real task worker, a saga
whose failing step compensates the earlier ones (observed at a local HTTP sink), and task
withdrawal (`POST /v1/tasks/{id}/cancel`)."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import (
    Server,
    Target,
    is_problem,
    open_tasks,
    publish,
    start,
    unique,
    wait_for,
    wait_for_status,
)
from tests.e2e.flow_support import history, history_types

pytestmark = pytest.mark.e2e


def test_for_each_approvals_complete_once_two_approve(acme: httpx.Client) -> None:
    name = unique("reviews")
    publish(
        acme,
        {
            "name": name,
            "nodes": [
                {
                    "id": "review",
                    "type": "approval",
                    "approver_role": "reviewer",
                    "assignee": "{{ reviewer }}",
                    "result_var": "reviews",
                    "for_each": {
                        "items": "input.reviewers",
                        "as": "reviewer",
                        "completion": "approvals >= 2",
                    },
                },
                {"id": "done", "type": "end", "output": {"reviews": "vars.reviews"}},
            ],
            "routes": [{"from": "review", "to": "done"}],
        },
    )
    view = start(acme, name, input={"reviewers": ["ann", "bob", "cy"]})
    tasks = wait_for(
        lambda: len(open_tasks(acme, view["id"])) == 3 and open_tasks(acme, view["id"])
    )
    by_assignee = {t["assignee"]: t for t in tasks}
    assert set(by_assignee) == {"ann", "bob", "cy"}

    for who in ("ann", "cy"):
        response = acme.post(
            f"/v1/tasks/{by_assignee[who]['id']}/complete", json={"outcome": "approved"}
        )
        assert response.status_code == 200, response.text

    done = wait_for_status(acme, view["id"], "completed")
    outcomes = [r and r["outcome"] for r in done["output"]["reviews"]]
    assert outcomes == ["approved", None, "approved"]  # in item order; bob's was cancelled
    assert open_tasks(acme, view["id"]) == []
    late = acme.post(f"/v1/tasks/{by_assignee['bob']['id']}/complete", json={"outcome": "approved"})
    is_problem(late, 409, "bookmark-not-open")
    types = history_types(acme, view["id"])
    assert types.count("ForEachItemCompleted") == 2
    assert "ForEachStarted" in types and "ForEachCompleted" in types


def test_parallel_for_each_beyond_one_batch_runs_to_completion(acme: httpx.Client) -> None:
    name = unique("fanout")
    count = 201  # WAYMARK_FOR_EACH_BATCH_SIZE is 50: five commands start the items
    publish(
        acme,
        {
            "name": name,
            "nodes": [
                {
                    "id": "each",
                    "type": "service_task",
                    "result_var": "out",
                    "action": {"type": "noop", "n": "{{ item }}", "i": "{{ index }}"},
                    "for_each": {"items": "input.numbers"},
                },
                {"id": "done", "type": "end", "output": {"out": "vars.out"}},
            ],
            "routes": [{"from": "each", "to": "done"}],
        },
    )
    view = start(acme, name, input={"numbers": list(range(count))})
    done = wait_for_status(acme, view["id"], "completed", "failed", timeout=120)
    assert done["status"] == "completed", done.get("error")
    results = done["output"]["out"]
    assert len(results) == count
    assert [int(r["i"]) for r in results] == list(range(count))
    items = history(acme, view["id"])
    batches = [
        e
        for e in items
        if e["type"] == "ActivityScheduled"
        and e["data"]["activity"].get("purpose") == "for_each_batch"
    ]
    assert len(batches) == 4


def test_a_failing_step_compensates_the_earlier_steps_newest_first(
    acme: httpx.Client, target: Target
) -> None:
    trip = unique("trip")
    base = f"{target.base_url}/{trip}"
    target.fail(f"/{trip}/charge", 500)
    target.reply(f"/{trip}/hotel", {"ref": "H-1"})
    target.reply(f"/{trip}/flight", {"ref": "F-1"})

    def step(node_id: str, path: str) -> dict:
        return {
            "id": node_id,
            "type": "service_task",
            "retry": {"max_attempts": 1},
            "action": {"type": "http", "method": "POST", "url": f"{base}/{path}"},
            "compensation": {
                "type": "http",
                "method": "POST",
                "url": f"{base}/undo/{path}",
                "body": {"ref": "{{ result.body.ref }}"},
            },
        }

    name = unique("saga")
    publish(
        acme,
        {
            "name": name,
            "nodes": [
                step("hotel", "hotel"),
                step("flight", "flight"),
                step("charge", "charge"),
                {"id": "done", "type": "end"},
                {"id": "undo", "type": "compensate"},
                {"id": "rolled_back", "type": "end", "status": "failed", "error": "rolled back"},
            ],
            "routes": [
                {"from": "hotel", "to": "flight"},
                {"from": "flight", "to": "charge"},
                {"from": "charge", "to": "done"},
                {"from": "charge", "to": "undo", "outcome": "error"},
                {"from": "undo", "to": "rolled_back"},
            ],
        },
    )
    view = start(acme, name)
    ended = wait_for_status(acme, view["id"], "failed", "completed", timeout=30)
    assert ended["status"] == "failed" and ended["error"]["message"] == "rolled back"
    undone = target.received(f"/{trip}/undo/")
    assert [r.path for r in undone] == [f"/{trip}/undo/flight", f"/{trip}/undo/hotel"]
    assert [r.json() for r in undone] == [{"ref": "F-1"}, {"ref": "H-1"}]
    keys = [r.headers["idempotency-key"] for r in undone]
    assert keys == [
        f"{view['id']}:compensate:flight:2",
        f"{view['id']}:compensate:hotel:1",
    ]
    assert target.received(f"/{trip}/undo/charge") == []  # the failed step is not undone
    types = history_types(acme, view["id"])
    assert types.count("StepCompensated") == 2 and "CompensationCompleted" in types


def test_withdrawing_a_task(acme: httpx.Client, server: Server) -> None:
    name = unique("withdraw")
    publish(
        acme,
        {
            "name": name,
            "nodes": [
                {"id": "fill", "type": "user_task", "role": "clerk"},
                {"id": "done", "type": "end"},
                {"id": "withdrawn", "type": "end", "output": {"withdrawn": "true"}},
            ],
            "routes": [
                {"from": "fill", "to": "done"},
                {"from": "fill", "to": "withdrawn", "outcome": "cancelled"},
            ],
        },
    )
    view = start(acme, name)
    [task] = open_tasks(acme, view["id"])

    with server.client("k-acme-viewer") as viewer:
        is_problem(viewer.post(f"/v1/tasks/{task['id']}/cancel"), 403, "forbidden")

    response = acme.post(f"/v1/tasks/{task['id']}/cancel", json={"reason": "duplicate"})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed"
    assert response.json()["output"] == {"withdrawn": True}

    again = acme.post(f"/v1/tasks/{task['id']}/cancel")
    is_problem(again, 409, "bookmark-not-open")
    is_problem(acme.post(f"/v1/tasks/{unique('nope')}/cancel"), 404, "not-found")
    assert "BookmarkCancelled" in history_types(acme, view["id"])
