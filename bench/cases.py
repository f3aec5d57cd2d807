"""The benchmarks: the definitions they start, how much each does, and one function each.

Every `bench_*` function takes the environment (`harness.Bench`) and the `Sizes` of the run,
warms up, measures with `harness.hammer()` and returns its table rows. See bench/README.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eventsourcing.domain import Aggregate

from application.commands import CompleteTask, StartInstance
from bench.definitions import approval_flow, service_flow
from bench.harness import (
    API_KEY,
    STOP,
    TENANT,
    THREADS,
    Bench,
    Result,
    hammer,
    progress,
    serving,
    warm_up,
)

# --- what they run -------------------------------------------------------------------------

NOOP = {
    "name": "bench-noop",
    "nodes": [
        {"id": "init", "type": "set", "variables": {"x": "1"}},
        {"id": "done", "type": "end"},
    ],
    "routes": [{"from": "init", "to": "done"}],
}
APPROVE = approval_flow("bench-approve")
SERVICE = service_flow("bench-service")
EXPRESSION = "input.amount > 10000 and vars.x in [1,2,3]"
DEFINITIONS = (NOOP, APPROVE, SERVICE)  # published by harness.environment()


# --- how much they do ----------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """How much each measurement does: a count, and a time cap that ends it earlier."""

    noop_1t: int
    noop_8t: int
    approve: int
    service: int
    raw_1t: int
    raw_8t: int
    http: int
    expressions: int
    timers: int  # due in one 10 s window (bench/timers.py)
    seconds: float  # time cap of one measurement (the drain of service-task gets 2x)


# Sized for about 2 minutes (full) and 25 s (quick) on 2 cores; the caps bound slower hosts.
FULL = Sizes(
    noop_1t=3_000,
    noop_8t=5_000,
    approve=1_500,
    service=2_000,
    raw_1t=4_000,
    raw_8t=8_000,
    http=2_000,
    expressions=100_000,
    timers=10_000,
    seconds=15.0,
)
QUICK = Sizes(
    noop_1t=500,
    noop_8t=800,
    approve=250,
    service=300,
    raw_1t=600,
    raw_8t=1_200,
    http=500,
    expressions=20_000,
    timers=1_000,
    seconds=3.0,
)


def timed(
    name: str,
    op: Callable[[int, int], Any],
    sizes: Sizes,
    total: int,
    *,
    threads: int = THREADS,
    note: str = "",
) -> Result:
    """`hammer()` under the run's time cap, named `name/<threads>t` after its thread count."""
    return hammer(
        f"{name}/{threads}t", op, threads=threads, total=total, seconds=sizes.seconds, note=note
    )


# --- 1. start-noop --------------------------------------------------------------------------


def start_noop_op(bench: Bench) -> Callable[[int, int], Any]:
    instances = bench.container.instances

    def op(k: int, i: int) -> None:
        view, _ = instances.start(StartInstance(TENANT, NOOP["name"], input={"n": i}))
        if view["status"] != "completed":
            raise RuntimeError(f"noop instance ended {view['status']}")

    return op


def bench_start_noop(bench: Bench, sizes: Sizes) -> list[Result]:
    op = start_noop_op(bench)
    warm_up(op, THREADS)
    note = "1 command/instance"
    return [
        timed("start-noop", op, sizes, sizes.noop_1t, threads=1, note=note),
        timed("start-noop", op, sizes, sizes.noop_8t, note=note),
    ]


# --- 2. start-approve -----------------------------------------------------------------------


def bench_start_approve(bench: Bench, sizes: Sizes) -> list[Result]:
    instances, tasks = bench.container.instances, bench.container.tasks

    def op(k: int, i: int) -> None:
        view, _ = instances.start(StartInstance(TENANT, APPROVE["name"]))
        task_id = view["bookmarks"][0]["id"]
        done, _ = tasks.complete(CompleteTask(TENANT, task_id, outcome="approved", user=f"u{k}"))
        if done["status"] != "completed":
            raise RuntimeError(f"approval instance ended {done['status']}")

    warm_up(op)
    result = timed("start-approve", op, sizes, sizes.approve)
    result.note = f"2 commands/instance = {2 * result.rate:,.0f} commands/s"
    return [result]


# --- 3. service-task ------------------------------------------------------------------------


def _count_completed(database_url: str, definition: str) -> int:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM instances WHERE tenant = %s AND definition = %s "
            "AND status = 'completed'",
            (TENANT, definition),
        ).fetchone()
    return int(row[0]) if row else 0


