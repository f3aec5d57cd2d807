"""End-to-end fixtures: `waymark serve` as a real subprocess on a free port, one per test
module (with a module-scoped database cloned from the migrated template), and a local HTTP
server standing in for the systems that service tasks call.

Tests share the module's server and database, so each one uses its own random names
(`unique()`), never state left by another test.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.conftest import _create_database, _drop_database
from tests.spec_examples import PURCHASE_APPROVAL_JSON

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
API_KEYS = "k-acme=acme:admin,k-globex=globex:admin,k-acme-viewer=acme:viewer"
TENANT_SECRETS = {"acme": "s3cret-acme", "globex": "s3cret-globex"}
STARTUP_SECONDS = 60.0
SHUTDOWN_SECONDS = 20.0


def unique(prefix: str) -> str:
    """A name no other test uses (definitions, correlation ids, keys, target paths)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_for(
    probe: Callable[[], T | None], *, timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or probe}: last {last!r}")


# --- the service-task target ----------------------------------------------------------------


@dataclass
class Recorded:
    """One request the target received (header names in lower case)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Target:
    """A local HTTP server that records every request and answers as it is told."""

    base_url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    # path prefix -> status code; anything else gets 200 {"ok": true}
    statuses: dict[str, int] = field(default_factory=dict)
    # path prefix -> the JSON body to answer (instead of {"ok": ..., "path": ...})
    replies: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, path_prefix: str, status: int = 500) -> None:
        with self.lock:
            self.statuses[path_prefix] = status

    def status_for(self, path: str) -> int:
        with self.lock:
            return next((s for p, s in self.statuses.items() if path.startswith(p)), 200)

    def reply(self, path_prefix: str, body: Any) -> None:
        with self.lock:
            self.replies[path_prefix] = body

    def reply_for(self, path: str) -> Any:
        with self.lock:
            return next((b for p, b in self.replies.items() if path.startswith(p)), None)

    def record(self, request: Recorded) -> None:
        with self.lock:
            self.requests.append(request)

    def received(self, path_prefix: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]


def _handler_for(target: Target) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            target.record(Recorded(self.command, self.path, headers, body))
            status = target.status_for(self.path)
            reply = target.reply_for(self.path)
            if reply is None:
                reply = {"ok": status < 400, "path": self.path}
            payload = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # keep test output quiet

    return Handler


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    recorder = Target()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(recorder))
    recorder.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="e2e-target", daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# --- the Waymark server -------------------------------------------------------------------


@pytest.fixture(scope="module")
def module_database_url(postgres_admin_url: str, migrated_template: str) -> Iterator[str]:
    """A migrated database shared by one module's tests (a copy of the template)."""
    from infrastructure.embedded_postgres import database_url_for

    name = f"e2e_{uuid.uuid4().hex[:16]}"
    _create_database(postgres_admin_url, name, template=migrated_template)
    try:
        yield database_url_for(postgres_admin_url, name)
    finally:
        _drop_database(postgres_admin_url, name)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failing test's report carries the tail of the server's log (500s are logged there)."""
    outcome = yield
    report = outcome.get_result()
    running = getattr(item, "funcargs", {}).get("server")
    if report.failed and isinstance(running, Server):
        report.sections.append(("waymark serve log (tail)", _log_tail(running.log)))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = 60) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Server:
    base_url: str
    log: Path

    def client(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30.0)


def server_env(database_url: str | None, workdir: Path, **extra: str) -> dict[str, str]:
    """The environment of a test server: our keys and secrets, fast polling, small bodies."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        {
            "WAYMARK_API_KEYS": API_KEYS,
            "WAYMARK_TENANT_SECRETS": ",".join(f"{t}={s}" for t, s in TENANT_SECRETS.items()),
            "WAYMARK_TASK_POLL_INTERVAL": "0.2",
            "WAYMARK_RUN_WORKERS_IN_PROCESS": "true",
            "WAYMARK_DB_CONNECT_TIMEOUT": "2",
            "WAYMARK_MAX_BODY_BYTES": "65536",
            "WAYMARK_DATA_DIR": str(workdir / "data"),
            # With DATABASE_URL the egress guard is on: the local test targets are allowed.
            "WAYMARK_EGRESS_ALLOW": "127.0.0.1,localhost",
            # One module's tests share one target host, failing on purpose on some paths:
            # its breaker must not defer the next test's calls (the breaker tests set
            # their own rule).
            "WAYMARK_BREAKER_MIN_CALLS": "1000000",
            # Suites (the fuzzer above all) send hundreds of requests a minute from one
            # address: the rate limits are tested on a server of their own.
            "WAYMARK_RATE_LIMIT_PER_KEY": "",
            "WAYMARK_RATE_LIMIT_PER_IP": "",
            "PYTHONUNBUFFERED": "1",
            # Worker processes' probe ports: a free one each (tests run side by side).
            "WAYMARK_WORKER_PROBE_PORT": "0",
            **({"DATABASE_URL": database_url} if database_url else {}),
            **extra,
        }
    )
    return env


