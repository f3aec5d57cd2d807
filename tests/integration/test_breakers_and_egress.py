"""Circuit breakers, retries within an attempt and the egress guard with a real task worker,
real PostgreSQL and a local HTTP target (issue 9). Production mode: DATABASE_URL is set."""

from __future__ import annotations

import dataclasses
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import pytest

from application.commands import StartInstance
from workers.task_worker import TaskWorker

pytestmark = pytest.mark.integration

TENANT = "acme"
OPEN_SECONDS = 2.0


class Target:
    """A local HTTP server whose answer the test switches; counts what it receives."""

    def __init__(self) -> None:
        self.status = 200
        self.script: list[int] = []  # statuses to answer first, one per request
        self.requests: list[tuple[str, str]] = []  # (path, idempotency key)
        self.lock = threading.Lock()
        self.port = 0

    def answer(self, path: str, key: str) -> int:
        with self.lock:
            self.requests.append((path, key))
            return self.script.pop(0) if self.script else self.status

    def count(self) -> int:
        with self.lock:
            return len(self.requests)


@pytest.fixture
def target() -> Iterator[Target]:
    recorder = Target()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            status = recorder.answer(self.path, self.headers.get("Idempotency-Key", ""))
            body = b'{"ok": true}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def engine_for(database_url: str, **settings: Any) -> Any:
    from infrastructure.settings import Settings
    from tests.containers import build_engine

    return build_engine(
        Settings(
            database_url=database_url,
            api_keys="k=acme:admin",
            db_pool_size=4,
            breaker_open_seconds=OPEN_SECONDS,
            action_retry_initial=0.05,
            **settings,
        )
    )


@pytest.fixture
def engine(database_url: str) -> Iterator[Any]:
    built = engine_for(database_url, egress_allow="127.0.0.1")
    yield built
    built.close()


def publish_call(engine: Any, name: str, url: str, max_attempts: int) -> None:
    engine.definitions.publish(
        TENANT,
        {
            "name": name,
            "nodes": [
                {
                    "id": "call",
                    "type": "service_task",
                    "action": {"type": "http", "url": url},
                    "retry": {"max_attempts": max_attempts, "initial_interval": "PT0.05S"},
                    "timeout": "PT10S",
                },
                {"id": "done", "type": "end"},
            ],
            "routes": [{"from": "call", "to": "done"}],
        },
    )


def start(engine: Any, name: str, count: int = 1) -> list[UUID]:
    return [
        UUID(engine.instances.start(StartInstance(TENANT, name))[0]["id"]) for _ in range(count)
    ]


def statuses(engine: Any, ids: list[UUID]) -> list[str]:
    return [engine.instances.get(TENANT, i)["status"] for i in ids]


def tick_until(worker: TaskWorker, condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        if worker.tick() == 0:
            time.sleep(0.02)  # nothing due: the next poll


def attempts(engine: Any, ids: list[UUID]) -> list[int]:
    with engine.core.datastore.transaction(commit=False) as curs:
        curs.execute(
            "SELECT attempt FROM activities WHERE instance_id = ANY(%s) ORDER BY instance_id",
            (ids,),
        )
        return [row["attempt"] for row in curs.fetchall()]


def test_an_open_breaker_defers_activities_until_the_target_recovers(
    engine: Any, target: Target
) -> None:
    # Given a target that fails every call, and instances allowed 6 attempts each
    url = f"http://127.0.0.1:{target.port}/orders"
    publish_call(engine, "call-target", url, max_attempts=6)
    target.status = 500
    ids = start(engine, "call-target", count=4)
    worker = TaskWorker(engine, worker_id="w1")
    breaker = f"host:127.0.0.1:{target.port}"
    try:
        # When the worker keeps calling it, its breaker opens (≥ 10 calls, ≥ 50 % failed)
        tick_until(
            worker, lambda: engine.core.breakers.states().get(breaker, {}).get("state") == "open"
        )
        calls_when_open = target.count()
        assert 10 <= calls_when_open < 24

        # Then while it is open nothing calls the target and no attempt is spent
        spent = attempts(engine, ids)
        opened = time.monotonic()
        while time.monotonic() - opened < OPEN_SECONDS / 2:
            worker.tick()
            time.sleep(0.02)
        assert target.count() == calls_when_open
        assert attempts(engine, ids) == spent
        assert statuses(engine, ids) == ["running"] * 4

        # When the target recovers, the breaker half-opens and the deferred activities run
        target.status = 200
        tick_until(worker, lambda: statuses(engine, ids) == ["completed"] * 4)
    finally:
        worker.close()
    # Then no instance failed meanwhile, and the breaker closed again
    assert engine.core.breakers.states()[breaker]["state"] == "closed"


def test_without_a_breaker_the_same_outage_fails_the_instances(engine: Any, target: Target) -> None:
    # The negative control: the registry without breakers spends every attempt
    engine.actions.breakers = None
    url = f"http://127.0.0.1:{target.port}/orders"
    publish_call(engine, "call-target", url, max_attempts=6)
    target.status = 500
    ids = start(engine, "call-target", count=4)
    worker = TaskWorker(engine, worker_id="w1")
    try:
        tick_until(worker, lambda: "running" not in statuses(engine, ids))
    finally:
        worker.close()
    assert statuses(engine, ids) == ["failed"] * 4


def test_503_then_200_inside_one_attempt_succeeds_with_one_attempt(
    engine: Any, target: Target
) -> None:
    # Given a target answering 503 once, then 200, and a node allowed one attempt only
    publish_call(engine, "flaky", f"http://127.0.0.1:{target.port}/flaky", max_attempts=1)
    target.script = [503]
    ids = start(engine, "flaky")
    worker = TaskWorker(engine, worker_id="w1")
    try:
        tick_until(worker, lambda: statuses(engine, ids) != ["running"])
    finally:
        worker.close()
    # Then the instance completed with one attempt recorded; both requests carried its key
    assert statuses(engine, ids) == ["completed"]
    assert attempts(engine, ids) == [1]
    keys = [key for _, key in target.requests]
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0].endswith(":call:1")