def bench_service_task(bench: Bench, sizes: Sizes) -> list[Result]:
    from infrastructure.worker_bootstrap import build_task_worker
    from workers.task_worker import TaskWorker

    instances = bench.container.instances
    # The task worker's own container, on the API's core (as `waymark serve` hosts it).
    parts = build_task_worker(bench.container.settings, core=bench.container.core)
    worker = TaskWorker(parts, worker_id="bench-task-worker")
    try:
        # Warm up: a few instances through the whole path, untimed.
        for _ in range(4):
            instances.start(StartInstance(TENANT, SERVICE["name"]))
        warm_deadline = time.monotonic() + 30
        while worker.tick() and time.monotonic() < warm_deadline and not STOP.is_set():
            pass
        baseline = _count_completed(bench.database_url, SERVICE["name"])

        def op(k: int, i: int) -> None:
            view, _ = instances.start(StartInstance(TENANT, SERVICE["name"]))
            if view["status"] not in ("running", "suspended"):
                raise RuntimeError(f"service instance is {view['status']} after its start")

        started = timed(
            "service-task/start",
            op,
            sizes,
            sizes.service,
            note="instances started, activity queued",
        )
        # Drain: the worker's own loop (claim a batch, run noop on its pool, record).
        tick_latencies: list[float] = []
        handled = 0
        t0 = time.perf_counter()
        deadline = t0 + 2 * sizes.seconds
        completed = 0
        while not STOP.is_set() and time.perf_counter() < deadline:
            t1 = time.perf_counter()
            n = worker.tick()
            if n:
                tick_latencies.append(time.perf_counter() - t1)
                handled += n
                continue
            completed = _count_completed(bench.database_url, SERVICE["name"]) - baseline
            if completed >= started.ops:
                break
            time.sleep(0.01)  # nothing claimable yet, but not all complete: look again
        drain_seconds = time.perf_counter() - t0
        completed = _count_completed(bench.database_url, SERVICE["name"]) - baseline
        if completed < started.ops:
            progress(f"service-task: only {completed}/{started.ops} completed within the cap")
        drain = Result(
            "service-task/drain",
            handled,
            drain_seconds,
            tick_latencies,
            note=f"TaskWorker.tick(): batch {worker.batch_size}, {worker.concurrency} threads; "
            "latency per tick",
        )
        progress(f"service-task/drain: {handled} activities in {drain_seconds:.2f} s")
        end_to_end = Result(
            "service-task/e2e",
            completed,
            started.seconds + drain_seconds,
            errors=started.ops - completed,
            note="instances completed / (start + drain time)",
        )
        return [started, drain, end_to_end]
    finally:
        worker.close()
        parts.close()


# --- 4. raw-commit --------------------------------------------------------------------------


class BenchAggregate(Aggregate):
    """An aggregate with nothing but its Created event: the smallest thing to commit."""


def bench_raw_commit(bench: Bench, sizes: Sizes) -> list[Result]:
    from infrastructure.postgres.datastore import build_datastore
    from infrastructure.postgres.event_store import WaymarkApplication
    from infrastructure.postgres.recorder import WaymarkRecorder

    class UnlockedRecorder(WaymarkRecorder):
        """For comparison only: skips the insert-order lock (NOT safe for notification-log
        readers: commit order may then differ from notification order). The table's
        trigger takes it (migration 0024); a session in `replica` replication role fires
        no ordinary trigger (the bench connects as a superuser), so it sends no NOTIFY
        either (the trigger's since migration 0025)."""

        def _send_insert(self, curs: Any, *args: Any) -> None:
            curs.execute("SET LOCAL session_replication_role = replica")
            super()._send_insert(curs, *args)

    note = "Application.save(), 1 event, no projection"
    results = []
    for recorder, suffix, extra in (
        (WaymarkRecorder, "", ""),
        (UnlockedRecorder, "-nolock", "; insert-order lock skipped (comparison only)"),
    ):
        datastore = build_datastore(bench.database_url, pool_size=THREADS + 2)
        try:
            app = WaymarkApplication(datastore, recorder_class=recorder)

            def op(k: int, i: int, app: WaymarkApplication = app) -> None:
                app.save(BenchAggregate())

            warm_up(op, THREADS)
            if not suffix:
                results.append(timed("raw-commit", op, sizes, sizes.raw_1t, threads=1, note=note))
            results.append(timed(f"raw-commit{suffix}", op, sizes, sizes.raw_8t, note=note + extra))
        finally:
            datastore.close()
    return results


# --- 5. http-start --------------------------------------------------------------------------


def bench_http_start(bench: Bench, sizes: Sizes, pool_size: int) -> list[Result]:
    import httpx

    progress("starting waymark serve")
    with serving(bench, pool_size) as base_url:
        clients = [
            httpx.Client(
                base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30.0
            )
            for _ in range(THREADS)
        ]
        try:

            def op(k: int, i: int) -> None:
                response = clients[k].post(
                    "/v1/instances", json={"definition": NOOP["name"], "input": {"n": i}}
                )
                if response.status_code != 201:
                    raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")

            warm_up(op, THREADS)
            note = "POST /v1/instances (noop), keep-alive, server + clients on one host"
            return [timed("http-start", op, sizes, sizes.http, note=note)]
        finally:
            for client in clients:
                client.close()


# --- 6. expressions -------------------------------------------------------------------------


def bench_expressions(bench: Bench, sizes: Sizes) -> list[Result]:
    from domain.expressions import compile_expression, evaluate

    context = {"input": {"amount": 12_345}, "vars": {"x": 2}}
    if evaluate(EXPRESSION, context) is not True:
        raise RuntimeError("the benchmark expression does not evaluate to True")

    def cached(k: int, i: int) -> None:
        evaluate(EXPRESSION, context)

    def fresh(k: int, i: int) -> None:
        # A source never seen before: parse + whitelist check + interpret, no cache hit.
        evaluate(compile_expression(f"input.amount > {10_000 + i} and vars.x in [1,2,3]"), context)

    warm_up(cached)
    runs = (
        ("expressions/eval", cached, "evaluate(source): compile cached (lru_cache), interpret"),
        ("expressions/compile+eval", fresh, "a new source each time: parse + check + interpret"),
    )
    return [
        hammer(name, op, threads=1, total=sizes.expressions, seconds=sizes.seconds, note=note)
        for name, op, note in runs
    ]
