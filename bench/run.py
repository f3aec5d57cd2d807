"""Waymark benchmarks: `python -m bench.run [--quick] [--only NAME ...] [--profile]`.

Starts its own embedded PostgreSQL (pgserver, unix socket only) in a temporary directory,
applies the real migrations, builds the production Container with `bootstrap(Settings(...))`
and measures the command path, the task worker, the raw event-store commit, the HTTP API
(`waymark serve` under uvicorn on 127.0.0.1) and the expression interpreter. Prints one
table on stdout (progress goes to stderr). Every loop is bounded in count and in time; the
server, the database and the temporary directory are removed at the end, also on Ctrl-C.

`--profile` runs start-noop from one thread under cProfile instead of the table and prints
the top cumulative entries in Waymark's and eventsourcing's code.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import itertools
import logging
import os
import platform
import pstats
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from eventsourcing.domain import Aggregate

REPO_ROOT = Path(__file__).resolve().parents[1]
TENANT = "bench"
API_KEY = "k"
API_KEYS = f"{API_KEY}=bench:admin"
DATABASE = "bench"
THREADS = 8
SERVER_STARTUP_SECONDS = 60.0
SERVER_SHUTDOWN_SECONDS = 20.0
WARMUP_OPS = 16

NOOP = {
    "name": "bench-noop",
    "nodes": [
        {"id": "init", "type": "set", "variables": {"x": "1"}},
        {"id": "done", "type": "end"},
    ],
    "routes": [{"from": "init", "to": "done"}],
}
APPROVE = {
    "name": "bench-approve",
    "nodes": [
        {"id": "approve", "type": "approval", "approver_role": "boss"},
        {"id": "no", "type": "end", "status": "failed"},
        {"id": "done", "type": "end"},
    ],
    "routes": [
        {"from": "approve", "to": "done", "outcome": "approved"},
        {"from": "approve", "to": "no", "outcome": "rejected"},
    ],
}
SERVICE = {
    "name": "bench-service",
    "nodes": [
        {"id": "call", "type": "service_task", "action": {"type": "noop"}},
        {"id": "done", "type": "end"},
    ],
    "routes": [{"from": "call", "to": "done"}],
}
EXPRESSION = "input.amount > 10000 and vars.x in [1,2,3]"

BENCHMARKS = (
    "start-noop",
    "start-approve",
    "service-task",
    "raw-commit",
    "http-start",
    "expressions",
)
NEEDS_DATABASE = frozenset(BENCHMARKS) - {"expressions"}


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
    seconds=3.0,
)


# --- results ------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    ops: int
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds, one per op (or per batch)
    errors: int = 0
    note: str = ""

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000.0


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 0.1:
        return f"{value:.2f}"
    return f"{value:.4f}"


def format_table(results: list[Result]) -> str:
    header = ("benchmark", "ops", "seconds", "ops/s", "p50 ms", "p95 ms", "errors", "note")
    rows = [
        (
            r.name,
            str(r.ops),
            f"{r.seconds:.2f}",
            f"{r.rate:,.0f}" if r.rate >= 100 else f"{r.rate:.1f}",
            _ms(r.percentile(0.50)),
            _ms(r.percentile(0.95)),
            str(r.errors),
            r.note,
        )
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    right = {1, 2, 3, 4, 5, 6}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(header), line(tuple("-" * w for w in widths))]
    out += [line(row) for row in rows]
    return "\n".join(out)


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- the load generator -----------------------------------------------------------------

STOP = threading.Event()  # set on Ctrl-C/SIGTERM: every loop ends at its next iteration


def hammer(
    name: str,
    op: Callable[[int, int], Any],
    *,
    threads: int,
    total: int,
    seconds: float,
    note: str = "",
) -> Result:
    """Call op(thread, i) `total` times spread over `threads` threads, at most `seconds` long.

    Latency is per call; `ops` counts the calls that returned, errors the ones that raised.
    """
    counter = itertools.count()  # next() on it is atomic under the GIL
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    first_error: list[BaseException] = []
    barrier = threading.Barrier(threads + 1)
    deadline = 0.0

    def work(k: int) -> None:
        own = latencies[k]
        barrier.wait()
        while not STOP.is_set():
            i = next(counter)
            if i >= total or time.perf_counter() > deadline:
                return
            t0 = time.perf_counter()
            try:
                op(k, i)
            except Exception as exc:
                errors[k] += 1
                if not first_error:
                    first_error.append(exc)
            else:
                own.append(time.perf_counter() - t0)

    workers = [
        threading.Thread(target=work, args=(k,), name=f"bench-{k}", daemon=True)
        for k in range(threads)
    ]
    for t in workers:
        t.start()
    started = time.perf_counter()
    deadline = started + seconds
    try:
        barrier.wait()
        for t in workers:
            t.join()
    except BaseException:  # Ctrl-C: let the threads finish their call before cleanup
        STOP.set()
        barrier.abort()
        for t in workers:
            t.join(timeout=10)
        raise
    elapsed = time.perf_counter() - started
    merged = [x for own in latencies for x in own]
    result = Result(name, len(merged), elapsed, merged, sum(errors), note)
    if first_error:
        progress(f"{name}: {result.errors} errors, first: {first_error[0]!r}")
    progress(f"{name}: {result.ops} ops in {elapsed:.2f} s = {result.rate:,.1f}/s")
    return result


def warm_up(op: Callable[[int, int], Any], threads: int = 1) -> None:
    """A few untimed calls: open the pool's connections, fill caches, prepare statements."""
    for i in range(WARMUP_OPS):
        if STOP.is_set():
            return
        op(i % threads, i)


