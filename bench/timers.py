"""Timer lateness at scale (issue 8): `python -m bench.timers [--timers N] [--replicas R]`,
also `python -m bench.run --only timers`.

Starts R real `waymark worker timers` processes (poll 30 s: they fire from the alarms their
LISTEN/NOTIFY sets, as in production), then creates N instances of `timer(until) -> end`
whose due times are spread evenly over one window (10 s) a little in the future — all
created before the window opens, so creating them does not compete with firing them. Once
every instance has completed it reads each stored history and reports the lateness of each
firing (the `at` of its BookmarkResumed event minus its due time, or minus the time it
was stored if that was later): p50/p99/max, and the firing rate. The window is placed once
the workers are listening (their start-up is not in the lead time). `--profile` fires with
one timer worker in this process under cProfile instead of the subprocesses and prints the
top entries. Not part of `make test`; nothing asserts.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any
from uuid import UUID

from application.commands import StartInstance
from bench.harness import (
    API_KEYS,
    REPO_ROOT,
    STOP,
    TENANT,
    Bench,
    Result,
    _terminate,
    environment,
    progress,
)

DEFINITION = {
    "name": "bench-timer",
    "nodes": [
        {"id": "pause", "type": "timer", "until": "input.at"},
        {"id": "done", "type": "end"},
    ],
    "routes": [{"from": "pause", "to": "done"}],
}
CREATE_THREADS = 6
FIRED_LINE = re.compile(r"fired (\d+) due timer\(s\), (\d+) already handled elsewhere")
PROFILE_FILTER = r"eventsourcing|psycopg|/(domain|application|infrastructure|workers)/"


@dataclass
class Measured:
    timers: int
    replicas: int
    created_seconds: float
    lateness: list[float]  # seconds, one per timer
    fired_span: float  # first firing to last firing, seconds
    fired_by: list[int]
    profile: str = ""
    # Batches that fired something, per worker (their log lines): ~one per timer when the
    # workers keep up with the due times, far fewer when they fire backlogs (a worker that
    # slept past due times fires them together).
    batches: list[int] = field(default_factory=list)
    # Timers stored after their due time (the window opened during creation): their
    # lateness counts from when they were stored; any at all makes the run suspect.
    created_late: int = 0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.lateness)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def rate(self) -> float:
        return len(self.lateness) / self.fired_span if self.fired_span > 0 else 0.0

    def summary(self) -> str:
        return (
            f"{self.timers} timers due in one window, {self.replicas} replica(s) "
            f"(fired {self.fired_by} in {self.batches} batches); "
            f"created in {self.created_seconds:.1f} s\n"
            f"lateness p50 {self.percentile(0.5) * 1000:.0f} ms, "
            f"p99 {self.percentile(0.99) * 1000:.0f} ms, max {max(self.lateness) * 1000:.0f} ms; "
            f"firing rate {self.rate:,.0f}/s (first to last firing, {self.fired_span:.1f} s)"
            + (f"; {self.created_late} created after their due time" if self.created_late else "")
        )


def worker_env(bench: Bench, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("WAYMARK_") and k != "DATABASE_URL"
    }
    env.update(
        {
            "DATABASE_URL": bench.database_url,
            "WAYMARK_API_KEYS": API_KEYS,
            "WAYMARK_TIMER_POLL_INTERVAL": "30",
            "WAYMARK_DATA_DIR": str(bench.workdir / "worker-data"),
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    return env


@contextmanager
def replicas(bench: Bench, count: int, env: dict[str, str]) -> Iterator[list[Any]]:
    """`count` timer workers, each once it listens; SIGTERM after. Yields their log paths."""
    started = []
    try:
        for k in range(count):
            log = bench.workdir / f"timers-{k}.log"
            with log.open("ab") as out:
                process = subprocess.Popen(  # noqa: S603
                    [sys.executable, "-m", "api.cli", "worker", "timers"],
                    cwd=REPO_ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            started.append((process, log))
        deadline = time.monotonic() + 60
        for process, log in started:
            while "listening on" not in log.read_text(errors="replace"):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"timer worker not up:\n{log.read_text()[-3000:]}")
                time.sleep(0.1)
        yield [log for _process, log in started]
    finally:
        for process, _log in started:
            _terminate(process)


def create(container: Any, window_start: datetime, window: float, count: int) -> list[UUID]:
    def one(i: int) -> UUID:
        at = window_start + timedelta(seconds=window * i / count)
        view, _ = container.instances.start(
            StartInstance(TENANT, DEFINITION["name"], input={"at": at.isoformat()})
        )
        return UUID(view["id"])

    with ThreadPoolExecutor(CREATE_THREADS) as pool:
        return list(pool.map(one, range(count)))


def creation_rate(container: Any) -> float:
    """Instances per second this process creates (a short, untimed-for-the-result sample)."""
    far = datetime.now(UTC) + timedelta(days=365)
    sample = 300
    t0 = time.perf_counter()
    create(container, far, 0.0, sample)  # due in a year: never fired during the run
    return sample / (time.perf_counter() - t0)


def completed(container: Any) -> int:
    with container.core.datastore.transaction(commit=False) as curs:
        curs.execute(
            "SELECT count(*) AS n FROM instances WHERE definition = %s AND status = 'completed'",
            (DEFINITION["name"],),
        )
        row = curs.fetchone()
        return int(row["n"]) if row else 0


def wait_all(container: Any, count: int, until: float) -> None:
    while completed(container) < count:
        if STOP.is_set() or time.monotonic() > until:
            raise RuntimeError(f"only {completed(container)} of {count} timers fired in time")
        time.sleep(0.2)


def firing_of(container: Any, instance_id: UUID) -> tuple[datetime, datetime, datetime]:
    """(due, created, fired) of the instance's timer, from its stored events."""
    entries, _ = container.instances.history(TENANT, instance_id, limit=50)
    start = next(e for e in entries if e.type == "Started")
    fired = [e for e in entries if e.type == "BookmarkResumed"]
    if len(fired) != 1:
        raise AssertionError(f"{instance_id}: fired {len(fired)} times")
    due = datetime.fromisoformat(start.data["input"]["at"])
    return due, start.timestamp, datetime.fromisoformat(str(fired[0].data["at"]))


