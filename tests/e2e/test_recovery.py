"""Operator recovery over the real API (`waymark serve`, PostgreSQL): instance modification,
version migration as a tracked job, and dry-run simulation that writes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.e2e.conftest import (
    instance,
    is_problem,
    open_tasks,
    publish,
    start,
    unique,
    wait_for,
)
from tests.e2e.flow_support import history

CHILD = {
    "nodes": [{"id": "child_task", "type": "user_task"}, {"id": "end", "type": "end"}],
    "routes": [{"from": "child_task", "to": "end"}],
    "output": {"child": "true"},
}


def parallel_flow(name: str, child: str, version: int, *, wait_kind: str = "wait") -> dict:
    """fork → (a: approval, w: wait, t: timer, c: sub_workflow) → join → done.
    v2 renames a → a2 and adds `audit` after the join; `wait_kind` changes w's type."""
    a = "a" if version == 1 else "a2"
    w: dict[str, Any] = {"id": "w", "type": "wait"}
    if wait_kind == "timer":
        w = {"id": "w", "type": "timer", "duration": "PT1H"}
    nodes = [
        {"id": "fork", "type": "parallel", "start": True},
        {"id": a, "type": "approval", "approver_role": "manager"},
        w,
        {"id": "t", "type": "timer", "duration": "PT10H"},
        {"id": "c", "type": "sub_workflow", "definition": child},
        {"id": "join", "type": "join"},
        {"id": "done", "type": "end"},
    ]
    routes = [{"from": "fork", "to": n} for n in (a, "w", "t", "c")]
    routes += [{"from": n, "to": "join"} for n in (a, "w", "t", "c")]
    output = {"ok": "true"}
    if version == 1:
        routes.append({"from": "join", "to": "done"})
    else:
        nodes.append({"id": "audit", "type": "set", "variables": {"audited": "true"}})
        routes += [{"from": "join", "to": "audit"}, {"from": "audit", "to": "done"}]
        output["audited"] = "vars.audited"
    return {"name": name, "nodes": nodes, "routes": routes, "output": output}


def drive(client: httpx.Client, instance_id: str) -> dict[str, Any]:
    """Resolve every open bookmark through the API (timers by resume) until it ends."""
    for _ in range(20):
        view = instance(client, instance_id)
        if view["status"] in ("completed", "failed", "cancelled"):
            return view
        for bookmark in view["bookmarks"]:
            if bookmark["kind"] == "task":
                approval = bookmark["task_kind"] == "approval"
                outcome = {"outcome": "approved"} if approval else {}
                done = client.post(f"/v1/tasks/{bookmark['id']}/complete", json=outcome)
                assert done.status_code == 200, done.text
            elif bookmark["kind"] in ("wait", "timer"):
                resumed = client.post(
                    f"/v1/instances/{instance_id}/bookmarks/{bookmark['id']}/resume",
                    json={"payload": {"paid": True}},
                )
                assert resumed.status_code == 200, resumed.text
            elif bookmark["kind"] == "child":
                child = bookmark["child_id"]
                [task] = wait_for(lambda c=child: open_tasks(client, c), what="the child's task")
                done = client.post(f"/v1/tasks/{task['id']}/complete", json={})
                assert done.status_code == 200, done.text
            break
    raise AssertionError(f"instance {instance_id} did not end")


def job_done(client: httpx.Client, job_id: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        response = client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        return body if body["status"] != "running" else None

    return wait_for(probe, timeout=30, what=f"job {job_id}")


def test_modification_cancels_a_task_and_starts_a_node_recorded_with_who_and_why(
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
                {"id": "done", "type": "end", "output": {"audited": "vars.audited"}},
            ],
            "routes": [
                {"from": "review", "to": "audit", "outcome": "approved"},
                {"from": "review", "to": "done", "outcome": "rejected"},
                {"from": "audit", "to": "done"},
            ],
        },
    )
    started = start(acme, name)["id"]
    before = history(acme, started)
    url = f"/v1/instances/{started}/modify"
    unknown = acme.post(url, json={"operations": [{"cancel": "review"}, {"start_before": "x"}]})
    body = is_problem(unknown, 422, "invalid-modification")
    assert body["errors"][0]["path"] == "/operations/1/start_before"
    inactive = acme.post(url, json={"operations": [{"cancel": "audit"}]})
    assert is_problem(inactive, 409, "node-not-active")["pointer"] == "/operations/0/cancel"
    assert history(acme, started) == before  # refused: nothing recorded
    ops = [{"cancel": "review"}, {"start_before": "audit"}]
    done = acme.post(url, json={"operations": ops, "reason": "manager on leave"})
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["output"]) == ("completed", {"audited": True})
    [modified] = [e for e in history(acme, started) if e["type"] == "InstanceModified"]
    assert modified["data"]["by"].startswith("key-")  # the API key's name, never the key
    assert modified["data"]["reason"] == "manager on leave"
    assert modified["data"]["operations"] == ops
    assert open_tasks(acme, started) == []  # the cancelled task left the queue


