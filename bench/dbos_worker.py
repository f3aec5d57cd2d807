"""DBOS's side of `dbos-compare`, in a process of its own (DBOS keeps global state):
`python -m bench.dbos_worker --url URL --workflows N --threads 8,16 [--pg-pid PID]
[--migrate-only]`; one JSON line on stdout.

`@DBOS.workflow` calling three `@DBOS.step`s, 16 untimed warm-up calls, then per thread
count T: T threads each calling the workflow and waiting for it until N were run. Per run:
the wall time, the caller's latency p50/p99, this process's CPU seconds, PostgreSQL's (the
tree of `--pg-pid`) and the machine's busy fraction (bench/cpu.py).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import threading
import time
from typing import Any

from bench.compare_base import percentile_ms
from bench.cpu import Window

WARMUP = 16


def dbos_worker(
    url: str, workflows: int, threads: list[int], migrate_only: bool, pg_pid: int | None
) -> None:
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
            for _ in range(WARMUP):  # pools, prepared statements
                three_step(-1)
            for t in threads:
                out.append(dbos_run(three_step, workflows, t, pg_pid))
    finally:
        DBOS.destroy(destroy_registry=True)
    print(json.dumps({"runs": out, "warmup": 0 if migrate_only else WARMUP}))


def dbos_run(workflow: Any, workflows: int, threads: int, pg_pid: int | None) -> dict[str, Any]:
    counter = itertools.count()
    latencies: list[list[float]] = [[] for _ in range(threads)]

    def work(k: int) -> None:
        while (i := next(counter)) < workflows:
            t0 = time.perf_counter()
            workflow(i)
            latencies[k].append(time.perf_counter() - t0)

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    window = Window({"postgres": pg_pid}, own="app").start()
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    seconds = time.perf_counter() - t0
    window.stop()
    merged = [x for own in latencies for x in own]
    return {
        "threads": threads,
        "workflows": len(merged),
        "seconds": seconds,
        "p50_ms": percentile_ms(merged, 0.5),
        "p99_ms": percentile_ms(merged, 0.99),
        "cpu_seconds": window.seconds,
        "busy": window.busy,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dbos_worker")
    parser.add_argument("--url", required=True)
    parser.add_argument("--workflows", type=int, required=True)
    parser.add_argument("--threads", required=True)
    parser.add_argument("--pg-pid", type=int)
    parser.add_argument("--migrate-only", action="store_true")
    args = parser.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    dbos_worker(args.url, args.workflows, threads, args.migrate_only, args.pg_pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
