"""What `dbos-compare`'s runs share (bench/dbos_compare.py): the workflow, the sizes, a run's
record, PostgreSQL's counters, completion read from the `instances` table, and the
client-thread driver of the in-process runs (and of `--http-driver threads`)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.cpu import Window, postmaster_pid
from bench.definitions import three_noops
from bench.harness import STOP, TENANT, Bench, progress

THREE_STEP = three_noops("bench-three-step")
COUNTERS = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_fetched")
WAL = ("wal_records", "wal_bytes")


@dataclass(frozen=True)
class CompareSizes:
    workflows: int  # per measured run
    dbos_threads: tuple[int, ...]
    waymark_clients: int  # client threads in process; HTTP connections of the generator
    seconds: float  # cap on one run (start to last completion)


# Issue 11 states target 1 at N = 10,000 workflows per run.
FULL_COMPARE = CompareSizes(
    workflows=10_000, dbos_threads=(4, 8, 16), waymark_clients=16, seconds=300.0
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
    # CPU milliseconds per workflow by process (`app`: DBOS's process, the bench process in
    # process, the `waymark serve` tree over HTTP; `postgres`; `generator`: per request).
    cpu_ms: dict[str, float] = field(default_factory=dict)
    busy: float | None = None  # the machine's busy fraction during the run (/proc/stat)
    generator: dict[str, Any] = field(default_factory=dict)  # the HTTP generator's report

    @property
    def rate(self) -> float:
        return self.workflows / self.seconds if self.seconds > 0 else 0.0

    def take_cpu(self, window: Window, requests: int = 0) -> None:
        """CPU per workflow from a window's readings (`generator`: per request sent)."""
        self.busy = window.busy
        for label, seconds in window.seconds.items():
            n = requests if label == "generator" else self.workflows
            if n:
                self.cpu_ms[label] = seconds * 1000 / n


def percentile_ms(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000.0


def pg_pid(bench: Bench) -> int | None:
    return postmaster_pid(bench.workdir / "data" / "pgdata")


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


# A closed pool's backends flush their counters as they exit, after the client has gone:
# read too early, a run's last transactions land in the next run's counts (seen as 32.7 and
# 15.4 rows inserted per workflow where every run writes 19.0).
SETTLE_SECONDS = 10.0
_BACKENDS = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"


def backends(database_url: str, database: str) -> int:
    """Sessions connected to `database` (other than the one asking)."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(_BACKENDS, (database,)).fetchone()
    return int(row[0]) if row else 0


def snapshot(
    database_url: str, database: str, *, backends_at_most: int | None = None
) -> dict[str, int]:
    """The database's counters and the server's WAL counters. With `backends_at_most` (the
    sessions connected before a run), first wait until the run's sessions have gone: a
    backend's counters are flushed before it leaves `pg_stat_activity`."""
    import psycopg

    if backends_at_most is not None:
        deadline = time.monotonic() + SETTLE_SECONDS
        while (left := backends(database_url, database)) > backends_at_most:
            if time.monotonic() > deadline:
                progress(f"{left} sessions of {database} still connected; counters read anyway")
                break
            time.sleep(0.05)
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


# --- completion, from the instances table ---------------------------------------------------


def count_completed(database_url: str, tag: str) -> int:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM instances WHERE tenant = %s AND correlation_id = %s "
            "AND status = 'completed'",
            (TENANT, tag),
        ).fetchone()
    return int(row[0]) if row else 0


def completed(database_url: str, tag: str) -> tuple[int, list[float], float | None]:
    """Instances of this run completed, their start→completed seconds, the last end (epoch)."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM ended_at - created_at), extract(epoch FROM ended_at) "
            "FROM instances WHERE tenant = %s AND correlation_id = %s AND status = 'completed'",
            (TENANT, tag),
        ).fetchall()
    return len(rows), [float(r[0]) for r in rows], max((float(r[1]) for r in rows), default=None)


def wait_completed(
    bench: Bench, sizes: CompareSizes, tag: str, alive: Callable[[], bool] = lambda: True
) -> None:
    """Until every workflow of the run completed, the cap passed, or `alive()` is false."""
    deadline = time.monotonic() + sizes.seconds
    while time.monotonic() < deadline and not STOP.is_set() and alive():
        # A count, not the rows: the polling adds little to the run's tup_fetched.
        if count_completed(bench.database_url, tag) >= sizes.workflows:
            return
        time.sleep(0.1)


def finish(name: str, bench: Bench, sizes: CompareSizes, tag: str, began: float) -> Run:
    """The run's record from the instances table: completed, wall time, latencies."""
    done, latencies, last = completed(bench.database_url, tag)
    seconds = (last - began) if last else time.time() - began
    if done < sizes.workflows:
        progress(f"{name}: only {done}/{sizes.workflows} completed within {sizes.seconds:g} s")
    progress(f"{name}: {done} workflows in {seconds:.2f} s = {done / seconds:,.1f}/s")
    return Run(name, done, seconds, percentile_ms(latencies, 0.5), percentile_ms(latencies, 0.99))


def drive_threads(
    name: str, bench: Bench, sizes: CompareSizes, start: Any, tag: str, window: Window
) -> Run:
    """Start `sizes.workflows` instances from client threads of this process
    (`start(thread, i)`), wait for them to complete; `window` measures the CPU meanwhile."""
    counter = itertools.count()
    errors: list[BaseException] = []

    def client(k: int) -> None:
        while not STOP.is_set() and (i := next(counter)) < sizes.workflows:
            try:
                start(k, i)
            except Exception as e:  # reported below
                errors.append(e)

    clients = [
        threading.Thread(target=client, args=(k,), daemon=True)
        for k in range(sizes.waymark_clients)
    ]
    window.start()
    began = time.time()
    for t in clients:
        t.start()
    wait_completed(bench, sizes, tag)
    window.stop()
    for t in clients:
        t.join(10)
    if errors:
        progress(f"{name}: {len(errors)} start errors, first: {errors[0]!r}")
    run = finish(name, bench, sizes, tag, began)
    run.take_cpu(window, requests=sizes.workflows)
    return run