def test_migration_dry_run_refusal_and_job_then_finishes_like_a_fresh_run(
    acme: httpx.Client,
) -> None:
    name, child = unique("migrate"), unique("child")
    publish(acme, {"name": child, **CHILD})
    publish(acme, parallel_flow(name, child, 1))
    fresh_started = [start(acme, name)["id"] for _ in range(2)]
    # One of them has a branch at the join already (its timer resumed).
    view = instance(acme, fresh_started[1])
    timer = next(b for b in view["bookmarks"] if b["node_id"] == "t")
    resumed = acme.post(f"/v1/instances/{fresh_started[1]}/bookmarks/{timer['id']}/resume", json={})
    assert resumed.status_code == 200, resumed.text
    publish(acme, parallel_flow(name, child, 2))  # version 2
    publish(acme, parallel_flow(name, child, 1, wait_kind="timer"))  # version 3
    before = {i: history(acme, i) for i in fresh_started}
    url = f"/v1/definitions/{name}/migrations"

    # A version whose `w` is a timer: the dry run says why not; the real run refuses both.
    plan = acme.post(url, json={"from_version": 1, "to_version": 3})
    assert plan.status_code == 200, plan.text
    assert plan.json()["cannot_migrate"] == 2
    assert all(
        any(r.startswith("bookmark kind changed") for r in i["reasons"])
        for i in plan.json()["instances"]
    )
    refused = acme.post(url, json={"from_version": 1, "to_version": 3, "dry_run": False})
    assert refused.status_code == 202, refused.text
    job = job_done(acme, refused.json()["id"])
    assert (job["status"], job["total"], job["done"], job["refused"]) == ("succeeded", 2, 0, 2)
    assert {i: history(acme, i) for i in fresh_started} == before  # nothing changed

    # An unknown node in the mapping: 422 naming it
    bad = acme.post(url, json={"from_version": 1, "to_version": 2, "mapping": {"a": "zz"}})
    assert is_problem(bad, 422, "invalid-modification")["errors"][0]["path"] == "/mapping/a"

    # Version 2 under {"a": "a2"}: the dry run says yes, the job moves both
    body = {"from_version": 1, "to_version": 2, "mapping": {"a": "a2"}}
    plan = acme.post(url, json=body)
    assert plan.json()["can_migrate"] == 2, plan.text
    assert history(acme, fresh_started[0]) == before[fresh_started[0]]  # a dry run writes nothing
    moved = acme.post(url, json={**body, "dry_run": False, "reason": "fix"})
    assert moved.status_code == 202, moved.text
    job = job_done(acme, moved.json()["id"])
    assert (job["status"], job["done"], job["refused"], job["failed"]) == ("succeeded", 2, 0, 0)
    for instance_id in fresh_started:
        after = history(acme, instance_id)
        new = after[len(before[instance_id]) :]
        assert [e["type"] for e in new] == ["InstanceMigrated"]  # ONE event
        view = instance(acme, instance_id)
        assert view["version"] == 2
        # Every open bookmark is kept (ids and tokens), `a` now at `a2`
        old_view = {b["id"]: b for b in _bookmarks_of(before[instance_id])}
        assert {b["id"] for b in view["bookmarks"]} <= set(old_view)
        assert "a2" in {b["node_id"] for b in view["bookmarks"]}
        assert [t["node_id"] for t in open_tasks(acme, instance_id)] == ["a2"]

    # Each finishes like a fresh run of version 2
    reference = drive(acme, start(acme, name, version=2)["id"])
    assert (reference["status"], reference["output"]) == (
        "completed",
        {"ok": True, "audited": True},
    )
    for instance_id in fresh_started:
        final = drive(acme, instance_id)
        assert (final["status"], final["output"]) == (reference["status"], reference["output"])
        assert final["variables"] == reference["variables"]


