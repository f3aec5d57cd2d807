"""Boundary events and the event gateway over HTTP against real `waymark serve` processes:
an interrupting timer on an approval (the task leaves the queue), a non-interrupting
reminder that fires twice while the task stays open, an event boundary withdrawing a
service task, a non-interrupting event boundary on a wait, and an event gateway under
concurrent deliveries to two servers on one database (exactly one wins)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    Server,
    Target,
    instance,
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


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("waymark-e2e-boundary")


@pytest.fixture(scope="module")
def env(module_database_url: str, workdir: Path) -> dict[str, str]:
    return server_env(module_database_url, workdir, WAYMARK_TIMER_POLL_INTERVAL="0.2")


@pytest.fixture(scope="module")
def server(env: dict[str, str], workdir: Path) -> Iterator[Server]:
    with serving(env, workdir) as running:
        yield running


@pytest.fixture(scope="module")
def second(server: Server, env: dict[str, str], workdir: Path) -> Iterator[Server]:
    """Another `waymark serve` on the same database: a race across processes."""
    other = workdir / "second"
    other.mkdir()
    with serving({**env, "WAYMARK_DATA_DIR": str(other / "data")}, other) as running:
        yield running


@pytest.fixture
def acme(server: Server) -> Iterator[httpx.Client]:
    with server.client("k-acme") as client:
        yield client


def boundary_bookmarks(view: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in view["bookmarks"] if b.get("boundary_of")]


def test_an_interrupting_timer_on_an_approval_takes_to_and_the_task_leaves_the_queue(
    acme: httpx.Client,
) -> None:
    name = unique("boundary-timer")
    publish(
        acme,
        {
            "name": name,
            "nodes": [
                {"id": "approve", "type": "approval", "approver_role": f"{name}-m",
                 "boundary": [{"timer": "PT1S", "to": "auto_reject"}]},
                {"id": "done", "type": "end"},
                {"id": "no", "type": "end", "status": "failed"},
                {"id": "auto_reject", "type": "end", "status": "failed", "error": "no answer"},
            ],
            "routes": [
                {"from": "approve", "to": "done", "outcome": "approved"},
                {"from": "approve", "to": "no", "outcome": "rejected"},
            ],
        },
    )  # fmt: skip
    view = start(acme, name)
    (task,) = open_tasks(acme, view["id"])
    (timer,) = boundary_bookmarks(view)
    assert (timer["kind"], timer["boundary_of"]) == ("timer", task["id"])
    # When the timer worker fires the boundary, the approval is interrupted.
    ended = wait_for_status(acme, view["id"], "failed")
    assert ended["error"]["node_id"] == "auto_reject"
    assert open_tasks(acme, view["id"]) == []
    assert acme.get(f"/v1/tasks/{task['id']}").json()["status"] == "cancelled"
    types = history_types(acme, view["id"])
    assert types.count("BoundaryFired") == 1 and "TaskCompleted" not in types
    late = acme.post(f"/v1/tasks/{task['id']}/complete", json={"outcome": "approved"})
    assert late.status_code == 409, late.text


def test_a_non_interrupting_reminder_fires_twice_while_the_task_stays_open(
    acme: httpx.Client, target: Target
) -> None:
    name = unique("reminder")
    publish(
        acme,
        {
            "name": name,
            "nodes": [
                {"id": "fill", "type": "user_task", "role": f"{name}-clerk",
                 "boundary": [{"timer": "R2/PT0.5S", "interrupting": False, "to": "remind"}]},
                {"id": "done", "type": "end"},
                {"id": "remind", "type": "service_task",
                 "action": {"type": "http", "method": "POST",
                            "url": f"{target.base_url}/{name}/remind"}},
                # The reminder branch parks here (no branch end on this branch of the code).
                {"id": "parked", "type": "wait", "event": f"{name}.never"},
            ],
            "routes": [
                {"from": "fill", "to": "done"},
                {"from": "remind", "to": "parked"},
                {"from": "parked", "to": "done"},
            ],
        },
    )  # fmt: skip
    view = start(acme, name)
    (task,) = open_tasks(acme, view["id"])

    def reminded_twice() -> dict[str, Any] | None:
        current = instance(acme, view["id"])
        parked = [b for b in current["bookmarks"] if b["node_id"] == "parked"]
        return current if len(parked) == 2 else None

    current = wait_for(reminded_twice, timeout=30, what="two reminders")
    assert len(target.received(f"/{name}/remind")) == 2
    assert [t["id"] for t in open_tasks(acme, view["id"])] == [task["id"]]  # still open
    assert boundary_bookmarks(current) == []  # R2: exhausted, no third firing is scheduled
    assert history_types(acme, view["id"]).count("BoundaryFired") == 2
    # The task is still the one open task; completing it ends the instance.
    done = acme.post(f"/v1/tasks/{task['id']}/complete", json={})
    assert done.status_code == 200, done.text
    assert wait_for_status(acme, view["id"], "completed")["status"] == "completed"
    assert len(target.received(f"/{name}/remind")) == 2


def test_an_event_boundary_withdraws_a_service_task_waiting_out_its_retries(
    acme: httpx.Client, target: Target
) -> None:
    name = unique("withdraw")
    target.fail(f"/{name}/charge", 503)
    publish(
        acme,
        {
            "name": name,
            "nodes": [
                {"id": "charge", "type": "service_task",
                 "action": {"type": "http", "method": "POST",
                            "url": f"{target.base_url}/{name}/charge"},
                 "retry": {"max_attempts": 5, "initial_interval": "PT1H"},
                 "boundary": [{"event": f"{name}.cancelled", "correlation": "input.order",
                               "to": "refund", "result_var": "why"}]},
                {"id": "done", "type": "end"},
                {"id": "refund", "type": "end", "status": "failed", "error": "order cancelled"},
            ],
            "routes": [{"from": "charge", "to": "done"}],
        },
    )  # fmt: skip
    view = start(acme, name, input={"order": "o-42"})
    wait_for(lambda: target.received(f"/{name}/charge"), what="the first attempt")
    wait_for(
        lambda: any(b["kind"] == "retry" for b in instance(acme, view["id"])["bookmarks"]),
        what="the retry backoff",
    )
    other = acme.post("/v1/events", json={"type": f"{name}.cancelled", "correlation": "o-41"})
    assert other.json()["resumed"] == []  # another order's event does not match
    sent = acme.post(
        "/v1/events",
        json={"type": f"{name}.cancelled", "correlation": "o-42", "payload": {"by": "customer"}},
    )
    assert sent.status_code == 200, sent.text
    assert len(sent.json()["resumed"]) == 1
    ended = wait_for_status(acme, view["id"], "failed")
    assert ended["error"]["node_id"] == "refund"
    assert ended["variables"]["why"] == {"by": "customer"}
    assert {a["status"] for a in ended["activities"]} == {"cancelled"}


def test_a_non_interrupting_event_boundary_on_a_wait_fires_per_event(acme: httpx.Client) -> None:
    name = unique("wait-boundary")
    publish(
        acme,
        {
            "name": name,
            "nodes": [
                {"id": "shipment", "type": "wait", "event": f"{name}.shipped",
                 "correlation": "input.order",
                 "boundary": [{"event": f"{name}.asked", "correlation": "input.order",
                               "interrupting": False, "to": "answer"}]},
                {"id": "done", "type": "end"},
                {"id": "answer", "type": "set", "variables": {"asked": "true"}},
                {"id": "parked", "type": "wait", "event": f"{name}.never"},
            ],
            "routes": [
                {"from": "shipment", "to": "done"},
                {"from": "answer", "to": "parked"},
                {"from": "parked", "to": "done"},
            ],
        },
    )  # fmt: skip
    view = start(acme, name, input={"order": "o-7"})
    for n in (1, 2):
        sent = acme.post("/v1/events", json={"type": f"{name}.asked", "correlation": "o-7"})
        assert len(sent.json()["resumed"]) == 1, sent.text
        current = instance(acme, view["id"])
        assert [b["node_id"] for b in current["bookmarks"]].count("parked") == n
        assert any(
            b["node_id"] == "shipment" and not b.get("boundary_of") for b in current["bookmarks"]
        )
    acme.post("/v1/events", json={"type": f"{name}.shipped", "correlation": "o-7"})
    assert wait_for_status(acme, view["id"], "completed")["variables"]["asked"] is True


def gateway_definition(name: str) -> dict[str, Any]:
    """first of: paid, cancelled (events), expired (a day) -> a `set` saying which -> `hold`.

    The winner's branch waits at `hold` afterwards rather than ending: an `end` would close
    the losers anyway, hiding a gateway that let two waits through."""
    return {
        "name": name,
        "nodes": [
            {"id": "first", "type": "event_gateway"},
            {"id": "paid", "type": "wait", "event": f"{name}.paid", "correlation": "input.k"},
            {"id": "cancelled", "type": "wait", "event": f"{name}.cancelled",
             "correlation": "input.k"},
            {"id": "expired", "type": "timer", "duration": "P1D"},
            {"id": "was_paid", "type": "set", "variables": {"via": "'paid'"}},
            {"id": "was_cancelled", "type": "set", "variables": {"via": "'cancelled'"}},
            {"id": "was_late", "type": "set", "variables": {"via": "'expired'"}},
            {"id": "hold", "type": "wait", "event": f"{name}.close"},
            {"id": "done", "type": "end"},
        ],
        "routes": [
            {"from": "first", "to": "paid"},
            {"from": "first", "to": "cancelled"},
            {"from": "first", "to": "expired"},
            {"from": "paid", "to": "was_paid"},
            {"from": "cancelled", "to": "was_cancelled"},
            {"from": "expired", "to": "was_late"},
            {"from": "was_paid", "to": "hold"},
            {"from": "was_cancelled", "to": "hold"},
            {"from": "was_late", "to": "hold"},
            {"from": "hold", "to": "done"},
        ],
    }  # fmt: skip


def event(event_type: str, correlation: str) -> dict[str, Any]:
    return {"type": event_type, "correlation": correlation}


def together(*calls: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """Run the calls at the same moment, each on its own thread."""
    barrier = threading.Barrier(len(calls))
    results: list[httpx.Response | None] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def test_an_event_gateway_under_concurrent_deliveries_to_two_servers_has_one_winner(
    server: Server, second: Server
) -> None:
    name = unique("gateway")
    with server.client("k-acme") as one, second.client("k-acme") as two:
        publish(one, gateway_definition(name))
        ids = [start(one, name, input={"k": f"k{i}"})["id"] for i in range(12)]
        for i, instance_id in enumerate(ids):
            # Given both waits open, when the two events arrive at two servers at once,
            paid, cancelled = together(
                lambda i=i: one.post("/v1/events", json=event(f"{name}.paid", f"k{i}")),
                lambda i=i: two.post("/v1/events", json=event(f"{name}.cancelled", f"k{i}")),
            )
            assert paid.status_code == cancelled.status_code == 200, (paid.text, cancelled.text)
            # then exactly one of them resumed the instance, and it ended by that route.
            resumed = len(paid.json()["resumed"]) + len(cancelled.json()["resumed"])
            assert resumed == 1, (paid.json(), cancelled.json())
            view = instance(one, instance_id)
            winner = "paid" if paid.json()["resumed"] else "cancelled"
            assert view["variables"] == {"via": winner}
            assert [b["node_id"] for b in view["bookmarks"]] == ["hold"]
            types = history_types(one, instance_id)
            assert types.count("EventGatewayDecided") == 1
            assert types.count("BookmarkResumed") == 1
            assert types.count("BookmarkCancelled") == 2  # the other wait and the timer


def test_direct_resumes_of_two_gateway_waits_at_once_give_one_200_and_one_409(
    server: Server, second: Server
) -> None:
    name = unique("gateway-resume")
    with server.client("k-acme") as one, second.client("k-acme") as two:
        publish(one, gateway_definition(name))
        for i in range(6):
            view = start(one, name, input={"k": f"r{i}"})
            marks = {b["node_id"]: b["id"] for b in view["bookmarks"]}
            assert {b["gateway"] for b in view["bookmarks"]} == {"first"}
            path = f"/v1/instances/{view['id']}/bookmarks/{{}}/resume"
            a, b = together(
                lambda: one.post(path.format(marks["paid"]), json={"payload": {}}),
                lambda: two.post(path.format(marks["cancelled"]), json={"payload": {}}),
            )
            assert sorted([a.status_code, b.status_code]) == [200, 409], (a.text, b.text)
            assert history_types(one, view["id"]).count("EventGatewayDecided") == 1


def test_an_interrupting_timer_on_a_sub_workflow_cancels_the_child(acme: httpx.Client) -> None:
    child, parent = unique("slow-child"), unique("impatient-parent")
    publish(
        acme,
        {
            "name": child,
            "nodes": [
                {"id": "w", "type": "wait", "event": f"{child}.never"},
                {"id": "done", "type": "end"},
            ],
            "routes": [{"from": "w", "to": "done"}],
        },
    )  # fmt: skip
    publish(
        acme,
        {
            "name": parent,
            "nodes": [
                {"id": "call", "type": "sub_workflow", "definition": child,
                 "boundary": [{"timer": "PT1S", "to": "gave_up"}]},
                {"id": "done", "type": "end"},
                {"id": "gave_up", "type": "end", "output": {"gave_up": "true"}},
            ],
            "routes": [{"from": "call", "to": "done"}],
        },
    )  # fmt: skip
    view = start(acme, parent)
    child_id = next(b["child_id"] for b in view["bookmarks"] if b["kind"] == "child")
    assert instance(acme, child_id)["status"] == "suspended"
    assert wait_for_status(acme, view["id"], "completed")["output"] == {"gave_up": True}
    assert instance(acme, child_id)["status"] == "cancelled"
