"""Side by side with DBOS Transact: the same 3-step workflow on the same PostgreSQL server.

The workflow: three steps that do nothing, then the end. DBOS runs it as a `@DBOS.workflow`
calling three `@DBOS.step`s, in process, from T threads that each call the workflow and wait
for it (its best case: no queue, no HTTP), for a few T, the best taken; it runs in a
subprocess of its own (DBOS keeps global state) against the database `dbos_bench` of the
bench's embedded PostgreSQL. Waymark runs `three_step`, three `service_task`s with the
`noop` action, then `end`:

- in process: a Container on the `bench` database with its task and timer workers in
  threads of the same process (`InProcessWorkers`, as `waymark serve` hosts them), started
  by client threads that do not wait; completion is watched in the `instances` table;
- over HTTP: `waymark serve` (workers in process) in its own process, driven by client
  threads of this process (`POST /v1/instances`, keep-alive), completion watched the same way.

Each run reports workflows/s (completed / wall time from the first start to the last
completion), p50/p99 start→completed (DBOS: the caller's wait; Waymark: `ended_at -
created_at` of the instance row), and per workflow the deltas of `pg_stat_database` (of that
run's database) and `pg_stat_wal` (the server's) over the run, pools closed before the
second snapshot so every backend has flushed its counters. `python -m bench.dbos_compare
[--quick]` runs it alone; `bench.run --only dbos-compare` within the table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.harness import API_KEY, REPO_ROOT, STOP, TENANT, Bench, Result, progress, serving

THREE_STEP = {
    "name": "bench-three-step",
    "nodes": [
        {"id": "s1", "type": "service_task", "action": {"type": "noop"}},
        {"id": "s2", "type": "service_task", "action": {"type": "noop"}},
        {"id": "s3", "type": "service_task", "action": {"type": "noop"}},
        {"id": "done", "type": "end"},
    ],
    "routes": [
        {"from": "s1", "to": "s2"},
        {"from": "s2", "to": "s3"},
        {"from": "s3", "to": "done"},
    ],
}
DBOS_DATABASE = "dbos_bench"
COUNTERS = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_fetched")
WAL = ("wal_records", "wal_bytes")


@dataclass(frozen=True)
class CompareSizes:
    workflows: int  # per measured run
    dbos_threads: tuple[int, ...]
    waymark_clients: int
    seconds: float  # cap on one run (start to last completion)


FULL_COMPARE = CompareSizes(
    workflows=2_000, dbos_threads=(4, 8, 16), waymark_clients=16, seconds=120.0
)
QUICK_COMPARE = CompareSizes(workflows=200, dbos_threads=(8, 16), waymark_clients=16, seconds=15.0)


@dataclass
class Run:
    name: str
    workflows: int
    seconds: float
    p50_ms: float | None
    p99_ms: float | None
    per_workflow: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def rate(self) -> float:
        return self.workflows / self.seconds if self.seconds > 0 else 0.0


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000.0


# --- the database's counters ----------------------------------------------------------------


def admin_url_of(database_url: str, database: str) -> str:
    """The same server and credentials, another database."""
    from infrastructure.embedded_postgres import database_url_for

    return database_url_for(database_url, database)


def create_database(database_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def snapshot(database_url: str, database: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT {', '.join(COUNTERS)} FROM pg_stat_database WHERE datname = %s", (database,)
        ).fetchone()
        wal = conn.execute(f"SELECT {', '.join(WAL)} FROM pg_stat_wal").fetchone()
    assert row is not None and wal is not None
    return {
        **dict(zip(COUNTERS, map(int, row), strict=True)),
        **dict(zip(WAL, map(int, wal), strict=True)),
    }


def per_workflow(before: dict[str, int], after: dict[str, int], n: int) -> dict[str, float]:
    return {k: (after[k] - before[k]) / n for k in before} if n else {}


# --- DBOS (in a subprocess: `python -m bench.dbos_compare dbos-worker ...`) -------------------


def _dbos_worker(url: str, workflows: int, threads: list[int], migrate_only: bool) -> None:
    import logging

    from dbos import DBOS, DBOSConfig

    logging.getLogger("dbos").setLevel(logging.WARNING)
    sqlalchemy_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    config: DBOSConfig = {
        "name": "bench-dbos",
        "system_database_url": sqlalchemy_url,
        "sys_db_pool_size": max(threads) + 4,
        "log_level": "WARNING",
    }
    DBOS(config=config)

    @DBOS.step()
    def step(i: int) -> int:
        return i

    @DBOS.workflow()
    def three_step(i: int) -> int:
        step(i)
        step(i)
        return step(i)

    DBOS.launch()
    out: list[dict[str, Any]] = []
    try:
        if not migrate_only:
            for _ in range(16):  # warm-up: pools, prepared statements
                three_step(-1)
            for t in threads:
                out.append(_dbos_run(three_step, workflows, t))
    finally:
        DBOS.destroy(destroy_registry=True)
    print(json.dumps({"runs": out, "warmup": 0 if migrate_only else 16}))


def _dbos_run(workflow: Any, workflows: int, threads: int) -> dict[str, Any]:
    import itertools

    counter = itertools.count()
    latencies: list[list[float]] = [[] for _ in range(threads)]

    def work(k: int) -> None:
        while (i := next(counter)) < workflows:
            t0 = time.perf_counter()
            workflow(i)
            latencies[k].append(time.perf_counter() - t0)

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    merged = [x for own in latencies for x in own]
    return {
        "threads": threads,
        "workflows": len(merged),
        "seconds": time.perf_counter() - t0,
        "p50_ms": _percentile(merged, 0.5),
        "p99_ms": _percentile(merged, 0.99),
    }


def run_dbos(bench: Bench, sizes: CompareSizes) -> Run:
    url = admin_url_of(bench.database_url, DBOS_DATABASE)
    create_database(bench.database_url, DBOS_DATABASE)

    def worker(*extra: str) -> dict[str, Any]:
        cmd = [
            sys.executable,
            "-m",
            "bench.dbos_compare",
            "dbos-worker",
            "--url",
            url,
            "--workflows",
            str(sizes.workflows),
            "--threads",
            ",".join(map(str, sizes.dbos_threads)),
            *extra,
        ]
        done = subprocess.run(  # noqa: S603
            cmd,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=sizes.seconds * len(sizes.dbos_threads) + 120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the DBOS worker failed:\n{done.stderr[-3000:]}")
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    progress("dbos: migrating its system database")
    worker("--migrate-only")
    before = snapshot(bench.database_url, DBOS_DATABASE)
    progress(f"dbos: {sizes.workflows} workflows at each of {sizes.dbos_threads} threads")
    report = worker()
    after = snapshot(bench.database_url, DBOS_DATABASE)
    runs = report["runs"]
    total = sum(r["workflows"] for r in runs) + int(report["warmup"])
    best = max(runs, key=lambda r: r["workflows"] / r["seconds"])
    sweep = ", ".join(f"{r['threads']}t {r['workflows'] / r['seconds']:,.0f}/s" for r in runs)
    return Run(
        f"dbos/in-process/{best['threads']}t",
        best["workflows"],
        best["seconds"],
        best["p50_ms"],
        best["p99_ms"],
        per_workflow(before, after, total),
        note=f"DBOS 3.4 @workflow + 3 @step, best of {sweep}",
    )


# --- Waymark ----------------------------------------------------------------------------------


def _count_completed(database_url: str, tag: str) -> int:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM instances WHERE tenant = %s AND correlation_id = %s "
            "AND status = 'completed'",
            (TENANT, tag),
        ).fetchone()
    return int(row[0]) if row else 0


def _completed(database_url: str, tag: str) -> tuple[int, list[float], float | None]:
    """Instances of this run completed, their start→completed seconds, the last end (epoch)."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM ended_at - created_at), extract(epoch FROM ended_at) "
            "FROM instances WHERE tenant = %s AND correlation_id = %s AND status = 'completed'",
            (TENANT, tag),
        ).fetchall()
    return len(rows), [float(r[0]) for r in rows], max((float(r[1]) for r in rows), default=None)