def _bookmarks_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["data"]["bookmark"] for e in events if e["type"] == "BookmarkCreated"]


PURCHASE = json.loads((Path(__file__).parents[2] / "examples/purchase-approval.json").read_text())
TABLES = ("waymark_events", "instances", "bookmarks", "tasks", "activities", "jobs")


def _counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # noqa: S608


def test_simulating_a_purchase_approval_reports_routes_never_taken_and_writes_nothing(
    acme: httpx.Client, module_database_url: str
) -> None:
    document = {**PURCHASE, "name": unique("po")}
    document.pop("triggers")
    publish(acme, document)
    cases = [
        {"name": "small", "input": {"amount": 500, "po_id": "PO-1"}},
        {"name": "large", "input": {"amount": 50000, "po_id": "PO-2"},
         "script": {"cfo_approval": {"outcome": "approved"}}},
        {"name": "rejected", "input": {"amount": 50, "po_id": "PO-3"},
         "script": {"manager_approval": {"outcome": "rejected"}}},
    ]  # fmt: skip
    before = _counts(module_database_url)
    published = acme.post(
        "/v1/definitions/simulate", json={"name": document["name"], "version": 1, "cases": cases}
    )
    inline = acme.post("/v1/definitions/simulate", json={"document": document, "cases": cases})
    after = _counts(module_database_url)
    assert after == before  # nothing stored
    for response in (published, inline):
        assert response.status_code == 200, response.text
        report = response.json()
        assert [c["status"] for c in report["cases"]] == ["completed", "completed", "failed"]
        assert report["cases"][1]["path"] == [
            "manager_approval", "amount_check", "cfo_approval", "notify", "done"
        ]  # fmt: skip
        assert [(r["from"], r["to"]) for r in report["never_taken"]] == [
            ("cfo_approval", "rejected")
        ]
    assert is_problem(
        acme.post("/v1/definitions/simulate", json={"cases": cases}), 422, "invalid-request"
    )


def test_inside_a_sub_workflow_modify_the_parent_and_migrate_the_child(
    acme: httpx.Client, globex: httpx.Client
) -> None:
    name, child = unique("parent"), unique("child")
    publish(acme, {"name": child, **CHILD})
    publish(acme, parallel_flow(name, child, 1))
    parent = start(acme, name)["id"]
    first_child = open_bookmark_of(acme, parent, "c")["child_id"]

    # Restart the sub-workflow branch: the old child is cancelled, a new one starts.
    ops = [{"cancel": "c"}, {"start_before": "c"}]
    modified = acme.post(f"/v1/instances/{parent}/modify", json={"operations": ops})
    assert modified.status_code == 200, modified.text
    assert instance(acme, first_child)["status"] == "cancelled"
    second_child = open_bookmark_of(acme, parent, "c")["child_id"]
    assert second_child != first_child

    # The child's definition gets a version 2 (its task renamed, a step added): migrate it.
    publish(
        acme,
        {
            "name": child,
            "nodes": [
                {"id": "review", "type": "user_task"},
                {"id": "stamp", "type": "set", "variables": {"stamped": "true"}},
                {"id": "end", "type": "end"},
            ],
            "routes": [{"from": "review", "to": "stamp"}, {"from": "stamp", "to": "end"}],
            "output": {"child": "true", "stamped": "vars.stamped"},
        },
    )
    body = {"from_version": 1, "to_version": 2, "mapping": {"child_task": "review"}}
    job = acme.post(f"/v1/definitions/{child}/migrations", json={**body, "dry_run": False})
    assert job.status_code == 202, job.text
    assert globex.get(f"/v1/jobs/{job.json()['id']}").status_code == 404  # tenant-scoped
    done = job_done(acme, job.json()["id"])
    assert (done["done"], done["refused"]) == (1, 0), done  # the cancelled child is no candidate
    assert [t["node_id"] for t in open_tasks(acme, second_child)] == ["review"]

    final = drive(acme, parent)
    assert final["status"] == "completed"
    assert instance(acme, second_child)["output"] == {"child": True, "stamped": True}
    fresh_child = drive(acme, start(acme, child, version=2)["id"])
    assert fresh_child["output"] == instance(acme, second_child)["output"]


def open_bookmark_of(client: httpx.Client, instance_id: str, node_id: str) -> dict[str, Any]:
    [found] = [b for b in instance(client, instance_id)["bookmarks"] if b["node_id"] == node_id]
    return found
