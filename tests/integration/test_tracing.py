"""One trace from the command through the engine, the task worker's action (an HTTP client
span whose `traceparent` reaches the target), the timer that later resumes the instance and
the outbox publish — across the database hop: the context is read back from the stored
activity and bookmark rows, as another process would. Spans captured in memory."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest
from opentelemetry import trace

from application.commands import StartInstance
from tests.tracing_support import spans_named, trace_id_of, traced

pytestmark = pytest.mark.integration

TENANT = "acme"


class Target:
    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []


@pytest.fixture
def target() -> Iterator[tuple[Target, str]]:
    seen = Target()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.headers.append({k.lower(): v for k, v in self.headers.items()})
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield seen, f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def definition(url: str) -> dict[str, Any]:
    return {
        "name": "traced-flow",
        "nodes": [
            {"id": "call", "type": "service_task", "action": {"type": "http", "url": url}},
            {"id": "pause", "type": "timer", "duration": "PT1S"},
            {"id": "done", "type": "end"},
        ],
        "routes": [{"from": "call", "to": "pause"}, {"from": "pause", "to": "done"}],
    }


def settings_for(database_url: str) -> Any:
    from infrastructure.settings import Settings

    return Settings(
        database_url=database_url,
        api_keys="k=acme:admin",
        db_pool_size=3,
        egress_allow="127.0.0.1",
    )


def stored_trace(database_url: str, table: str, instance_id: str) -> list[str | None]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            f"SELECT trace_context FROM {table} WHERE instance_id = %s",  # noqa: S608
            (UUID(instance_id),),
        ).fetchall()
    return [r[0] for r in rows]


def run_flow(database_url: str, url: str) -> tuple[Any, str]:
    """Start the flow under a request span, run its action, then fire its timer."""
    from infrastructure.bootstrap import build_api
    from infrastructure.worker_bootstrap import build_task_worker, build_timer_worker
    from workers.task_worker import TaskWorker

    settings = settings_for(database_url)
    api = build_api(settings)
    tasks = TaskWorker(build_task_worker(settings, core=api.core))
    timers = build_timer_worker(settings, core=api.core)
    try:
        api.definitions.publish(TENANT, definition(url))
        tracer = trace.get_tracer("test")
        with tracer.start_as_current_span("POST /v1/instances"):
            view, _ = api.instances.start(StartInstance(TENANT, "traced-flow"))
        instance_id = str(view["id"])
        # The worker's tick runs outside any span: only the stored row links it.
        assert tasks.tick() == 1
        deadline = time.monotonic() + 10
        while api.instances.get(TENANT, UUID(instance_id))["status"] != "completed":
            assert time.monotonic() < deadline, "the timer did not fire"
            timers.timers.fire_due(10)
            time.sleep(0.1)
        return api, instance_id
    finally:
        tasks.close()


def test_one_trace_follows_the_command_the_action_and_the_timer(
    database_url: str, target: tuple[Target, str]
) -> None:
    seen, url = target
    with traced() as exporter:
        api, instance_id = run_flow(database_url, url)
        try:
            (root,) = spans_named(exporter, "POST /v1/instances")
            trace_id = root.context.trace_id
            # The activity's row carries the starting command's context...
            (stored,) = stored_trace(database_url, "activities", instance_id)
            assert stored is not None and trace_id_of(stored) == trace_id
            # ...the worker's action continues it, and the HTTP call propagates it.
            (action,) = spans_named(exporter, "workflow.activity http")
            assert action.context.trace_id == trace_id
            assert action.attributes["workflow.instance_id"] == instance_id
            assert action.attributes["workflow.node_id"] == "call"
            (headers,) = seen.headers
            assert trace_id_of(headers["traceparent"]) == trace_id
            client = [s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.CLIENT]
            assert client and all(s.context.trace_id == trace_id for s in client)
            # The timer set while recording the result, and its firing, stay in the trace.
            (timer,) = spans_named(exporter, "workflow.timer timer")
            assert timer.context.trace_id == trace_id
            assert timer.attributes["workflow.node_id"] == "pause"
            commands = spans_named(exporter, "workflow.command")
            assert len(commands) >= 3  # start, record the result, fire the timer
            assert {s.context.trace_id for s in commands} == {trace_id}
            assert all(s.attributes["workflow.definition"] == "traced-flow" for s in commands)
            steps = {
                (s.attributes["workflow.node_id"], s.attributes["workflow.node_type"])
                for s in spans_named(exporter, "workflow.step")
            }
            assert {("call", "service_task"), ("pause", "timer"), ("done", "end")} <= steps
            assert all(
                s.context.trace_id == trace_id for s in spans_named(exporter, "workflow.step")
            )
            outbox_publish(api, exporter, trace_id)
        finally:
            api.close()


def outbox_publish(api: Any, exporter: Any, trace_id: int) -> None:
    """The outbox's message of the scheduled activity carries the trace in its headers."""
    from infrastructure.bootstrap import outbox_tables
    from infrastructure.outbox import OutboxPublisher, RetryPolicy

    class Sink:
        def __init__(self) -> None:
            self.messages: list[Any] = []

        async def send(self, message: Any) -> None:
            self.messages.append(message)

        async def stop(self) -> None:
            return None

    sink = Sink()
    publisher = OutboxPublisher(
        outbox_tables(api.core), sink, batch_size=100, retry=RetryPolicy(attempts=1)
    )
    try:
        publisher.publish_batch()
    finally:
        publisher.close()
    scheduled = [
        dict(m.headers)
        for m in sink.messages
        if dict(m.headers)["ce_type"].decode().endswith("activity_scheduled")
    ]
    assert scheduled, [dict(m.headers)["ce_type"] for m in sink.messages]
    assert trace_id_of(scheduled[0]["traceparent"].decode()) == trace_id
    spans = spans_named(exporter, "workflow.outbox publish")
    assert len(spans) == len(sink.messages)
    assert all(s.kind == trace.SpanKind.PRODUCER for s in spans)


def test_untraced_processes_store_no_trace_context(
    database_url: str, target: tuple[Target, str]
) -> None:
    # Negative control: without tracing on, nothing is stored and nothing propagated.
    seen, url = target
    api, instance_id = run_flow(database_url, url)
    try:
        assert stored_trace(database_url, "activities", instance_id) == [None]
        assert set(stored_trace(database_url, "bookmarks", instance_id)) == {None}
        assert "traceparent" not in seen.headers[0]
    finally:
        api.close()
