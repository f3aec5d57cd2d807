"""What the benchmarks run on: the load generator and its results, and the environment.

`hammer()` runs one measurement (bounded in count and time, latency per call) into a
`Result`; `environment()` is a temporary directory with an embedded PostgreSQL (pgserver,
unix socket only), migrated, and the production Container; `serving()` is `waymark serve`
under uvicorn on 127.0.0.1. Each removes what it started, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
TENANT = "bench"
API_KEY = "k"
API_KEYS = f"{API_KEY}=bench:admin"
DATABASE = "bench"
THREADS = 8
SERVER_STARTUP_SECONDS = 60.0
SERVER_SHUTDOWN_SECONDS = 20.0
WARMUP_OPS = 16


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

    database_url: str = ""
    server_info: str = ""
    container: Any = None
    workdir: Path = Path()
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)


@contextlib.contextmanager
def environment(
    *, database: bool, pool_size: int, definitions: Iterable[dict[str, Any]] = ()
) -> Iterator[Bench]:
    """A temp dir, the embedded PostgreSQL (migrated) and the Container with `definitions`
    published for TENANT; all gone after."""
    workdir = Path(tempfile.mkdtemp(prefix="waymark-bench-"))
    bench = Bench(workdir=workdir)
    with bench.stack:
        bench.stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        if database:
            from infrastructure.bootstrap import build_api
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
            bench.container = build_api(settings)
            bench.stack.callback(bench.container.close)
            for document in definitions:
                bench.container.definitions.publish(TENANT, document)
        try:
            yield bench
        except BaseException:
            STOP.set()  # before the cleanup below closes what running loops use
            raise


def checkpoint(bench: Bench) -> None:
    """A CHECKPOINT before a measured run, so that it does not pay for what the runs before
    it wrote: a checkpoint that the server starts on its own (every 5 minutes, or after
    1 GB of WAL) writes their dirty pages out during the next run, and on this machine's
    disk those writes slow every COMMIT's WAL flush (measured, docs/performance.md). A run
    still pays for the checkpoints its own writes bring on."""
    if not bench.database_url:
        return
    import psycopg

    t0 = time.perf_counter()
    with psycopg.connect(bench.database_url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    progress(f"checkpoint: {time.perf_counter() - t0:.1f} s")


def _server_info(database_url: str) -> str:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        values = [
            conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("server_version", "fsync", "synchronous_commit")
        ]
    return "PostgreSQL {} (fsync {}, synchronous_commit {})".format(*values)


# --- waymark serve --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = 30) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def spawn_generator(module: str, stderr: Any = None) -> subprocess.Popen[str]:
    """`python -m <module>` (a load generator: bench/closedloop_gen.py, bench/openloop_gen.py)
    run from the repository root, its stdin and stdout piped as text, stderr to `stderr`."""
    return subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", module],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )


def _terminate(process: subprocess.Popen[bytes], how: int = signal.SIGTERM) -> None:
    if process.poll() is not None:
        return
    process.send_signal(how)
    try:
        process.wait(SERVER_SHUTDOWN_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@contextlib.contextmanager
def serving(
    bench: Bench,
    pool_size: int,
    *,
    workers_in_process: bool = False,
    extra_env: Mapping[str, str] | None = None,
    prefix: tuple[str, ...] = (),
) -> Iterator[str]:
    """`waymark serve` on a free 127.0.0.1 port, until ready; SIGTERM after. Its base URL.

    `workers_in_process`: the task and timer workers run in the server's process too.
    `extra_env`: more (or overriding) environment variables for it; `prefix`: a command
    the server runs under (`py-spy record ... --`, stopped with SIGINT so that it writes
    its profile)."""
    with serving_process(
        bench, pool_size, workers_in_process=workers_in_process, extra_env=extra_env, prefix=prefix
    ) as (base_url, _process):
        yield base_url


@contextlib.contextmanager
def serving_process(
    bench: Bench,
    pool_size: int,
    *,
    workers_in_process: bool = False,
    extra_env: Mapping[str, str] | None = None,
    prefix: tuple[str, ...] = (),
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`serving()`, also yielding the server's process (the root of its process tree: the
    API processes and worker processes of `--workers N` are its descendants)."""
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
            "WAYMARK_RUN_WORKERS_IN_PROCESS": str(workers_in_process).lower(),
            "WAYMARK_DB_POOL_SIZE": str(pool_size),
            # INFO would log every request (uvicorn's access log) on the measured path.
            "WAYMARK_LOG_LEVEL": "WARNING",
            # One load generator is one client address and one key: the default limits
            # (600/minute per address) would refuse a full run's requests with 429.
            "WAYMARK_RATE_LIMIT_PER_IP": "",
            "WAYMARK_RATE_LIMIT_PER_KEY": "",
            "WAYMARK_DATA_DIR": str(bench.workdir / "server-data"),
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
    )
    command = [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603
            [*prefix, *command],
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
        yield base_url, process
    finally:
        _terminate(process, signal.SIGINT if prefix else signal.SIGTERM)
        if process.returncode not in (0, -signal.SIGTERM, None):
            progress(f"waymark serve exited {process.returncode}:\n{_log_tail(log)}")