def waymark(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Run the `waymark` command (as `python -m api.cli`, installed or not)."""
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "api.cli", *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@contextlib.contextmanager
def serving(env: dict[str, str], workdir: Path) -> Iterator[Server]:
    """`waymark serve` on a free port until ready (its database answers); SIGTERM after."""
    port = _free_port()
    running = Server(f"http://127.0.0.1:{port}", workdir / "server.log")
    process = waymark("serve", "--port", str(port), env=env, log=running.log)
    try:
        _wait_until_ready(process, running)
        yield running
    finally:
        terminate(process)
        if os.environ.get("WAYMARK_E2E_KEEP_LOGS"):
            print(f"server log: {running.log}")


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The module's server (task worker in-process), on the module's database."""
    workdir = tmp_path_factory.mktemp("waymark-e2e")
    with serving(server_env(module_database_url, workdir), workdir) as running:
        yield running


def _wait_until_ready(process: subprocess.Popen[bytes], server: Server) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"waymark serve exited with {process.returncode}:\n{_log_tail(server.log)}"
            )
        try:
            if httpx.get(server.base_url + "/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    terminate(process)
    raise RuntimeError(f"waymark serve not ready in {STARTUP_SECONDS} s:\n{_log_tail(server.log)}")


def terminate(process: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM, wait, then kill; the exit code (None if it had to be killed)."""
    if process.poll() is not None:
        return process.returncode
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(SHUTDOWN_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
        return None


@pytest.fixture
def acme(server: Server) -> Iterator[httpx.Client]:
    with server.client("k-acme") as client:
        yield client


@pytest.fixture
def globex(server: Server) -> Iterator[httpx.Client]:
    with server.client("k-globex") as client:
        yield client


@pytest.fixture
def anonymous(server: Server) -> Iterator[httpx.Client]:
    with server.client(None) as client:
        yield client


# --- small API helpers shared by the scenarios -------------------------------------------


def publish(client: httpx.Client, document: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/definitions", json=document)
    assert response.status_code == 201, response.text
    return response.json()


def start(client: httpx.Client, definition: str, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/instances", json={"definition": definition, **body})
    assert response.status_code in (200, 201), response.text
    return response.json()


def instance(client: httpx.Client, instance_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/instances/{instance_id}")
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_status(
    client: httpx.Client, instance_id: str, *statuses: str, timeout: float = 20.0
) -> dict[str, Any]:
    """The instance once its status is one of `statuses`."""

    def probe() -> dict[str, Any] | None:
        view = instance(client, instance_id)
        return view if view["status"] in statuses else None

    return wait_for(probe, timeout=timeout, what=f"instance {instance_id} to be {statuses}")


def open_bookmark(view: dict[str, Any], node_id: str) -> dict[str, Any]:
    found = [b for b in view["bookmarks"] if b["node_id"] == node_id]
    assert found, f"no open bookmark at {node_id}: {view['bookmarks']}"
    return found[0]


def open_tasks(client: httpx.Client, instance_id: str) -> list[dict[str, Any]]:
    response = client.get("/v1/tasks", params={"limit": 500})
    assert response.status_code == 200, response.text
    return [
        t
        for t in response.json()["items"]
        if t["instance_id"] == instance_id and t["status"] in ("open", "claimed")
    ]


def is_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """Assert `response` is an RFC 9457 problem of this type; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == f"https://waymark.dev/problems/{slug}", body
    assert body["status"] == status
    assert body["title"] and body["detail"]
    assert body["instance"] == response.request.url.path
    return body


# SPEC §2's example as published in the customer's guide.


def purchase_approval(name: str, target_url: str) -> dict[str, Any]:
    """The SPEC §2 example under `name`, its ERP call pointed at the local target."""
    document = json.loads(PURCHASE_APPROVAL_JSON)
    document["name"] = name
    notify = next(node for node in document["nodes"] if node["id"] == "notify")
    notify["action"]["url"] = target_url + "/po/{{ input.po_id }}/approved"
    return document


def post_signed(
    client: httpx.Client,
    path: str,
    payload: object,
    *,
    secret: str,
    at: int | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST `payload` as JSON with a `Waymark-Signature` made with `secret` (at `at`)."""
    from application.callbacks import sign

    body = json.dumps(payload).encode()
    signed = {
        "Content-Type": "application/json",
        "Waymark-Signature": sign(secret, body, int(time.time()) if at is None else at, path),
        **(headers or {}),
    }
    return client.post(path, content=body, headers=signed)