# --- the environment ------------------------------------------------------------------------


@dataclass
class Bench:
    """What the benchmarks run against; built by `environment()`."""

    sizes: Sizes
    database_url: str = ""
    server_info: str = ""
    container: Any = None
    workdir: Path = Path()
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)


@contextlib.contextmanager
def environment(sizes: Sizes, *, database: bool, pool_size: int) -> Iterator[Bench]:
    """A temp dir, the embedded PostgreSQL (migrated) and the Container; all gone after."""
    workdir = Path(tempfile.mkdtemp(prefix="waymark-bench-"))
    bench = Bench(sizes=sizes, workdir=workdir)
    with bench.stack:
        bench.stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        if database:
            from infrastructure.bootstrap import bootstrap
            from infrastructure.embedded_postgres import EmbeddedPostgres
            from infrastructure.postgres.migrate import migrate
            from infrastructure.settings import Settings

            progress(f"starting PostgreSQL in {workdir}")
            server = EmbeddedPostgres(workdir / "data", database=DATABASE)
            bench.stack.callback(server.stop)
            bench.database_url = server.start()
            progress("migrating")
            migrate(bench.database_url)
            bench.server_info = _server_info(bench.database_url)
            settings = Settings(
                database_url=bench.database_url,
                api_keys=API_KEYS,
                db_pool_size=pool_size,
            )
            bench.container = bootstrap(settings)
            bench.stack.callback(bench.container.close)
            for document in (NOOP, APPROVE, SERVICE):
                bench.container.definitions.publish(TENANT, document)
        try:
            yield bench
        except BaseException:
            STOP.set()  # before the cleanup below closes what running loops use
            raise


def _server_info(database_url: str) -> str:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        values = [
            conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("server_version", "fsync", "synchronous_commit")
        ]
    return "PostgreSQL {} (fsync {}, synchronous_commit {})".format(*values)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# --- 1. start-noop --------------------------------------------------------------------------


def start_noop_op(bench: Bench) -> Callable[[int, int], Any]:
    instances = bench.container.instances

    def op(k: int, i: int) -> None:
        view, _ = instances.start(TENANT, NOOP["name"], input={"n": i})
        if view["status"] != "completed":
            raise RuntimeError(f"noop instance ended {view['status']}")

    return op


def bench_start_noop(bench: Bench) -> list[Result]:
    op = start_noop_op(bench)
    warm_up(op, THREADS)
    s = bench.sizes
    note = "1 command/instance"
    return [
        hammer("start-noop/1t", op, threads=1, total=s.noop_1t, seconds=s.seconds, note=note),
        hammer(
            f"start-noop/{THREADS}t",
            op,
            threads=THREADS,
            total=s.noop_8t,
            seconds=s.seconds,
            note=note,
        ),
    ]


# --- 2. start-approve -----------------------------------------------------------------------


def bench_start_approve(bench: Bench) -> list[Result]:
    instances, tasks = bench.container.instances, bench.container.tasks

    def op(k: int, i: int) -> None:
        view, _ = instances.start(TENANT, APPROVE["name"])
        task_id = view["bookmarks"][0]["id"]
        done = tasks.complete(
            TENANT, task_id, outcome="approved", data=None, comment=None, user=f"u{k}"
        )
        if done["status"] != "completed":
            raise RuntimeError(f"approval instance ended {done['status']}")

    warm_up(op)
    s = bench.sizes
    result = hammer(
        f"start-approve/{THREADS}t", op, threads=THREADS, total=s.approve, seconds=s.seconds
    )
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


