"""Writers' latency while the cleanup runs (issue 8): `python -m bench.cleanup [--quick]`.

Seeds ended instances (a chain of `set` nodes: ~30 events each), then measures instance
starts by writer threads — alone (baseline), and while a cleanup (clock moved 100 days on)
deletes the seeded instances: in bounded batches with and without its VACUUM, and, as the
counter-example, in one transaction. The writers' latency is taken over the cleanup's run.
Not part of `make test`; nothing asserts on timings.
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from application.cleanup import CleanupService
from application.commands import StartInstance
from bench.harness import TENANT, Result, environment, hammer, progress
from infrastructure.clock import SystemClock

CHAIN = 30
WRITERS = 4
CHAIN_DOC = {
    "name": "chain",
    "nodes": [{"id": f"s{i}", "type": "set", "variables": {"x": str(i)}} for i in range(CHAIN)]
    + [{"id": "done", "type": "end"}],
    "routes": [{"from": f"s{i}", "to": f"s{i + 1}"} for i in range(CHAIN - 1)]
    + [{"from": f"s{CHAIN - 1}", "to": "done"}],
}
QUICK_DOC = {"name": "quick", "nodes": [{"id": "done", "type": "end"}], "routes": []}


class Later:
    def now(self) -> datetime:
        return SystemClock().now() + timedelta(days=100)


def seed(container: Any, instances: int) -> None:
    hammer(
        "seed",
        lambda k, i: container.instances.start(StartInstance(TENANT, "chain")),
        threads=WRITERS,
        total=instances,
        seconds=600,
    )


def writers_during(container: Any, work: Any) -> tuple[Result, float, Any]:
    """Writer threads start instances until `work()` returns; (their latencies, work's
    seconds, work's result)."""
    stop = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(WRITERS)]

    def write(k: int) -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            container.instances.start(StartInstance(TENANT, "quick"))
            latencies[k].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=write, args=(k,), daemon=True) for k in range(WRITERS)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # the writers reach their steady state before the work starts
    for own in latencies:
        own.clear()
    started = time.perf_counter()
    outcome = work()
    took = time.perf_counter() - started
    stop.set()
    for t in threads:
        t.join()
    merged = [x for own in latencies for x in own]
    return Result("writers", len(merged), took, merged), took, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="500 seeded instances, not 3000")
    args = parser.parse_args()
    instances = 500 if args.quick else 3000
    with environment(database=True, pool_size=8, definitions=[CHAIN_DOC, QUICK_DOC]) as bench:
        container = bench.container
        base = container.cleanup
        rows: list[tuple[str, Result, float, str]] = []

        baseline, took, _ = writers_during(container, lambda: time.sleep(8))
        rows.append(("baseline (no cleanup)", baseline, took, ""))
        scenarios = [
            ("cleanup, batches of 2000 rows + VACUUM", {"batch_rows": 2000, "vacuum": True}),
            ("cleanup, batches of 2000 rows, no VACUUM", {"batch_rows": 2000, "vacuum": False}),
            ("cleanup, ONE transaction, no VACUUM", {"batch_rows": 10**9, "vacuum": False}),
        ]
        for label, policy in scenarios:
            progress(f"seeding {instances} ended instances")
            seed(container, instances)
            service = CleanupService(base.store, Later(), replace(base.policy, **policy))
            result, took, report = writers_during(container, service.run)
            deleted = report.deleted.get("waymark_events", 0)
            rows.append((label, result, took, f"{deleted} events deleted"))
        print(f"\n{'scenario':44} {'writes':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  took")
        for label, result, took, note in rows:
            p50, p99 = result.percentile(0.5), result.percentile(0.99)
            worst = max(result.latencies) * 1000 if result.latencies else 0.0
            print(
                f"{label:44} {result.ops:7d} {p50 or 0:8.1f} {p99 or 0:8.1f} {worst:8.1f}"
                f"  {took:.2f} s {note}"
            )


if __name__ == "__main__":
    main()