def _drive(name: str, bench: Bench, sizes: CompareSizes, start: Any, tag: str) -> Run:
    """Start `sizes.workflows` instances from client threads, wait for them to complete."""
    import itertools

    counter = itertools.count()
    errors: list[BaseException] = []

    def client(k: int) -> None:
        while not STOP.is_set() and (i := next(counter)) < sizes.workflows:
            try:
                start(k, i)
            except Exception as e:  # reported below
                errors.append(e)

    began = time.time()
    clients = [
        threading.Thread(target=client, args=(k,), daemon=True)
        for k in range(sizes.waymark_clients)
    ]
    for t in clients:
        t.start()
    deadline = time.monotonic() + sizes.seconds
    while time.monotonic() < deadline and not STOP.is_set():
        # A count, not the rows: the polling adds little to the run's tup_fetched.
        if _count_completed(bench.database_url, tag) >= sizes.workflows:
            break
        time.sleep(0.1)
    done, latencies, last = _completed(bench.database_url, tag)
    for t in clients:
        t.join(10)
    if errors:
        progress(f"{name}: {len(errors)} start errors, first: {errors[0]!r}")
    seconds = (last - began) if last else time.time() - began
    if done < sizes.workflows:
        progress(f"{name}: only {done}/{sizes.workflows} completed within {sizes.seconds:g} s")
    progress(f"{name}: {done} workflows in {seconds:.2f} s = {done / seconds:,.1f}/s")
    return Run(name, done, seconds, _percentile(latencies, 0.5), _percentile(latencies, 0.99))


