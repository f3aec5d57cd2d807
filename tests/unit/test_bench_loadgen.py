"""bench/cpu.py (a process tree's CPU from /proc) and bench/closedloop_gen.py (dbos-compare's
HTTP load generator) against a stub HTTP server: what they report is what happened."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench import cpu
from bench.harness import spawn_generator

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\n"

pytestmark = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs Linux /proc")


def test_tree_seconds_counts_a_child_and_a_reaped_grandchild() -> None:
    # The child burns 0.4 s itself, then runs (and reaps) a grandchild burning 0.4 s: the
    # grandchild's time must still count (in the child's cutime), once.
    script = BURN + f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {BURN!r}])\n"
    script += "import time\ntime.sleep(2)\n"  # alive while we read
    child = subprocess.Popen([sys.executable, "-c", script])  # noqa: S603
    try:
        before_me = cpu.tree_seconds(os.getpid())
        seconds, start = 0.0, time.monotonic()
        while time.monotonic() - start < 20.0 and seconds < 0.75:
            seconds = cpu.tree_seconds(child.pid)
            time.sleep(0.05)
        assert 0.75 <= seconds < 1.5
        assert cpu.tree_seconds(os.getpid()) - before_me >= 0.5  # our tree includes the child
        # Negative control: CPU burnt outside the child's tree is not counted in it.
        exec(BURN)  # noqa: S102
        assert cpu.tree_seconds(child.pid) - seconds < 0.1
    finally:
        child.wait(30)
    assert cpu.tree_seconds(child.pid) == 0.0  # gone: no reading
    assert cpu.tree_seconds(None) == 0.0


def test_busy_fraction_and_window() -> None:
    assert cpu.busy((10, 100), (60, 200)) == 0.5
    assert cpu.busy((10, 100), (10, 100)) is None
    window = cpu.Window({}, own="me").start()
    exec(BURN)  # noqa: S102 - 0.4 s of this process's CPU
    window.stop()
    assert window.seconds["me"] >= 0.35
    assert window.busy is not None and 0.0 < window.busy <= 1.0


class _Stub(BaseHTTPRequestHandler):
    bodies: list[dict[str, object]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Stub.bodies.append({"auth": self.headers["Authorization"], **body})
        n = body["input"]["n"]
        status = 503 if body["correlation_id"] == "run" and n % 10 == 0 else 201
        payload = b"{}"
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stub_url() -> Iterator[str]:
    _Stub.protocol_version = "HTTP/1.1"  # keep-alive
    _Stub.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_closed_loop_generator_reports_what_it_sent(stub_url: str) -> None:
    plan = {
        "base_url": stub_url,
        "api_key": "k",
        "definition": "three",
        "correlation_id": "run",
        "count": 50,
        "connections": 4,
        "warm": 8,
        "warm_correlation_id": "warm",
        "seconds": 30,
    }
    gen = spawn_generator("bench.closedloop_gen")
    assert gen.stdin is not None and gen.stdout is not None
    gen.stdin.write(json.dumps(plan) + "\n")
    gen.stdin.flush()
    ready = json.loads(gen.stdout.readline())
    assert ready == {"ready": True, "warm_ok": 8}
    assert len(_Stub.bodies) == 8  # nothing measured is sent before "go"
    gen.stdin.write("go\n")
    gen.stdin.flush()
    report = json.loads(gen.stdout.readline())
    assert gen.wait(30) == 0
    # 50 starts, every tenth answered 503: 45 answered, 5 errors, each n sent exactly once.
    assert report["ok"] == 45 and report["errors"] == {"http 503": 5}
    run = [b for b in _Stub.bodies if b["correlation_id"] == "run"]
    assert sorted(b["input"]["n"] for b in run) == list(range(50))  # type: ignore[index]
    assert {b["definition"] for b in run} == {"three"} and {b["auth"] for b in run} == {"Bearer k"}
    assert report["connections"] == 4 and report["p50_ms"] <= report["p99_ms"] <= report["max_ms"]
    assert report["ended"] >= report["began"] > 0
    assert report["cpu_seconds"] > 0 and report["cpu_ms_per_request"] > 0
