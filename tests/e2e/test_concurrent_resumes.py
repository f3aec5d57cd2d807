"""Concurrent resumes of *different* bookmarks of one instance (issue 5, item 5): a fork into
20 waits, all resumed at once, over HTTP against `waymark serve`. Every request must succeed
at the first try — before the per-instance lock, ~40 % answered `409 concurrency-conflict`.
Also: the fork's callback tokens cannot be probed (item 8 b)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import pytest

from tests.e2e.conftest import (
    TENANT_SECRETS,
    Server,
    instance,
    post_signed,
    publish,
    start,
    unique,
    wait_for_status,
)

pytestmark = pytest.mark.e2e

BRANCHES = 20


@pytest.fixture(scope="module")
def fork_of_waits(server: Server) -> str:
    """parallel -> 20 waits -> join -> end."""
    name = unique("fork-20")
    waits = [f"w{i:02d}" for i in range(BRANCHES)]
    nodes = [{"id": "fork", "type": "parallel"}]
    nodes += [{"id": w, "type": "wait"} for w in waits]
    nodes += [{"id": "all", "type": "join"}, {"id": "done", "type": "end"}]
    routes = [{"from": "fork", "to": w} for w in waits]
    routes += [{"from": w, "to": "all"} for w in waits]
    routes.append({"from": "all", "to": "done"})
    with server.client("k-acme") as acme:
        publish(acme, {"name": name, "nodes": nodes, "routes": routes})
    return name


def all_at_once(server: Server, requests: list[Callable[[httpx.Client], httpx.Response]]) -> list:
    """Send every request from its own thread and connection, released together."""
    barrier = threading.Barrier(len(requests))
    answers: list[httpx.Response | BaseException | None] = [None] * len(requests)

    def send(i: int) -> None:
        with server.client("k-acme") as client:
            barrier.wait()
            try:
                answers[i] = requests[i](client)
            except BaseException as e:  # reported by the assertion below
                answers[i] = e

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return answers


def statuses(answers: list) -> list:
    return [a.status_code if isinstance(a, httpx.Response) else repr(a) for a in answers]


def test_twenty_concurrent_resumes_of_one_instance_all_succeed_first_time(
    server: Server, acme: httpx.Client, fork_of_waits: str
) -> None:
    view = start(acme, fork_of_waits)
    bookmarks = [b for b in view["bookmarks"] if b["kind"] == "wait"]
    assert len(bookmarks) == BRANCHES

    def resume(bookmark_id: str) -> Callable[[httpx.Client], httpx.Response]:
        path = f"/v1/instances/{view['id']}/bookmarks/{bookmark_id}/resume"
        return lambda client: client.post(path, json={"payload": {"b": bookmark_id}})

    answers = all_at_once(server, [resume(b["id"]) for b in bookmarks])

    assert statuses(answers) == [200] * BRANCHES, [
        a.text for a in answers if isinstance(a, httpx.Response) and a.status_code != 200
    ]
    assert wait_for_status(acme, view["id"], "completed")["status"] == "completed"


def test_twenty_concurrent_signed_callbacks_of_one_instance_all_succeed_first_time(
    server: Server, acme: httpx.Client, fork_of_waits: str
) -> None:
    view = start(acme, fork_of_waits)
    tokens = [b["token"] for b in view["bookmarks"] if b["kind"] == "wait"]
    assert len(tokens) == BRANCHES and all(tokens)

    def callback(token: str) -> Callable[[httpx.Client], httpx.Response]:
        return lambda client: post_signed(
            client, f"/v1/callbacks/{token}", {"t": token[:6]}, secret=TENANT_SECRETS["acme"]
        )

    answers = all_at_once(server, [callback(t) for t in tokens])

    assert statuses(answers) == [200] * BRANCHES, [
        a.text for a in answers if isinstance(a, httpx.Response) and a.status_code != 200
    ]
    assert instance(acme, view["id"])["status"] == "completed"


def test_an_unknown_callback_token_answers_like_a_live_one_with_a_wrong_signature(
    server: Server, acme: httpx.Client, anonymous: httpx.Client, fork_of_waits: str
) -> None:
    """Issue 5 item 8 (b): tokens cannot be probed — same status, same body (bar the path)."""
    view = start(acme, fork_of_waits)
    live = next(b["token"] for b in view["bookmarks"] if b["kind"] == "wait")
    made_up = "x" * len(live)

    def answer(token: str, secret: str) -> tuple[int, dict]:
        response = post_signed(anonymous, f"/v1/callbacks/{token}", {"n": 1}, secret=secret)
        body = response.json()
        body.pop("instance")
        return response.status_code, body

    assert answer(made_up, "guess") == answer(live, "guess")
    assert answer(made_up, TENANT_SECRETS["acme"]) == answer(live, TENANT_SECRETS["globex"])
    assert answer(made_up, "guess")[0] == 401