def bench_service_task(bench: Bench) -> list[Result]:
    from workers.task_worker import TaskWorker

    instances = bench.container.instances
    s = bench.sizes
    worker = TaskWorker(bench.container, worker_id="bench-task-worker")
    try:
        # Warm up: a few instances through the whole path, untimed.
        for _ in range(4):
            instances.start(TENANT, SERVICE["name"])
        warm_deadline = time.monotonic() + 30
        while worker.tick() and time.monotonic() < warm_deadline and not STOP.is_set():
            pass
        baseline = _count_completed(bench.database_url, SERVICE["name"])

        def op(k: int, i: int) -> None:
            view, _ = instances.start(TENANT, SERVICE["name"])
            if view["status"] not in ("running", "suspended"):
                raise RuntimeError(f"service instance is {view['status']} after its start")

        started = hammer(
            f"service-task/start/{THREADS}t",
            op,
            threads=THREADS,
            total=s.service,
            seconds=s.seconds,
            note="instances started, activity queued",
        )
        # Drain: the worker's own loop (claim a batch, run noop on its pool, record).
        tick_latencies: list[float] = []
        handled = 0
        t0 = time.perf_counter()
        deadline = t0 + 2 * s.seconds
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


# --- 4. raw-commit --------------------------------------------------------------------------


class BenchAggregate(Aggregate):
    """An aggregate with nothing but its Created event: the smallest thing to commit."""


def bench_raw_commit(bench: Bench) -> list[Result]:
    from infrastructure.postgres.datastore import build_datastore
    from infrastructure.postgres.event_store import WaymarkApplication
    from infrastructure.postgres.recorder import WaymarkRecorder

    class UnlockedRecorder(WaymarkRecorder):
        """For comparison only: skips the library's EXCLUSIVE table lock (NOT safe for
        notification-log readers: commit order may then differ from notification order)."""

        def _lock_table(self, curs: Any) -> None:
            return None

    s = bench.sizes
    note = "Application.save(), 1 event, no projection"
    results = []
    for recorder, suffix, extra in (
        (WaymarkRecorder, "", ""),
        (UnlockedRecorder, "-nolock", "; table lock skipped (comparison only)"),
    ):
        datastore = build_datastore(bench.database_url, pool_size=THREADS + 2)
        try:
            app = WaymarkApplication(datastore, recorder_class=recorder)

            def op(k: int, i: int, app: WaymarkApplication = app) -> None:
                app.save(BenchAggregate())

            warm_up(op, THREADS)
            if not suffix:
                results.append(
                    hammer(
                        "raw-commit/1t", op, threads=1, total=s.raw_1t, seconds=s.seconds, note=note
                    )
                )
            results.append(
                hammer(
                    f"raw-commit{suffix}/{THREADS}t",
                    op,
                    threads=THREADS,
                    total=s.raw_8t,
                    seconds=s.seconds,
                    note=note + extra,
                )
            )
        finally:
            datastore.close()
    return results


