"""Operations against real processes: every worker's probe port (live, ready, detailed
health, /metrics) and its clean exit on SIGTERM; the API's /metrics; JSON logs that never
carry a callback token; the API draining a request in flight on SIGTERM; and one trace
crossing from the API process to a standalone task worker and on to the called target."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

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
    wait_for_status,
)
from tests.e2e.flow_support import calling
from tests.e2e.worker_processes import WorkerProcess, start_worker

pytestmark = pytest.mark.e2e

EXIT_SECONDS = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return found


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The API only, logging JSON lines; the workers of these tests are processes."""
    workdir = tmp_path_factory.mktemp("waymark-e2e-ops")
    env = server_env(
        module_database_url,
        workdir,
        WAYMARK_RUN_WORKERS_IN_PROCESS="false",
        WAYMARK_LOG_FORMAT="json",
    )
    with serving(env, workdir) as running:
        yield running


@pytest.mark.parametrize("kind", ["timers", "cleanup"])  # tasks: test_worker_processes.py
def test_every_worker_serves_probes_and_metrics_then_exits_0_on_sigterm(
    module_database_url: str, tmp_path: Path, kind: str
) -> None:
    port = free_port()
    env = server_env(
        module_database_url,
        tmp_path,
        WAYMARK_WORKER_PROBE_PORT=str(port),
        WAYMARK_WORKER_SHUTDOWN_GRACE="5",
    )
    log = tmp_path / "w.log"
    worker = _cleanup_worker(env, log) if kind == "cleanup" else start_worker(kind, env, log)
    base = f"http://127.0.0.1:{port}"
    try:
        live = wait_for(lambda: _get(base + "/health/live"), what="the probe port")
        assert live.status_code == 200 and live.json()["status"] == "ok"
        ready = httpx.get(base + "/health/ready", timeout=5)
        assert ready.status_code == 200, ready.text
        report = ready.json()
        assert report["status"] in ("ok", "degraded")
        database = report["components"]["database"]
        assert database["status"] == "up" and database["duration_ms"] >= 0
        assert "breakers" in report["components"] and "instances" in report["components"]
        assert httpx.head(base + "/health").status_code == 200
        scraped = httpx.get(base + "/metrics", timeout=5)
        assert scraped.headers["content-type"].startswith("text/plain")
        names = {name for name, _ in metric_samples(scraped.text)}
        assert {"workflow_worker_ticks_total", "workflow_db_pool_max"} <= names
        assert "workflow_system_gauges_up" in names  # this worker reads the database gauges

        signalled = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        code = worker.process.wait(EXIT_SECONDS)
        assert code == 0, worker.text()
        assert time.monotonic() - signalled < 5 + 2
        with pytest.raises(httpx.TransportError):  # the probe port closed with it
            httpx.get(base + "/health/live", timeout=2)
    finally:
        terminate(worker.process)


def _cleanup_worker(env: dict[str, str], log: Path) -> WorkerProcess:
    from tests.e2e.conftest import waymark

    worker = WorkerProcess(waymark("worker", "cleanup", env=env, log=log), log)
    worker.wait_for_log("started (poll every")
    return worker


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2)
    except httpx.TransportError:
        return None


