"""The other node types over HTTP: parallel/join and set, sub_workflow (success, failure,
error route), user_task forms, and an end node with status failed."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import instance, is_problem, open_tasks, publish, start, unique
from tests.e2e.flow_support import define
from tests.patterns_support import routes

pytestmark = pytest.mark.e2e


def test_parallel_branches_join_and_set_variables(acme: httpx.Client) -> None:
    name = define(
        acme,
        [
            {"id": "fork", "type": "parallel"},
            {"id": "left", "type": "set", "variables": {"a": "input.x + 1"}},
            {"id": "right", "type": "set", "variables": {"b": "input.x * 10"}},
            {"id": "meet", "type": "join"},
            {"id": "done", "type": "end", "output": {"sum": "vars.a + vars.b"}},
        ],
        routes("fork>left fork>right left>meet right>meet meet>done"),
        prefix="fork-join",
    )

    view = start(acme, name, input={"x": 2})

    assert view["status"] == "completed"
    assert view["output"] == {"sum": 23}
    assert view["variables"]["a"] == 3 and view["variables"]["b"] == 20


def child_definition(name: str, *, fail: bool = False) -> dict:
    end = {"id": "done", "type": "end", "output": {"doubled": "vars.doubled"}}
    if fail:
        end = {"id": "done", "type": "end", "status": "failed", "error": "child gave up"}
    return {
        "name": name,
        "nodes": [{"id": "double", "type": "set", "variables": {"doubled": "input.n * 2"}}, end],
        "routes": routes("double>done"),
    }


def parent_definition(name: str, child: str, *, error_route: bool = False) -> dict:
    nodes = [
        {
            "id": "call",
            "type": "sub_workflow",
            "definition": child,
            "input": {"n": "input.n"},
            "result_var": "child",
        },
        {"id": "done", "type": "end", "output": {"got": "vars.child.doubled"}},
    ]
    links = routes("call>done")
    if error_route:
        nodes.append({"id": "recover", "type": "set", "variables": {"recovered": "true"}})
        nodes.append({"id": "fallback", "type": "end", "output": {"recovered": "vars.recovered"}})
        links += routes("call>recover:error recover>fallback")
    return {"name": name, "nodes": nodes, "routes": links}


def test_sub_workflow_hands_its_output_to_the_parent(acme: httpx.Client) -> None:
    child, parent = unique("child"), unique("parent")
    publish(acme, child_definition(child))
    publish(acme, parent_definition(parent, child))

    view = start(acme, parent, input={"n": 21})

    assert view["status"] == "completed", view
    assert view["output"] == {"got": 42}
    children = acme.get("/v1/instances", params={"definition": child}).json()["items"]
    assert [c["status"] for c in children] == ["completed"]


def test_a_failed_child_fails_the_parent(acme: httpx.Client) -> None:
    child, parent = unique("child"), unique("parent")
    publish(acme, child_definition(child, fail=True))
    publish(acme, parent_definition(parent, child))

    view = start(acme, parent, input={"n": 1})

    assert view["status"] == "failed", view
    assert "child gave up" in view["error"]["message"]


def test_a_failed_child_follows_the_parents_error_route(acme: httpx.Client) -> None:
    child, parent = unique("child"), unique("parent")
    publish(acme, child_definition(child, fail=True))
    publish(acme, parent_definition(parent, child, error_route=True))

    view = start(acme, parent, input={"n": 1})

    assert view["status"] == "completed", view
    assert view["output"] == {"recovered": True}


def test_user_task_form_data_is_validated(acme: httpx.Client) -> None:
    name = define(
        acme,
        [
            {
                "id": "profile",
                "type": "user_task",
                "role": "hr",
                "result_var": "profile",
                "form": {
                    "type": "object",
                    "required": ["full_name"],
                    "properties": {"full_name": {"type": "string"}, "age": {"type": "integer"}},
                },
            },
            {"id": "done", "type": "end", "output": {"who": "vars.profile.data.full_name"}},
        ],
        routes("profile>done"),
        prefix="onboarding",
    )
    view = start(acme, name)
    [task] = open_tasks(acme, view["id"])
    assert task["kind"] == "user_task" and task["form"]["required"] == ["full_name"]

    # Bad data: 422 with every violation, and the task stays open
    bad = acme.post(f"/v1/tasks/{task['id']}/complete", json={"data": {"age": "old"}})
    errors = is_problem(bad, 422, "invalid-data")["errors"]
    assert {e["path"] for e in errors} == {"$", "$.age"}
    assert acme.get(f"/v1/tasks/{task['id']}").json()["status"] == "open"
    assert instance(acme, view["id"])["status"] == "suspended"

    # Good data completes the task and the instance
    good = acme.post(
        f"/v1/tasks/{task['id']}/complete",
        json={"data": {"full_name": "Ada Lovelace", "age": 36}, "comment": "welcome"},
    )
    assert good.status_code == 200, good.text
    assert good.json()["status"] == "completed"
    assert good.json()["output"] == {"who": "Ada Lovelace"}
    assert acme.get(f"/v1/tasks/{task['id']}").json()["status"] == "completed"


def test_an_end_node_can_fail_the_instance(acme: httpx.Client) -> None:
    name = define(
        acme,
        [
            {"id": "note", "type": "set", "variables": {"reason": "'quota exceeded'"}},
            {"id": "stop", "type": "end", "status": "failed", "error": "quota exceeded"},
        ],
        routes("note>stop"),
        prefix="doomed",
    )

    view = start(acme, name)

    assert view["status"] == "failed"
    assert view["error"]["message"] == "quota exceeded"
    assert view["ended_at"]
    listed = acme.get("/v1/instances", params={"definition": name, "status": "failed"}).json()
    assert [i["id"] for i in listed["items"]] == [view["id"]]