# --- 5. http-start --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = 30) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(SERVER_SHUTDOWN_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@contextlib.contextmanager
def serving(bench: Bench, pool_size: int) -> Iterator[str]:
    """`waymark serve` on a free 127.0.0.1 port, until ready; SIGTERM after. Its base URL."""
    import httpx

    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = bench.workdir / "server.log"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("WAYMARK_") and k != "DATABASE_URL"
    }
    env.update(
        {
            "DATABASE_URL": bench.database_url,
            "WAYMARK_API_KEYS": API_KEYS,
            "WAYMARK_RUN_WORKERS_IN_PROCESS": "false",
            "WAYMARK_DB_POOL_SIZE": str(pool_size),
            # INFO would log every request (uvicorn's access log) on the measured path.
            "WAYMARK_LOG_LEVEL": "WARNING",
            "WAYMARK_DATA_DIR": str(bench.workdir / "server-data"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + SERVER_STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"waymark serve exited {process.returncode}:\n{_log_tail(log)}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base_url + "/health/ready", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline or STOP.is_set():
                raise RuntimeError(f"waymark serve not ready in time:\n{_log_tail(log)}")
            time.sleep(0.1)
        yield base_url
    finally:
        _terminate(process)
        if process.returncode not in (0, -signal.SIGTERM, None):
            progress(f"waymark serve exited {process.returncode}:\n{_log_tail(log)}")


def bench_http_start(bench: Bench, pool_size: int) -> list[Result]:
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
            s = bench.sizes
            return [
                hammer(
                    f"http-start/{THREADS}t",
                    op,
                    threads=THREADS,
                    total=s.http,
                    seconds=s.seconds,
                    note="POST /v1/instances (noop), keep-alive, server + clients on one host",
                )
            ]
        finally:
            for client in clients:
                client.close()


# --- 6. expressions -------------------------------------------------------------------------


def bench_expressions(bench: Bench) -> list[Result]:
    from domain.expressions import compile_expression, evaluate

    context = {"input": {"amount": 12_345}, "vars": {"x": 2}}
    if evaluate(EXPRESSION, context) is not True:
        raise RuntimeError("the benchmark expression does not evaluate to True")
    s = bench.sizes

    def cached(k: int, i: int) -> None:
        evaluate(EXPRESSION, context)

    def fresh(k: int, i: int) -> None:
        # A source never seen before: parse + whitelist check + interpret, no cache hit.
        evaluate(compile_expression(f"input.amount > {10_000 + i} and vars.x in [1,2,3]"), context)

    warm_up(cached)
    return [
        hammer(
            "expressions/eval",
            cached,
            threads=1,
            total=s.expressions,
            seconds=s.seconds,
            note="evaluate(source): compile cached (lru_cache), interpret",
        ),
        hammer(
            "expressions/compile+eval",
            fresh,
            threads=1,
            total=s.expressions,
            seconds=s.seconds,
            note="a new source each time: parse + check + interpret",
        ),
    ]


# --- profile --------------------------------------------------------------------------------

PROFILE_FILTER = r"eventsourcing|/(domain|application|infrastructure|api|workers)/"


def profile_start_noop(bench: Bench, top: int) -> str:
    """start-noop from one thread under cProfile: the top cumulative entries in our code."""
    op = start_noop_op(bench)
    warm_up(op)
    count = bench.sizes.noop_1t
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    try:
        for i in range(count):
            if STOP.is_set():
                break
            op(0, i)
    finally:
        profiler.disable()
    elapsed = time.perf_counter() - t0
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats(pstats.SortKey.CUMULATIVE)
    print(
        f"start-noop/1t under cProfile: {count} starts in {elapsed:.2f} s "
        f"({count / elapsed:,.0f}/s with profiling overhead)\n",
        file=out,
    )
    stats.print_stats(PROFILE_FILTER, top)
    return out.getvalue()


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (well under a minute)")
    parser.add_argument(
        "--only",
        action="append",
        choices=BENCHMARKS,
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--pool-size", type=int, default=THREADS + 2, help="db_pool_size (default %(default)s)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile start-noop from one thread with cProfile instead of running the table",
    )
    parser.add_argument("--top", type=int, default=25, help="entries printed by --profile")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.simplefilter("ignore")  # pgserver/platformdirs warn at import
    signal.signal(signal.SIGTERM, _on_sigterm)
    # Also when started in the background by a shell, which leaves SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sizes = QUICK if args.quick else FULL
    selected = list(BENCHMARKS) if not args.only else [b for b in BENCHMARKS if b in args.only]
    needs_database = args.profile or bool(NEEDS_DATABASE & set(selected))
    results: list[Result] = []
    failed: list[str] = []
    began = time.perf_counter()
    try:
        with environment(sizes, database=needs_database, pool_size=args.pool_size) as bench:
            if args.profile:
                print(profile_start_noop(bench, args.top))
                return 0
            runners: dict[str, Callable[[], list[Result]]] = {
                "start-noop": lambda: bench_start_noop(bench),
                "start-approve": lambda: bench_start_approve(bench),
                "service-task": lambda: bench_service_task(bench),
                "raw-commit": lambda: bench_raw_commit(bench),
                "http-start": lambda: bench_http_start(bench, args.pool_size),
                "expressions": lambda: bench_expressions(bench),
            }
            for name in selected:
                if STOP.is_set():
                    break
                progress(f"--- {name}")
                try:
                    results.extend(runners[name]())
                except Exception:  # report it, run the others, exit non-zero
                    progress(f"{name} FAILED:\n{traceback.format_exc()}")
                    failed.append(name)
    except KeyboardInterrupt:
        STOP.set()
        progress("interrupted: cleaned up")
        if results:
            print(format_table(results))
        return 130
    total = time.perf_counter() - began
    print(
        f"Waymark benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{'quick' if args.quick else 'full'} run, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {THREADS} threads where marked /{THREADS}t, "
        f"db_pool_size {args.pool_size}, total {total:.0f} s"
    )
    if bench.server_info:
        print(f"{bench.server_info}, unix socket, embedded (pgserver)")
    print()
    print(format_table(results))
    if failed:
        print(f"\nFAILED: {', '.join(failed)} (see stderr)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