def measure(
    bench: Bench,
    count: int,
    window: float,
    replica_count: int,
    *,
    profile: bool = False,
    commit_group: int | None = None,
) -> Measured:
    container = bench.container
    group = {} if commit_group is None else {"WAYMARK_TIMER_COMMIT_GROUP": str(commit_group)}
    env = worker_env(bench, **group)
    profiled = ""
    with replicas(bench, 0 if profile else replica_count, env) as logs:
        # The window is placed once the workers are up, from a creation rate sampled while
        # they listen (their wake-ups slow creation down): before, the lead was computed
        # first and the workers' start-up (seconds on a loaded machine) ate into it, so the
        # window opened while timers were still being created, and their creation lag was
        # reported as firing lateness (the quick run's p99 of ~1 s).
        rate = creation_rate(container)
        lead = count / rate * 2.0 + 3.0
        window_start = datetime.now(UTC) + timedelta(seconds=lead)
        progress(f"creating {count} timers at ~{rate:.0f}/s; the window opens in {lead:.0f} s")
        t0 = time.perf_counter()
        ids = create(container, window_start, window, count)
        created = time.perf_counter() - t0
        if datetime.now(UTC) > window_start:
            progress("WARNING: the window opened before every timer was created")
        until = time.monotonic() + lead + window + 300
        if profile:
            profiled = run_profiled(bench, count, until)
        else:
            wait_all(container, count, until)
    progress("reading the stored histories")
    with ThreadPoolExecutor(8) as pool:
        pairs = list(pool.map(lambda i: firing_of(container, i), ids))
    # A timer stored after its due time cannot fire before it was stored: its lateness is
    # counted from then, and how many there were is reported (`created_late`).
    lateness = [(fired - max(due, made)).total_seconds() for due, made, fired in pairs]
    created_late = sum(1 for due, made, _fired in pairs if made > due)
    fired_times = [fired for _due, _made, fired in pairs]
    span = (max(fired_times) - min(fired_times)).total_seconds()
    texts = [log.read_text(errors="replace") for log in logs]
    fired_by = [sum(int(m.group(1)) for m in FIRED_LINE.finditer(text)) for text in texts]
    batches = [sum(1 for m in FIRED_LINE.finditer(text) if int(m.group(1))) for text in texts]
    return Measured(
        count, 1 if profile else replica_count, created, lateness, span, fired_by, profiled,
        batches, created_late,
    )  # fmt: skip


def run_profiled(bench: Bench, count: int, until: float) -> str:
    """One TimerWorker in this process (its loop on this thread, under cProfile)."""
    from infrastructure.worker_bootstrap import build_timer_worker
    from workers.timer_worker import TimerWorker

    worker = TimerWorker(build_timer_worker(bench.container.settings, core=bench.container.core))

    def watch() -> None:
        wait_all(bench.container, count, until)
        worker.runner.stop()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        worker.runner.run_forever()
    finally:
        profiler.disable()
    watcher.join(5)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats(pstats.SortKey.CUMULATIVE)
    stats.print_stats(PROFILE_FILTER, 30)
    return out.getvalue()


def as_results(measured: Measured) -> list[Result]:
    """The bench.run table's row: ops = timers fired, latency columns = lateness."""
    note = (
        f"lateness p99 {measured.percentile(0.99) * 1000:.0f} ms, max "
        f"{max(measured.lateness) * 1000:.0f} ms; {measured.replicas} worker(s) {measured.fired_by}"
        f" in {measured.batches} batches"
        + (f"; {measured.created_late} created late" if measured.created_late else "")
    )
    return [
        Result(
            f"timers/{measured.replicas}w",
            len(measured.lateness),
            measured.fired_span,
            measured.lateness,
            note=note,
        )
    ]


def bench_timers(bench: Bench, count: int, window: float = 10.0, replicas: int = 2) -> list[Result]:
    """For bench.run: publishes the definition, measures, one table row."""
    bench.container.definitions.publish(TENANT, DEFINITION)
    measured = measure(bench, count, window, replicas)
    progress(measured.summary())
    return as_results(measured)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    STOP.set()
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--timers", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="one in-process worker, cProfile")
    parser.add_argument(
        "--commit-group",
        type=int,
        help="the workers' WAYMARK_TIMER_COMMIT_GROUP (1: one transaction per timer)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.simplefilter("ignore")
    # SIGTERM like Ctrl-C: the workers, PostgreSQL and the temporary directory are removed.
    signal.signal(signal.SIGTERM, _on_sigterm)
    with environment(database=True, pool_size=8, definitions=[DEFINITION]) as bench:
        measured = measure(
            bench,
            args.timers,
            args.window,
            args.replicas,
            profile=args.profile,
            commit_group=args.commit_group,
        )
    print(measured.summary())
    if measured.profile:
        print(measured.profile)


if __name__ == "__main__":
    main()