class StubResolver:
    """A local resolver: answers from a table, never asks DNS, records the questions."""

    def __init__(self, table: dict[str, list[str]]):
        self.table = table
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return self.table[host]


def test_a_production_worker_refuses_internal_addresses_and_allows_an_allow_listed_one(
    database_url: str, target: Target
) -> None:
    # Given a production-mode worker (DATABASE_URL set) whose allow-list names "localhost"
    engine = engine_for(database_url, egress_allow="localhost")
    resolver = StubResolver({"internal.example": ["127.0.0.1"], "localhost": ["127.0.0.1"]})
    http_action = engine.actions.http
    http_action.egress = dataclasses.replace(http_action.egress, resolver=resolver)
    refused = {
        "loopback": f"http://127.0.0.1:{target.port}/x",
        "private": "http://10.0.0.1/x",
        "metadata": "http://169.254.169.254/latest/meta-data/",
        "resolves-to-loopback": f"http://internal.example:{target.port}/x",
    }
    for name, url in refused.items():
        publish_call(engine, name, url, max_attempts=3)
    publish_call(engine, "allowed", f"http://localhost:{target.port}/allowed", max_attempts=1)
    ids = {name: start(engine, name)[0] for name in [*refused, "allowed"]}
    worker = TaskWorker(engine, worker_id="w1")
    began = time.monotonic()
    try:
        tick_until(worker, lambda: "running" not in statuses(engine, list(ids.values())))
        elapsed = time.monotonic() - began
        views = {name: engine.instances.get(TENANT, i) for name, i in ids.items()}
    finally:
        worker.close()
        engine.close()
    # Then each refused call failed its instance at once, with a clear error, one attempt
    # (not retryable), and nothing reached the target but the allow-listed call
    for name in refused:
        assert views[name]["status"] == "failed", name
        assert "egress refused" in views[name]["error"]["message"], views[name]["error"]
        assert "after 1 attempt" in views[name]["error"]["message"]
    assert views["allowed"]["status"] == "completed", views["allowed"].get("error")
    assert [path for path, _ in target.requests] == ["/allowed"]
    assert "internal.example" in resolver.asked
    assert elapsed < 10  # never a hang


def test_a_redirect_to_an_internal_address_is_refused_before_any_connection() -> None:
    from infrastructure.actions.outbound import EgressPolicy, EgressRefusedError, guarded_client

    # Given a local server (allow-listed) redirecting to the metadata address
    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    policy = EgressPolicy.parse("127.0.0.1", production=True)
    try:
        # When a client following redirects calls it, the hop is checked like the first
        with (
            guarded_client(policy, follow_redirects=True, timeout=5) as client,
            pytest.raises(EgressRefusedError, match="metadata"),
        ):
            client.get(f"http://127.0.0.1:{server.server_address[1]}/start")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
