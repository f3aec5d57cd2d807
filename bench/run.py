"""Waymark benchmarks: `python -m bench.run [--quick] [--only NAME ...] [--profile]`.

Starts its own embedded PostgreSQL (pgserver, unix socket only) in a temporary directory,
applies the real migrations, builds the production Container with `build_api(Settings(...))`
and measures the command path, the task worker, the raw event-store commit, the HTTP API
(`waymark serve` under uvicorn on 127.0.0.1), the expression interpreter and the lateness
of timers fired by real `waymark worker timers` processes (bench/timers.py). Prints one
table on stdout (progress goes to stderr). Every loop is bounded in count and in time; the
server, the database and the temporary directory are removed at the end, also on Ctrl-C.

`--profile` runs start-noop from one thread under cProfile instead of the table and prints
the top cumulative entries in Waymark's and eventsourcing's code.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import platform
import pstats
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from bench import cases, dbos_compare, http_cpu, openloop, outbox_lag, scale, timers
from bench.cases import FULL, QUICK, Sizes
from bench.harness import (
    STOP,
    THREADS,
    Bench,
    Result,
    checkpoint,
    environment,
    progress,
    warm_up,
)

BENCHMARKS = (
    "start-noop",
    "start-approve",
    "service-task",
    "raw-commit",
    "http-start",
    "http-cpu",
    "expressions",
    "dbos-compare",
    "timers",
    "http-open-loop",
    "outbox-lag",
    "scale",
)
NEEDS_DATABASE = frozenset(BENCHMARKS) - {"expressions"}


# --- the table -----------------------------------------------------------------------------


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
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(header)]
    right = {1, 2, 3, 4, 5, 6}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(header), line(tuple("-" * w for w in widths))]
    out += [line(row) for row in rows]
    return "\n".join(out)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# --- profile --------------------------------------------------------------------------------

PROFILE_FILTER = r"eventsourcing|/(domain|application|infrastructure|api|workers)/"


def profile_start_noop(bench: Bench, sizes: Sizes, top: int) -> str:
    """start-noop from one thread under cProfile: the top cumulative entries in our code."""
    op = cases.start_noop_op(bench)
    warm_up(op)
    count = sizes.noop_1t
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


def _dbos_compare(
    bench: Bench, args: argparse.Namespace, into: list[dbos_compare.Run]
) -> list[Result]:
    drivers = dbos_compare.DRIVERS if args.http_driver == "both" else (args.http_driver,)
    into.extend(
        dbos_compare.compare(bench, args.quick, args.pool_size, drivers, args.compare_workflows)
    )
    return dbos_compare.as_results(into)


RESULTS_JSON = Path(__file__).resolve().parent / "results.json"


def _write_json(
    args: argparse.Namespace,
    results: list[Result],
    compared: list[dbos_compare.Run],
    total: float,
    server_info: str,
) -> None:
    document = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "postgres": server_info,
        "seconds": round(total, 1),
        "table": [
            {
                "name": r.name,
                "ops": r.ops,
                "seconds": r.seconds,
                "rate": r.rate,
                "p50_ms": r.percentile(0.50),
                "p95_ms": r.percentile(0.95),
                "p99_ms": r.percentile(0.99),
                "errors": r.errors,
                "note": r.note,
            }
            for r in results
        ],
        "dbos_compare": dbos_compare.as_json(compared),
    }
    RESULTS_JSON.write_text(json.dumps(document, indent=2) + "\n")
    progress(f"wrote {RESULTS_JSON}")


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
    parser.add_argument(
        "--http-driver",
        choices=(*dbos_compare.DRIVERS, "both"),
        default="generator",
        help="dbos-compare's HTTP load: the generator process (default), the former httpx "
        "client threads of the bench process, or both one after the other",
    )
    parser.add_argument(
        "--compare-workflows",
        type=int,
        metavar="N",
        help="dbos-compare's workflows per run (default 2,000; quick 200; issue 11 states "
        "its target at 10,000)",
    )
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
    compared: list[dbos_compare.Run] = []
    failed: list[str] = []
    began = time.perf_counter()
    try:
        with environment(
            database=needs_database, pool_size=args.pool_size, definitions=cases.DEFINITIONS
        ) as bench:
            if args.profile:
                print(profile_start_noop(bench, sizes, args.top))
                return 0
            runners: dict[str, Callable[[], list[Result]]] = {
                "start-noop": lambda: cases.bench_start_noop(bench, sizes),
                "start-approve": lambda: cases.bench_start_approve(bench, sizes),
                "service-task": lambda: cases.bench_service_task(bench, sizes),
                "raw-commit": lambda: cases.bench_raw_commit(bench, sizes),
                "http-start": lambda: cases.bench_http_start(bench, sizes, args.pool_size),
                "http-cpu": lambda: http_cpu.bench_http_cpu(
                    bench, sizes.http, sizes.seconds, args.pool_size
                ),
                "expressions": lambda: cases.bench_expressions(bench, sizes),
                "dbos-compare": lambda: _dbos_compare(bench, args, compared),
                "timers": lambda: timers.bench_timers(bench, sizes.timers),
                "http-open-loop": lambda: openloop.bench_http_open_loop(
                    bench, args.quick, args.pool_size
                ),
                "outbox-lag": lambda: outbox_lag.bench_outbox_lag(bench, args.quick),
                "scale": lambda: scale.bench_scale(bench, args.quick, args.pool_size),
            }
            for name in selected:
                if STOP.is_set():
                    break
                progress(f"--- {name}")
                try:
                    checkpoint(bench)
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
    if compared:
        print("\nSide by side with DBOS (same PostgreSQL server, per-workflow counts):\n")
        print(dbos_compare.format_runs(compared))
    _write_json(args, results, compared, total, bench.server_info)
    if failed:
        print(f"\nFAILED: {', '.join(failed)} (see stderr)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