@contextlib.contextmanager
def _waymark_in_process(bench: Bench, pool_size: int, group_commit: bool) -> Iterator[Any]:
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings
    from workers.in_process import InProcessWorkers

    container = build_api(
        Settings(
            database_url=bench.database_url,
            api_keys="k=bench:admin",
            db_pool_size=pool_size,
            group_commit=group_commit,
        )
    )
    workers = None
    try:
        workers = InProcessWorkers.start(container.core)
        yield container
    finally:
        if workers is not None:
            workers.stop()
        container.close()


def run_waymark_in_process(
    bench: Bench, sizes: CompareSizes, pool_size: int, group_commit: bool = True
) -> Run:
    from application.commands import StartInstance

    before = snapshot(bench.database_url, "bench")
    warm = 16
    with _waymark_in_process(bench, pool_size, group_commit) as container:
        instances = container.instances
        for i in range(warm):
            instances.start(
                StartInstance(
                    TENANT, THREE_STEP["name"], input={"n": i}, correlation_id="warm-in-process"
                )
            )
        tag = f"in-process-{time.time_ns()}"

        def start(k: int, i: int) -> None:
            instances.start(
                StartInstance(TENANT, THREE_STEP["name"], input={"n": i}, correlation_id=tag)
            )

        suffix = "" if group_commit else "/no-group-commit"
        name = f"waymark/in-process/{sizes.waymark_clients}c{suffix}"
        run = _drive(name, bench, sizes, start, tag)
    after = snapshot(bench.database_url, "bench")
    run.per_workflow = per_workflow(before, after, run.workflows + warm)
    run.note = "Container + InProcessWorkers; client threads start, do not wait" + (
        "" if group_commit else "; WAYMARK_GROUP_COMMIT=false (one transaction per command)"
    )
    return run


def run_waymark_http(
    bench: Bench, sizes: CompareSizes, pool_size: int, api_workers: int = 1
) -> Run:
    import httpx

    before = snapshot(bench.database_url, "bench")
    warm = 16
    extra = {"WAYMARK_API_WORKERS": str(api_workers)}
    with serving(bench, pool_size, workers_in_process=True, extra_env=extra) as base_url:
        clients = [
            httpx.Client(
                base_url=base_url, timeout=30.0, headers={"Authorization": f"Bearer {API_KEY}"}
            )
            for _ in range(sizes.waymark_clients)
        ]
        try:
            tag = f"http-{time.time_ns()}"

            def start(k: int, i: int, tag: str = tag) -> None:
                response = clients[k].post(
                    "/v1/instances",
                    json={
                        "definition": THREE_STEP["name"],
                        "input": {"n": i},
                        "correlation_id": tag,
                    },
                )
                if response.status_code != 201:
                    raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")

            for i in range(warm):
                start(0, i, "warm-http")
            suffix = f"/{api_workers}api" if api_workers > 1 else ""
            name = f"waymark/http/{sizes.waymark_clients}c{suffix}"
            run = _drive(name, bench, sizes, start, tag)
        finally:
            for client in clients:
                client.close()
    after = snapshot(bench.database_url, "bench")  # the server has exited: counters flushed
    run.per_workflow = per_workflow(before, after, run.workflows + warm)
    run.note = (
        "waymark serve (workers in process) <- load generator process, keep-alive"
        if api_workers == 1
        else f"waymark serve --workers {api_workers} (+ a tasks and a timers worker process)"
    )
    return run


