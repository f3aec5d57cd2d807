"""WCP-17 (interleaved parallel routing) and WCP-18 (milestone) over HTTP against `waymark
serve` (docs/patterns.md): never two branches at once, each exactly once, in an order
decided at run time; a task refused (409) away from its milestone and withdrawn once the
milestone is passed; the publish-time refusals with their JSON paths.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    instance,
    is_problem,
    open_bookmark,
    open_tasks,
    start,
    unique,
)
from tests.e2e.flow_support import define, history, refusals
from tests.patterns_support import routes, task

pytestmark = pytest.mark.e2e


def complete(client: httpx.Client, task_id: str) -> httpx.Response:
    return client.post(f"/v1/tasks/{task_id}/complete", json={"outcome": "completed"})


def interleaved_reviews(client: httpx.Client) -> str:
    """Three reviews, one at a time, in the order the input gives; legal has two steps."""
    return define(
        client,
        [
            {"id": "fork", "type": "parallel", "interleaved": True, "order": "input.order"},
            task("legal"),
            task("legal_sign"),
            task("finance"),
            task("security"),
            {"id": "reviewed", "type": "join"},
            {"id": "done", "type": "end"},
        ],
        routes(
            "fork>legal fork>finance fork>security legal>legal_sign",
            "legal_sign>reviewed finance>reviewed security>reviewed",
            "reviewed>done",
        ),
    )


@pytest.mark.parametrize(
    ("order", "ran"),
    [
        (["security", "legal", "finance"], ["security", "legal", "legal_sign", "finance"]),
        (["finance", "security", "legal"], ["finance", "security", "legal", "legal_sign"]),
    ],
)
def test_wcp17_interleaved_parallel_routing_one_branch_at_a_time_in_run_time_order(
    acme: httpx.Client, order: list[str], ran: list[str]
) -> None:
    name = interleaved_reviews(acme)
    view = start(acme, name, input={"order": order})
    seen: list[str] = []
    while instance(acme, view["id"])["status"] != "completed":
        tasks = open_tasks(acme, view["id"])
        # never two branches at once: one open task at every step
        assert len(tasks) == 1, [t["node_id"] for t in tasks]
        seen.append(tasks[0]["node_id"])
        response = complete(acme, tasks[0]["id"])
        assert response.status_code == 200, response.text
        assert len(seen) <= 4
    assert seen == ran  # each exactly once, in the order decided when the instance ran
    events = history(acme, view["id"])
    started = [e["data"] for e in events if e["type"] == "InterleavedBranchStarted"]
    assert [len(s["started"]) for s in started] == [1, 2, 3]
    assert [e["type"] for e in events].count("JoinCompleted") == 1


def test_wcp17_a_bad_order_fails_the_instance_with_a_clear_error(acme: httpx.Client) -> None:
    view = start(acme, interleaved_reviews(acme), input={"order": ["legal", "finance"]})
    assert view["status"] == "failed"
    assert "must list each of its branches once" in view["error"]["message"]


def milestone_flow(client: httpx.Client) -> str:
    """The customer may change the order only while it waits for dispatch (the milestone):
    fork → pack (a task) → dispatch (a wait: the milestone) → shipped;
    fork → change (a task with milestone dispatch; `cancelled` when the parcel left)."""
    return define(
        client,
        [
            {"id": "fork", "type": "parallel"},
            task("pack"),
            {"id": "dispatch", "type": "wait", "event": unique("dispatched")},
            task("change", milestone="dispatch"),
            {"id": "too_late", "type": "set", "variables": {"too_late": "True"}},
            {"id": "changed", "type": "gateway"},
            {"id": "both", "type": "join"},
            {"id": "done", "type": "end", "output": {"change": "nodes.change.result"}},
        ],
        routes(
            "fork>pack fork>change pack>dispatch dispatch>both change>changed",
            "change>too_late:cancelled too_late>changed",
            {"from": "changed", "to": "both", "default": True},
            "both>done",
        ),
    )


def task_at(client: httpx.Client, instance_id: str, node_id: str) -> dict[str, Any]:
    [found] = [t for t in open_tasks(client, instance_id) if t["node_id"] == node_id]
    return found


def dispatch(client: httpx.Client, instance_id: str) -> dict[str, Any]:
    bookmark = open_bookmark(instance(client, instance_id), "dispatch")
    response = client.post(
        f"/v1/instances/{instance_id}/bookmarks/{bookmark['id']}/resume", json={"payload": {}}
    )
    assert response.status_code == 200, response.text
    return instance(client, instance_id)


def test_wcp18_a_task_is_refused_before_its_milestone_and_accepted_at_it(
    acme: httpx.Client,
) -> None:
    view = start(acme, milestone_flow(acme))
    change = task_at(acme, view["id"], "change")
    # Not at the milestone yet (the parcel is still being packed): 409, nothing changes
    body = is_problem(complete(acme, change["id"]), 409, "milestone-not-reached")
    assert (body["milestone"], body["milestone_state"], body["node_id"]) == (
        "dispatch",
        "pending",
        "change",
    )
    assert "has not been reached yet" in body["detail"]
    assert task_at(acme, view["id"], "change")["id"] == change["id"]  # still open
    # Packed: the instance sits at the milestone, the change is accepted
    assert complete(acme, task_at(acme, view["id"], "pack")["id"]).status_code == 200
    assert complete(acme, change["id"]).status_code == 200
    ended = dispatch(acme, view["id"])
    assert ended["status"] == "completed"
    assert ended["output"]["change"]["outcome"] == "completed"


def test_wcp18_passing_the_milestone_withdraws_the_task(acme: httpx.Client) -> None:
    view = start(acme, milestone_flow(acme))
    change = task_at(acme, view["id"], "change")
    assert complete(acme, task_at(acme, view["id"], "pack")["id"]).status_code == 200
    ended = dispatch(acme, view["id"])  # the parcel left: the change can never be made
    assert ended["status"] == "completed"
    assert ended["output"]["change"] == {
        "withdrawn": True,
        "milestone": "dispatch",
        "outcome": "cancelled",
    }
    assert ended["variables"] == {"too_late": True}
    assert open_tasks(acme, view["id"]) == []
    # Too late now: the task is no longer open
    is_problem(complete(acme, change["id"]), 409, "bookmark-not-open")
    reasons = [
        e["data"]["reason"] for e in history(acme, view["id"]) if e["type"] == "BookmarkCancelled"
    ]
    assert reasons == ["withdrawn: milestone dispatch was passed"]


def test_publish_refuses_broken_interleaving_and_milestones_with_json_paths(
    acme: httpx.Client,
) -> None:
    # An interleaved split whose join would go on after one branch, and an order on a
    # split that is not interleaved
    assert refusals(
        acme,
        [
            {"id": "fork", "type": "parallel", "interleaved": True},
            task("a"),
            task("b"),
            {"id": "meet", "type": "join", "wait_for": 1},
            {"id": "other", "type": "parallel", "order": "['c', 'd']"},
            task("c"),
            task("d"),
            {"id": "meet2", "type": "join"},
            {"id": "done", "type": "end"},
        ],
        routes(
            "fork>a fork>b a>meet b>meet meet>other other>c other>d c>meet2", "d>meet2 meet2>done"
        ),
    ) == [("invalid_value", "$.nodes[3].wait_for"), ("invalid_value", "$.nodes[4].order")]
    # A milestone naming no node, and one on a node that never waits
    assert refusals(
        acme,
        [
            {"id": "fork", "type": "parallel"},
            task("a", milestone="nowhere"),
            task("b", milestone="fork"),
            {"id": "meet", "type": "join"},
            {"id": "done", "type": "end"},
        ],
        routes("fork>a fork>b a>meet b>meet meet>done"),
    ) == [("unknown_node", "$.nodes[1].milestone"), ("invalid_reference", "$.nodes[2].milestone")]


def test_wcp18_an_event_resumes_a_wait_only_while_the_instance_is_at_its_milestone(
    acme: httpx.Client,
) -> None:
    event = unique("refund.requested")
    name = define(
        acme,
        [
            {"id": "fork", "type": "parallel"},
            task("deliver"),
            {"id": "returnable", "type": "wait", "event": unique("window.closed")},
            {"id": "refund", "type": "wait", "event": event, "milestone": "returnable"},
            {"id": "both", "type": "join"},
            {"id": "done", "type": "end", "output": {"refund": "nodes.refund.result"}},
        ],
        routes(
            "fork>deliver fork>refund deliver>returnable returnable>both", "refund>both both>done"
        ),
    )
    view = start(acme, name)
    # Before delivery the return window is not open: the event resumes nothing, and a
    # direct resume is a 409
    sent = acme.post("/v1/events", json={"type": event, "payload": {"n": 1}})
    assert sent.status_code == 200, sent.text
    assert sent.json()["resumed"] == []
    refund = open_bookmark(instance(acme, view["id"]), "refund")
    direct = acme.post(
        f"/v1/instances/{view['id']}/bookmarks/{refund['id']}/resume", json={"payload": {}}
    )
    is_problem(direct, 409, "milestone-not-reached")
    # Delivered: the window is open, the same event resumes the wait
    assert complete(acme, task_at(acme, view["id"], "deliver")["id"]).status_code == 200
    sent = acme.post("/v1/events", json={"type": event, "payload": {"n": 2}})
    assert [r["instance_id"] for r in sent.json()["resumed"]] == [view["id"]]
    returnable = open_bookmark(instance(acme, view["id"]), "returnable")
    closed = acme.post(
        f"/v1/instances/{view['id']}/bookmarks/{returnable['id']}/resume", json={"payload": {}}
    )
    assert closed.status_code == 200, closed.text
    ended = instance(acme, view["id"])
    assert (ended["status"], ended["output"]) == ("completed", {"refund": {"n": 2}})
