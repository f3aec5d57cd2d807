"""The probe port of a worker process: `/health/live`, `/health/ready`, `/health`, `/metrics`.

A worker imports no web framework, so this is the standard library's threading HTTP server
on a daemon thread. Liveness asks only the process itself (`live()`: the worker loop comes
round); readiness and the detailed report run the health checks (infrastructure/health.py).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from infrastructure import metrics
from infrastructure.health import Check, evaluate

logger = logging.getLogger(__name__)


class ProbeServer:
    """Serves the probes until `close()`; `port` is the bound port (useful with port 0)."""

    def __init__(
        self,
        host: str,
        port: int,
        checks: Callable[[], Iterable[Check]],
        live: Callable[[], tuple[bool, dict[str, Any]]],
    ):
        self.checks = checks
        self.live = live
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                server.handle(self, head=False)

            def do_HEAD(self) -> None:  # noqa: N802
                server.handle(self, head=True)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                logger.debug("probe: " + format, *args)

        self._http = ThreadingHTTPServer((host, port), Handler)
        self._http.daemon_threads = True
        self.port = int(self._http.server_address[1])
        self._thread = threading.Thread(
            target=self._http.serve_forever, name="waymark-probes", daemon=True
        )

    def start(self) -> ProbeServer:
        self._thread.start()
        logger.info("probes and /metrics on port %d", self.port)
        return self

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def handle(self, request: BaseHTTPRequestHandler, *, head: bool) -> None:
        path = request.path.split("?", 1)[0]
        try:
            status, content_type, body = self._answer(path)
        except Exception:
            logger.exception("probe %s failed", path)
            status, content_type, body = 500, "application/json", b'{"status":"error"}'
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        request.send_header("Cache-Control", "no-store")
        request.end_headers()
        if not head:
            request.wfile.write(body)

    def _answer(self, path: str) -> tuple[int, str, bytes]:
        if path == "/metrics":
            body, content_type = metrics.exposition()
            return 200, content_type, body
        if path == "/health/live":
            alive, detail = self.live()
            return _json(200 if alive else 503, {"status": "ok" if alive else "stalled", **detail})
        if path in ("/health", "/health/ready"):
            report = evaluate(self.checks())
            return _json(200 if report.ready else 503, report.as_dict())
        return _json(404, {"status": "not found"})


def _json(status: int, body: dict[str, Any]) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(body, default=str).encode()


def start_probe_server(
    host: str,
    port: int,
    checks: Callable[[], Iterable[Check]],
    live: Callable[[], tuple[bool, dict[str, Any]]],
) -> ProbeServer | None:
    """Start serving; None (logged) when the port cannot be bound: the worker still works."""
    try:
        return ProbeServer(host, port, checks, live).start()
    except OSError as exc:
        logger.error("probes: cannot listen on %s:%d (%s); no probes or /metrics", host, port, exc)
        return None