def compare(bench: Bench, quick: bool, pool_size: int) -> list[Run]:
    sizes = QUICK_COMPARE if quick else FULL_COMPARE
    bench.container.definitions.publish(TENANT, THREE_STEP)
    runs = [run_dbos(bench, sizes)]
    measures = (
        lambda: run_waymark_in_process(bench, sizes, pool_size),
        lambda: run_waymark_http(bench, sizes, pool_size),
        # Two API processes; the task and timer workers in processes of their own.
        lambda: run_waymark_http(bench, sizes, pool_size, api_workers=2),
        # The same in-process run with every command in its own transaction: the baseline
        # group commit is measured against, in the same run.
        lambda: run_waymark_in_process(bench, sizes, pool_size, group_commit=False),
    )
    for measure in measures:
        if STOP.is_set():
            break
        runs.append(measure())
    return runs


def as_results(runs: list[Run]) -> list[Result]:
    """Rows for bench.run's table: ops = workflows, latencies p50/p95 are not per-op here."""
    dbos = runs[0].rate if runs else 0.0
    out = []
    for run in runs:
        ratio = f"{run.rate / dbos:.2f}x DBOS" if dbos else ""
        counts = run.per_workflow
        note = (
            f"{ratio}; p99 {run.p99_ms or 0:.0f} ms; per wf: {counts.get('xact_commit', 0):.1f} "
            f"commits, {counts.get('tup_inserted', 0):.1f} ins, "
            f"{counts.get('tup_updated', 0):.1f} upd, {counts.get('wal_records', 0):.0f} WAL "
            f"rec, {counts.get('wal_bytes', 0) / 1024:.1f} KB WAL"
        )
        result = Result(run.name, run.workflows, run.seconds, note=note)
        result.latencies = [(run.p50_ms or 0) / 1000.0]  # p50 column only
        out.append(result)
    return out


def format_runs(runs: list[Run]) -> str:
    dbos = runs[0].rate if runs else 0.0
    header = (
        f"{'run':40} {'wf':>6} {'wf/s':>7} {'vs DBOS':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'commits':>7} {'rollbk':>6} {'ins':>6} {'upd':>6} {'fetch':>7} {'WAL rec':>7} "
        f"{'WAL KB':>7}"
    )
    lines = [header, "-" * len(header)]
    for r in runs:
        c = r.per_workflow
        lines.append(
            f"{r.name:40} {r.workflows:>6} {r.rate:>7.1f} {r.rate / dbos if dbos else 0:>7.2f}x "
            f"{r.p50_ms or 0:>7.1f} {r.p99_ms or 0:>7.1f} {c.get('xact_commit', 0):>7.1f} "
            f"{c.get('xact_rollback', 0):>6.1f} {c.get('tup_inserted', 0):>6.1f} "
            f"{c.get('tup_updated', 0):>6.1f} {c.get('tup_fetched', 0):>7.0f} "
            f"{c.get('wal_records', 0):>7.0f} {c.get('wal_bytes', 0) / 1024:>7.1f}"
        )
    return "\n".join(lines)


def as_json(runs: list[Run]) -> list[dict[str, Any]]:
    dbos = runs[0].rate if runs else 0.0
    return [
        {**asdict(r), "rate": r.rate, "ratio_to_dbos": r.rate / dbos if dbos else None}
        for r in runs
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dbos_compare")
    sub = parser.add_subparsers(dest="command")
    worker = sub.add_parser("dbos-worker")
    worker.add_argument("--url", required=True)
    worker.add_argument("--workflows", type=int, required=True)
    worker.add_argument("--threads", required=True)
    worker.add_argument("--migrate-only", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "dbos-worker":
        _dbos_worker(
            args.url, args.workflows, [int(t) for t in args.threads.split(",")], args.migrate_only
        )
        return 0
    from bench import run as bench_run

    return bench_run.main(["--only", "dbos-compare", *(["--quick"] if args.quick else [])])


if __name__ == "__main__":
    sys.exit(main())
