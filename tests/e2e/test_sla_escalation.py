"""SLA escalation over HTTP: an approval with a short SLA (0.0005 h = 1.8 s) is escalated
exactly once while two timer-firing paths race for it (the server's in-process timer worker
and a standalone `waymark worker timers`), its notifications reach an HTTP endpoint, and the
`GET /v1/tasks` filters see the escalated role and the computed urgency."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import (
    Server,
    Target,
    publish,
    server_env,
    serving,
    start,
    terminate,
    unique,
    wait_for,
)
from tests.e2e.worker_processes import WorkerProcess, start_worker

pytestmark = pytest.mark.e2e

PUBLIC_URL = "https://waymark.example"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("waymark-e2e-sla")


@pytest.fixture(scope="module")
def env(module_database_url: str, workdir: Path) -> dict[str, str]:
    return server_env(
        module_database_url,
        workdir,
        WAYMARK_TIMER_POLL_INTERVAL="0.2",
        WAYMARK_TIMER_LEASE_SECONDS="0.001",  # both paths claim the same rows,
        WAYMARK_PUBLIC_URL=PUBLIC_URL,
    )


@pytest.fixture(scope="module")
def server(env: dict[str, str], workdir: Path) -> Iterator[Server]:
    """`waymark serve` with its in-process timer and task workers: one firing path."""
    with serving(env, workdir) as running:
        yield running


@pytest.fixture(scope="module")
def timer_worker(server: Server, env: dict[str, str], workdir: Path) -> Iterator[WorkerProcess]:
    """A standalone timer worker on the same database: the second firing path."""
    worker = start_worker("timers", env, workdir / "timers.log")
    try:
        yield worker
    finally:
        terminate(worker.process)


def short_sla_approval(name: str, target_url: str) -> dict[str, object]:
    return {
        "name": name,
        "nodes": [
            {
                "id": "approve",
                "type": "approval",
                "approver_role": f"{name}-clerk",
                "sla_hours": 0.0005,
                "escalate_to_role": f"{name}-boss",
                "notify": {
                    "created": {
                        "type": "http",
                        "method": "POST",
                        "url": f"{target_url}/{name}/created",
                        "body": {"task": "{{ task.id }}", "link": "{{ task.link }}"},
                    },
                    "escalated": {
                        "type": "http",
                        "method": "POST",
                        "url": f"{target_url}/{name}/escalated",
                        "body": {"to": "{{ task.escalated_to }}", "due": "{{ task.due_at }}"},
                    },
                },
            },
            {"id": "done", "type": "end"},
            {"id": "no", "type": "end", "status": "failed"},
        ],
        "routes": [
            {"from": "approve", "to": "done", "outcome": "approved"},
            {"from": "approve", "to": "no", "outcome": "rejected"},
        ],
    }


def tasks(client: httpx.Client, **params: str) -> list[dict[str, object]]:
    response = client.get("/v1/tasks", params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_a_short_sla_escalates_exactly_once_with_two_timer_paths_racing(
    acme: httpx.Client, target: Target, timer_worker: WorkerProcess
) -> None:
    name = unique("sla")
    publish(acme, short_sla_approval(name, target.base_url))
    instances = [start(acme, name)["id"] for _ in range(5)]
    task_ids = {t["id"] for t in tasks(acme, role=f"{name}-clerk") if t["instance_id"] in instances}
    assert len(task_ids) == 5
    # Given 1.8 s to go, each task is `urgent` and nobody else is a candidate.
    assert {t["id"] for t in tasks(acme, urgency="urgent")} >= task_ids
    assert tasks(acme, role=f"{name}-boss") == []

    # When the SLA passes, both timer paths look for due tasks; each task escalates once.
    def escalated() -> list[dict[str, object]] | None:
        found = [t for t in tasks(acme, role=f"{name}-boss") if t["id"] in task_ids]
        return found if len(found) == 5 else None

    for task in wait_for(escalated, timeout=30, what="five escalated tasks"):
        assert task["urgency"] == "overdue" and task["overdue"] is True
        assert task["roles"] == [f"{name}-clerk", f"{name}-boss"]
    assert {t["id"] for t in tasks(acme, urgency="overdue")} >= task_ids
    # Then, after both workers had time for several more polls, still one escalation each.
    wait_for(lambda: len(target.received(f"/{name}/escalated")) >= 5, timeout=20)
    for instance_id in instances:
        history = acme.get(f"/v1/instances/{instance_id}/history").json()["items"]
        assert [e["type"] for e in history].count("TaskEscalated") == 1, history
        (event,) = [e for e in history if e["type"] == "TaskEscalated"]
        assert event["data"]["to_role"] == f"{name}-boss"
        view = acme.get(f"/v1/instances/{instance_id}").json()
        assert view["status"] == "suspended"  # notifications never move the instance
    assert len(target.received(f"/{name}/escalated")) == 5
    created = target.received(f"/{name}/created")
    assert len(created) == 5
    assert {r.json()["link"] for r in created} == {f"{PUBLIC_URL}/v1/tasks/{t}" for t in task_ids}
    assert {r.json()["to"] for r in target.received(f"/{name}/escalated")} == {f"{name}-boss"}
    # Both paths were live: the standalone worker ran (and may have fired some) meanwhile.
    assert timer_worker.process.poll() is None


def test_the_incident_escalation_template_escalates_over_http(acme: httpx.Client) -> None:
    name = unique("incident")
    response = acme.post("/v1/templates/incident-escalation/instantiate", json={"name": name})
    assert response.status_code == 201, response.text
    document = acme.get(f"/v1/definitions/{name}").json()["document"]
    # The shipped SLA is 30 minutes: publish the same flow with it shortened to ~1 s.
    [mitigate] = [n for n in document["nodes"] if n["id"] == "mitigate"]
    mitigate["sla_hours"] = 0.0003
    publish(acme, document)
    incident = unique("INC")
    view = start(
        acme, name, input={"incident_id": incident, "title": "db down", "severity": "critical"}
    )
    # On-call acknowledges (the event gateway's wait); the mitigation task opens
    acked = acme.post("/v1/events", json={"type": "incident.acknowledged", "correlation": incident})
    assert acked.status_code == 200 and acked.json()["resumed"], acked.text

    def on_manager_queue() -> list[dict[str, object]] | None:
        found = [t for t in tasks(acme, role="incident-manager") if t["instance_id"] == view["id"]]
        return found or None

    (task,) = wait_for(on_manager_queue, timeout=30, what="the escalated incident task")
    assert task["roles"] == ["on-call", "incident-manager"] and task["urgency"] == "overdue"