def test_a_taken_probe_port_does_not_stop_the_worker(
    module_database_url: str, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # noqa: S104 - the probe server's default interface
        taken.listen()
        port = taken.getsockname()[1]
        env = server_env(module_database_url, tmp_path, WAYMARK_WORKER_PROBE_PORT=str(port))
        worker = start_worker("timers", env, tmp_path / "w.log")
        try:
            assert "cannot listen on" in worker.text()
        finally:
            assert terminate(worker.process) == 0


def test_the_api_serves_request_metrics_by_route_template(server: Server) -> None:
    with server.client("k-acme") as acme:
        name = unique("metered")
        publish(acme, calling(name, "http://127.0.0.1:9/never"))
        missing = acme.get(f"/v1/instances/{UUID(int=7)}")
        assert missing.status_code == 404
        token = "tok-" + unique("cb")
        acme.post(f"/v1/callbacks/{token}", json={})
        scraped = httpx.get(server.base_url + "/metrics", timeout=5)
    assert scraped.status_code == 200
    found = metric_samples(scraped.text)
    route = (("method", "GET"), ("route", "/v1/instances/{instance_id}"), ("status", "404"))
    assert found[("http_requests_total", route)] >= 1
    assert (
        found[
            (
                "http_requests_total",
                (("method", "POST"), ("route", "/v1/definitions"), ("status", "201")),
            )
        ]
        >= 1
    )
    assert token not in scraped.text and str(UUID(int=7)) not in scraped.text
    assert found[("workflow_system_gauges_up", ())] == 1


def test_json_logs_are_json_lines_and_never_carry_a_callback_token(server: Server) -> None:
    token = "secret-token-" + unique("cb")
    with server.client(None) as anonymous:
        anonymous.post(f"/v1/callbacks/{token}", json={"a": 1})
        anonymous.get("/health")

    def logged() -> list[dict[str, Any]] | None:
        entries = [json.loads(line) for line in _lines(server.log)]
        return entries if any("/v1/callbacks/" in e["message"] for e in entries) else None

    entries = wait_for(logged, what="the callback's access log line")
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    assert token not in server.log.read_text()
    assert any("/v1/callbacks/<redacted>" in e["message"] for e in entries)


def _lines(log: Path) -> list[str]:
    # Every line the server wrote is JSON (uvicorn's too); none is a traceback fragment.
    return [line for line in log.read_text().splitlines() if line.strip()]


def test_sigterm_drains_a_request_in_flight_and_exits_0(
    module_database_url: str, tmp_path: Path
) -> None:
    env = server_env(module_database_url, tmp_path, WAYMARK_API_SHUTDOWN_GRACE="10")
    with serving(env, tmp_path) as running:
        host, port = running.base_url.removeprefix("http://").split(":")
        body = json.dumps(calling(unique("drained"), "http://127.0.0.1:9/x")).encode()
        sock = socket.create_connection((host, int(port)), timeout=10)
        try:
            head = (
                f"POST /v1/definitions HTTP/1.1\r\nHost: {host}\r\n"
                "Authorization: Bearer k-acme\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            sock.sendall(head + body[:10])  # the request is in flight: half its body sent
            process = _server_process(running)
            process.send_signal(signal.SIGTERM)
            time.sleep(0.5)  # let the signal land while the body is incomplete
            sock.sendall(body[10:])
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        finally:
            sock.close()
        assert answer.startswith(b"HTTP/1.1 201"), answer[:200]
        assert process.wait(EXIT_SECONDS) == 0


def _server_process(running: Server) -> Any:
    """The `waymark serve` process listening on the server's port (its pid via psutil)."""
    import psutil

    port = int(running.base_url.rsplit(":", 1)[1])
    for conn in psutil.net_connections(kind="tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
            return psutil.Process(conn.pid)
    raise AssertionError("no process listens on the server's port")


def test_one_trace_crosses_from_the_api_to_a_task_worker_and_the_target(
    module_database_url: str, tmp_path: Path, target: Target
) -> None:
    traced = {"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "always_on"}
    env = server_env(
        module_database_url, tmp_path, WAYMARK_RUN_WORKERS_IN_PROCESS="false", **traced
    )
    with serving(env, tmp_path) as running, running.client("k-acme") as acme:
        worker = start_worker(
            "tasks", server_env(module_database_url, tmp_path, **traced), tmp_path / "tasks.log"
        )
        try:
            path = "/" + unique("traced")
            name = unique("traced")
            publish(acme, calling(name, target.base_url + path))
            view = start(acme, name)
            wait_for_status(acme, view["id"], "completed")
        finally:
            assert terminate(worker.process) == 0
    (received,) = target.received(path)
    traceparent = received.headers["traceparent"]
    with psycopg.connect(module_database_url) as conn:
        (stored,) = conn.execute(
            "SELECT trace_context FROM activities WHERE instance_id = %s", (UUID(view["id"]),)
        ).fetchone() or (None,)
    # The API process stored its trace in the activity; the worker process continued it,
    # and its HTTP call carried it to the target.
    assert stored is not None
    assert traceparent.split("-")[1] == stored.split("-")[1]
