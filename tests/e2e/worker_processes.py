"""Helpers for tests that run standalone `waymark worker …` processes beside `waymark serve`:
a target whose calls take as long as the test says, the worker subprocess, its log, and the
activity rows (leases) in the shared database."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from tests.e2e.conftest import wait_for, waymark

HOLD_LIMIT_SECONDS = 60.0  # a held call is answered by then at the latest


@dataclass
class SlowTarget:
    """An HTTP target whose calls wait until `open_gate()` (or `hold` seconds when set)."""

    base_url: str = ""
    hold: float | None = None
    paths: list[str] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self, path: str) -> int:
        with self.lock:
            return sum(1 for p in self.paths if p == path)

    def open_gate(self) -> None:
        self.gate.set()


def serve_slow_target() -> tuple[SlowTarget, http.server.ThreadingHTTPServer]:
    target = SlowTarget()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server naming
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            with target.lock:
                target.paths.append(self.path)
            if target.hold is not None:
                time.sleep(target.hold)  # the remote system taking its time
            else:
                target.gate.wait(HOLD_LIMIT_SECONDS)
            payload = json.dumps({"ok": True}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            try:
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the worker that called was killed or gave up: nobody to answer

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    target.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, name="slow-target", daemon=True).start()
    return target, server


@dataclass
class WorkerProcess:
    """A running `waymark worker <kind>` and its log."""

    process: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for_log(self, fragment: str, timeout: float = 30.0) -> None:
        def probe() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"worker exited with {self.process.returncode}:\n{self.text()}"
                )
            return fragment in self.text()

        wait_for(probe, timeout=timeout, what=f"{fragment!r} in the worker log")


def start_worker(kind: str, env: dict[str, str], log: Path) -> WorkerProcess:
    """`waymark worker <kind>`, once it listens for notifications (its first tick is done)."""
    worker = WorkerProcess(waymark("worker", kind, env=env, log=log), log)
    if env.get("WAYMARK_WORKER_LISTEN", "true") != "false":
        worker.wait_for_log("listening on")
    else:
        worker.wait_for_log("started (poll every")
    return worker


def activity_rows(database_url: str, instance_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT id, status, attempt, locked_by, locked_until FROM activities "
            "WHERE instance_id = %s",
            (UUID(instance_id),),
        ).fetchall()


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def timer_definition(name: str, duration: str) -> dict[str, Any]:
    return {
        "name": name,
        "nodes": [
            {"id": "pause", "type": "timer", "duration": duration},
            {"id": "done", "type": "end"},
        ],
        "routes": [{"from": "pause", "to": "done"}],
    }
