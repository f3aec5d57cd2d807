"""Over HTTP against `waymark serve`: a service-task result the store cannot hold runs its
action exactly once, even after many lease periods (issue 5, item 3), and the bounds that
keep due times storable are 422 at publish with the JSON path (item 6)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    Server,
    is_problem,
    publish,
    server_env,
    serving,
    start,
    unique,
    wait_for_status,
)

pytestmark = pytest.mark.e2e

LEASE_SECONDS = 1.0


def deep(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"a": value}
    return value


class Answers:
    """A local HTTP target: each path prefix answers a fixed JSON body; requests counted."""

    BODIES = {
        "/nul": json.dumps({"text": "a\u0000b"}).encode(),  # \u0000 escaped in the JSON
        "/deep": json.dumps(deep(100)).encode(),
    }

    def __init__(self) -> None:
        self.base_url = ""
        self.lock = threading.Lock()
        self.requests: list[tuple[str, bytes]] = []

    def received(self, prefix: str) -> list[bytes]:
        with self.lock:
            return [body for path, body in self.requests if path.startswith(prefix)]

    def body_for(self, path: str) -> bytes:
        return next((b for p, b in self.BODIES.items() if path.startswith(p)), b'{"ok": true}')


@pytest.fixture(scope="module")
def answers() -> Iterator[Answers]:
    target = Answers()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            with target.lock:
                target.requests.append((self.path, self.rfile.read(length)))
            payload = target.body_for(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    target.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield target
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose task leases expire after a second: a rerun would show at once."""
    workdir: Path = tmp_path_factory.mktemp("waymark-poison")
    env = server_env(module_database_url, workdir, WAYMARK_TASK_LEASE_SECONDS=str(LEASE_SECONDS))
    with serving(env, workdir) as running:
        yield running


def call_then_forward(name: str, url: str, sink: str) -> dict[str, Any]:
    http_call = {"type": "http", "method": "POST", "timeout": "PT5S"}
    return {
        "name": name,
        "nodes": [
            {
                "id": "call",
                "type": "service_task",
                "result_var": "reply",
                "action": {**http_call, "url": url},
            },
            {
                "id": "forward",
                "type": "service_task",
                "action": {
                    **http_call,
                    "url": sink,
                    "body": {"text": "{{ vars.reply.body.text }}"},
                },
            },
            {"id": "done", "type": "end", "output": {"text": "vars.reply.body.text"}},
        ],
        "routes": [{"from": "call", "to": "forward"}, {"from": "forward", "to": "done"}],
    }


def stays_at(count: Any, expected: int, seconds: float) -> None:
    """`count()` is `expected` now and for `seconds` (several lease periods) after."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert count() == expected
        time.sleep(0.1)


def test_a_nul_in_a_reply_used_by_the_next_template_runs_each_call_once(
    acme: httpx.Client, answers: Answers
) -> None:
    # Given a target answering {"text": "a\u0000b"}, which the next call's body copies
    name, path, sink = unique("nul"), "/nul/" + unique("p"), "/sink/" + unique("s")
    publish(acme, call_then_forward(name, answers.base_url + path, answers.base_url + sink))

    # When an instance runs
    view = start(acme, name)
    done = wait_for_status(acme, view["id"], "completed", "failed")

    # Then it completes with the NUL replaced, and neither call repeats after its lease
    assert done["status"] == "completed", done
    assert done["output"] == {"text": "a\ufffdb"}
    assert [json.loads(b) for b in answers.received(sink)] == [{"text": "a\ufffdb"}]
    stays_at(lambda: len(answers.received(path)), 1, 4 * LEASE_SECONDS)
    assert len(answers.received(sink)) == 1


def test_a_reply_too_deep_to_store_fails_the_instance_once_with_a_clear_error(
    acme: httpx.Client, answers: Answers
) -> None:
    name, path, sink = unique("deep"), "/deep/" + unique("p"), "/sink/" + unique("s")
    document = call_then_forward(name, answers.base_url + path, answers.base_url + sink)
    document["nodes"][0]["retry"] = {"max_attempts": 5, "initial_interval": "PT0.1S"}
    publish(acme, document)

    view = start(acme, name)
    failed = wait_for_status(acme, view["id"], "failed", "completed")

    assert failed["status"] == "failed"
    assert failed["error"]["node_id"] == "call"
    message = failed["error"]["message"]
    assert "the result of call cannot be stored: it nests deeper than 64 levels" in message
    assert "after 1 attempt" in message
    stays_at(lambda: len(answers.received(path)), 1, 4 * LEASE_SECONDS)
    assert answers.received(sink) == []


def wait_node(**fields: Any) -> dict[str, Any]:
    return {
        "name": unique("bounds"),
        "nodes": [
            {"id": "w", "type": "wait", "event": "paid", **fields},
            {"id": "done", "type": "end"},
        ],
        "routes": [{"from": "w", "to": "done"}, {"from": "w", "to": "done", "outcome": "timeout"}],
    }


@pytest.mark.parametrize(
    ("document", "path"),
    [
        (wait_node(timeout="P3000000D"), "$.nodes[0].timeout"),
        ({**wait_node(), "sla_hours": 1e300}, "$.sla_hours"),
        (wait_node(event="paid\u0000"), "$.nodes[0].event"),
        (
            {
                "name": unique("bounds"),
                "nodes": [
                    {"id": "t", "type": "timer", "duration": "P3000000D"},
                    {"id": "e", "type": "end"},
                ],
                "routes": [{"from": "t", "to": "e"}],
            },
            "$.nodes[0].duration",
        ),
    ],
)
def test_unstorable_bounds_are_422_at_validate_and_publish(
    acme: httpx.Client, document: dict[str, Any], path: str
) -> None:
    for endpoint in ("/v1/definitions/validate", "/v1/definitions"):
        response = acme.post(endpoint, json=document)
        if endpoint.endswith("validate") and response.status_code == 200:
            body = response.json()
            assert body["valid"] is False, body
            errors = body["errors"]
        else:
            # A NUL never reaches the validator: the request guard refuses any body holding
            # one (422 invalid-request, same JSON path) before a route runs.
            kind = "invalid-request" if "\\u0000" in json.dumps(document) else "invalid-definition"
            errors = is_problem(response, 422, kind)["errors"]
        assert path in [e["path"] for e in errors], errors
