"""`for_each` over HTTP against a real `waymark serve` (WAYMARK_FOR_EACH_MAX_ITEMS=5 here):
a start, a task completion or an event that reaches a for_each over the bound answers
`422 for-each-too-large` naming the node and the JSON path, with nothing stored; the same
list reached by a timer (asynchronously) fails the node with a clear error. Boundary events
on a for_each node: an interrupting timer withdraws every item's task and follows `to`; a
non-interrupting event starts `to` for each delivery and leaves the items open."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    Server,
    instance,
    is_problem,
    open_tasks,
    publish,
    server_env,
    serving,
    start,
    unique,
    wait_for,
    wait_for_status,
)
from tests.e2e.flow_support import history_types

pytestmark = pytest.mark.e2e

LIMIT = 5


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("waymark-for-each")
    env = server_env(module_database_url, workdir, WAYMARK_FOR_EACH_MAX_ITEMS=str(LIMIT))
    with serving(env, workdir) as running:
        yield running


def each(items: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": "each",
        "type": "approval",
        "approver_role": "reviewer",
        "assignee": "{{ item }}",
        "result_var": "reviews",
        "for_each": {"items": items},
        **fields,
    }


def instances_of(client: httpx.Client, name: str) -> list[dict[str, Any]]:
    response = client.get("/v1/instances", params={"definition": name})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def open_items(client: httpx.Client, instance_id: str, count: int) -> list[dict[str, Any]]:
    """The instance's open tasks once there are `count` of them."""

    def probe() -> list[dict[str, Any]] | None:
        tasks = open_tasks(client, instance_id)
        return tasks if len(tasks) == count else None

    found: list[dict[str, Any]] = wait_for(probe)
    return found


def assert_too_large(response: httpx.Response, path: str, items: int) -> None:
    body = is_problem(response, 422, "for-each-too-large")
    assert (body["node_id"], body["items"], body["limit"]) == ("each", items, LIMIT)
    assert [(e["path"], e["code"]) for e in body["errors"]] == [(path, "too_many_items")]
    assert "WAYMARK_FOR_EACH_MAX_ITEMS" in body["detail"]


def test_a_start_over_the_bound_is_refused_and_stores_nothing(acme: httpx.Client) -> None:
    name = unique("each-start")
    publish(
        acme,
        {
            "name": name,
            "nodes": [each("input.people"), {"id": "done", "type": "end"}],
            "routes": [{"from": "each", "to": "done"}],
        },
    )
    people = [f"p{i}" for i in range(LIMIT + 1)]
    refused = acme.post("/v1/instances", json={"definition": name, "input": {"people": people}})
    assert_too_large(refused, "$.nodes[0].for_each.items", LIMIT + 1)
    assert instances_of(acme, name) == []
    # Negative control: at the bound the same start runs, one task per item.
    view = start(acme, name, input={"people": people[:LIMIT]})
    assert len(wait_for(lambda: open_tasks(acme, view["id"]) or None)) == LIMIT


def test_a_task_completion_and_an_event_over_the_bound_are_refused(acme: httpx.Client) -> None:
    name = unique("each-later")
    publish(
        acme,
        {
            "name": name,
            "nodes": [
                {"id": "ask", "type": "user_task", "role": "clerk", "result_var": "asked"},
                {"id": "arrive", "type": "wait", "event": f"{name}.people",
                 "correlation": "input.key", "result_var": "got"},
                each("vars.got.people"),
                {"id": "done", "type": "end"},
            ],
            "routes": [
                {"from": "ask", "to": "arrive"},
                {"from": "arrive", "to": "each"},
                {"from": "each", "to": "done"},
            ],
        },
    )  # fmt: skip
    view = start(acme, name, input={"key": "k1"})
    (task,) = wait_for(lambda: open_tasks(acme, view["id"]) or None)
    done = acme.post(f"/v1/tasks/{task['id']}/complete", json={"data": {}})
    assert done.status_code == 200, done.text
    version = instance(acme, view["id"])["version"]
    many = {"people": [f"p{i}" for i in range(LIMIT + 2)]}
    event = {"type": f"{name}.people", "correlation": "k1", "payload": many}
    assert_too_large(acme.post("/v1/events", json=event), "$.nodes[2].for_each.items", LIMIT + 2)
    current = instance(acme, view["id"])
    assert current["version"] == version  # nothing of the refused delivery was stored
    assert any(b["node_id"] == "arrive" for b in current["bookmarks"])
    fits = {**event, "payload": {"people": ["a", "b"]}}
    assert acme.post("/v1/events", json=fits).status_code == 200
    assert len(wait_for(lambda: open_tasks(acme, view["id"]) or None)) == 2


