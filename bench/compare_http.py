"""`dbos-compare`'s HTTP runs: `waymark serve` (workers in process; or `--workers 2`) in its
own process, driven by a load generator.

The driver (`--http-driver`): `generator` (the default) is bench/closedloop_gen.py, a process
of its own: `connections` keep-alive connections (bench/http_client.py) on one event loop,
each posting the next start as soon as the previous was answered. `threads` is the former
driver, kept for comparison: client threads of the bench process, each with its own
keep-alive `httpx.Client` (~3-5x the generator's client CPU per request, taken from the same two
cores). Completion is read from the `instances` table either way.

CPU per workflow (bench/cpu.py): the `waymark serve` process tree (its API processes and
worker processes included) and PostgreSQL's, read from /proc right before the first measured
start and when the last workflow completed; the generator's own CPU per request; and the
machine's busy fraction over the same window.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from bench.compare_base import (
    THREE_STEP,
    CompareSizes,
    Run,
    backends,
    drive_threads,
    finish,
    per_workflow,
    pg_pid,
    snapshot,
    wait_completed,
)
from bench.cpu import Window
from bench.harness import (
    API_KEY,
    Bench,
    _terminate,
    progress,
    serving_process,
    spawn_generator,
)

DRIVERS = ("generator", "threads")
WARM = 16  # untimed starts before a run (at least one per connection)


def run_waymark_http(
    bench: Bench,
    sizes: CompareSizes,
    pool_size: int,
    api_workers: int = 1,
    driver: str = "generator",
) -> Run:
    connected = backends(bench.database_url, "bench")
    before = snapshot(bench.database_url, "bench")
    extra = {"WAYMARK_API_WORKERS": str(api_workers)}
    warm = max(WARM, sizes.waymark_clients)
    suffix = (f"/{api_workers}api" if api_workers > 1 else "") + (
        "/httpx-threads" if driver == "threads" else ""
    )
    name = f"waymark/http/{sizes.waymark_clients}c{suffix}"
    with serving_process(bench, pool_size, workers_in_process=True, extra_env=extra) as (
        base_url,
        server,
    ):
        window = Window({"app": server.pid, "postgres": pg_pid(bench)})
        tag = f"http-{time.time_ns()}"
        if driver == "threads":
            run = _drive_httpx_threads(name, bench, sizes, base_url, tag, warm, window)
        else:
            run = _drive_generator(name, bench, sizes, base_url, tag, warm, window)
    # The server has exited; its backends flush their counters as they leave.
    after = snapshot(bench.database_url, "bench", backends_at_most=connected)
    run.per_workflow = per_workflow(before, after, run.workflows + warm)
    by = (
        f"{sizes.waymark_clients} httpx threads of the bench process"
        if driver == "threads"
        else f"closed-loop generator process, {sizes.waymark_clients} keep-alive connections"
    )
    run.note = (
        f"waymark serve (workers in process) <- {by}"
        if api_workers == 1
        else f"waymark serve --workers {api_workers} (+ tasks, timers worker processes) <- {by}"
    )
    return run


def _drive_generator(
    name: str, bench: Bench, sizes: CompareSizes, base_url: str, tag: str, warm: int, window: Window
) -> Run:
    plan = {
        "base_url": base_url,
        "api_key": API_KEY,
        "definition": THREE_STEP["name"],
        "correlation_id": tag,
        "count": sizes.workflows,
        "connections": sizes.waymark_clients,
        "warm": warm,
        "warm_correlation_id": "warm-http",
        "seconds": sizes.seconds,
    }
    log = bench.workdir / "closedloop.log"
    with log.open("ab") as err:
        process = spawn_generator("bench.closedloop_gen", stderr=err)
    try:
        assert process.stdin is not None and process.stdout is not None  # noqa: S101
        process.stdin.write(json.dumps(plan) + "\n")
        process.stdin.flush()
        ready = _line(process, log)
        if not ready.get("ready"):
            raise RuntimeError(f"the load generator did not get ready: {ready}")
        window.start()
        process.stdin.write("go\n")
        process.stdin.flush()
        wait_completed(bench, sizes, tag, alive=lambda: process.poll() in (None, 0))
        window.stop()
        report = _line(process, log)
        process.wait(30)
    finally:
        _terminate(process)  # type: ignore[arg-type]
    if report["errors"]:
        progress(f"{name}: start errors {report['errors']}")
    run = finish(name, bench, sizes, tag, float(report["began"]))
    run.generator = report
    requests = int(report["ok"]) + sum(report["errors"].values())
    run.take_cpu(window, requests)
    # The generator's own getrusage is exact for its process (the window has no reading).
    if requests:
        run.cpu_ms["generator"] = float(report["cpu_seconds"]) * 1000 / requests
    progress(
        f"{name}: generator ({report['event_loop']}) {report['ok']} starts answered, start "
        f"p50 {report['p50_ms']} p99 {report['p99_ms']} ms, "
        f"{report['cpu_ms_per_request']} ms CPU/request"
    )
    return run


def _line(process: subprocess.Popen[str], log: Any) -> dict[str, Any]:
    assert process.stdout is not None  # noqa: S101
    raw = process.stdout.readline()
    if not raw:
        process.wait(10)
        raise RuntimeError(f"the load generator exited {process.returncode} (see {log})")
    return dict(json.loads(raw))


def _drive_httpx_threads(
    name: str, bench: Bench, sizes: CompareSizes, base_url: str, tag: str, warm: int, window: Window
) -> Run:
    import httpx

    clients = [
        httpx.Client(
            base_url=base_url, timeout=30.0, headers={"Authorization": f"Bearer {API_KEY}"}
        )
        for _ in range(sizes.waymark_clients)
    ]
    window.own = "generator"  # the bench process: its client threads (and the polling)
    try:

        def start(k: int, i: int, tag: str = tag) -> None:
            body = {"definition": THREE_STEP["name"], "input": {"n": i}, "correlation_id": tag}
            response = clients[k].post("/v1/instances", json=body)
            if response.status_code != 201:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")

        for i in range(warm):
            start(i % len(clients), i, "warm-http")
        return drive_threads(name, bench, sizes, start, tag, window)
    finally:
        for client in clients:
            client.close()