def test_a_timer_reaching_an_oversized_for_each_fails_the_node_clearly(acme: httpx.Client) -> None:
    name = unique("each-timer")
    publish(
        acme,
        {
            "name": name,
            "nodes": [
                {"id": "pause", "type": "timer", "duration": "PT0.3S"},
                each("input.people"),
                {"id": "done", "type": "end"},
            ],
            "routes": [{"from": "pause", "to": "each"}, {"from": "each", "to": "done"}],
        },
    )
    people = [f"p{i}" for i in range(LIMIT + 1)]
    view = start(acme, name, input={"people": people})  # accepted: it waits at the timer
    failed = wait_for_status(acme, view["id"], "failed", timeout=30)
    assert failed["error"]["node_id"] == "each"
    assert f"{LIMIT + 1} items, more than the limit of {LIMIT}" in failed["error"]["message"]


def test_an_interrupting_timer_withdraws_every_item_task(acme: httpx.Client) -> None:
    name = unique("each-timeout")
    publish(
        acme,
        {
            "name": name,
            "nodes": [
                each("input.people", boundary=[{"timer": "PT1S", "to": "late"}]),
                {"id": "done", "type": "end"},
                {"id": "late", "type": "set", "variables": {"late": "true"}},
                {"id": "closed", "type": "end"},
            ],
            "routes": [{"from": "each", "to": "done"}, {"from": "late", "to": "closed"}],
        },
    )
    view = start(acme, name, input={"people": ["ann", "bob", "cy"]})
    tasks = open_items(acme, view["id"], 3)
    first = acme.post(f"/v1/tasks/{tasks[0]['id']}/complete", json={"outcome": "approved"})
    assert first.status_code == 200, first.text
    done = wait_for_status(acme, view["id"], "completed", timeout=30)
    assert done["variables"]["late"] is True
    assert open_tasks(acme, view["id"]) == []
    late = acme.post(f"/v1/tasks/{tasks[1]['id']}/complete", json={"outcome": "approved"})
    is_problem(late, 409, "bookmark-not-open")
    types = history_types(acme, view["id"])
    assert types.index("BoundaryFired") < types.index("ForEachCompleted")


def test_a_non_interrupting_event_runs_alongside_the_open_items(acme: httpx.Client) -> None:
    name = unique("each-nudge")
    nudge = {"event": f"{name}.nudge", "correlation": "input.key", "interrupting": False,
             "to": "nudged"}  # fmt: skip
    publish(
        acme,
        {
            "name": name,
            "nodes": [
                each("input.people", boundary=[nudge]),
                {"id": "done", "type": "end", "output": {"reviews": "vars.reviews"}},
                {"id": "nudged", "type": "set", "variables": {"nudged": "true"}},
                {"id": "branch_end", "type": "end", "terminate": False},
            ],
            "routes": [{"from": "each", "to": "done"}, {"from": "nudged", "to": "branch_end"}],
        },
    )
    view = start(acme, name, input={"people": ["ann", "bob"], "key": "k9"})
    tasks = open_items(acme, view["id"], 2)
    for _ in range(2):
        sent = acme.post("/v1/events", json={"type": f"{name}.nudge", "correlation": "k9"})
        assert len(sent.json()["resumed"]) == 1, sent.text
        assert sorted(t["id"] for t in open_tasks(acme, view["id"])) == sorted(
            t["id"] for t in tasks
        )
    assert instance(acme, view["id"])["variables"]["nudged"] is True
    for task in tasks:
        response = acme.post(f"/v1/tasks/{task['id']}/complete", json={"outcome": "approved"})
        assert response.status_code == 200, response.text
    done = wait_for_status(acme, view["id"], "completed")
    assert [r["outcome"] for r in done["output"]["reviews"]] == ["approved", "approved"]
    assert history_types(acme, view["id"]).count("BoundaryFired") == 2
    gone = acme.post("/v1/events", json={"type": f"{name}.nudge", "correlation": "k9"})
    assert gone.json()["resumed"] == []  # the run's end closed its boundary
