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
- over HTTP: `waymark serve` (workers in process) in its own process, driven by a closed-loop
  load generator process (`POST /v1/instances`, keep-alive; bench/compare_http.py),
  completion watched the same way.

Each run reports workflows/s (completed / wall time from the first start to the last
completion), p50/p99 start→completed (DBOS: the caller's wait; Waymark: `ended_at -
created_at` of the instance row), and per workflow the deltas of `pg_stat_database` (of that
run's database) and `pg_stat_wal` (the server's) over the run, pools closed before the
second snapshot so every backend has flushed its counters; and where the CPU went: CPU
milliseconds per workflow of the process doing the work (DBOS's, the bench process in process,
the `waymark serve` tree over HTTP), of PostgreSQL, of the load generator per request, and
the machine's busy fraction during the run (bench/cpu.py). `python -m bench.dbos_compare
[--quick]` runs it alone; `bench.run --only dbos-compare` within the table. The shared parts
are in bench/compare_base.py, DBOS's process in bench/dbos_worker.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from typing import Any

from bench.compare_base import (
    FULL_COMPARE,
    QUICK_COMPARE,
    THREE_STEP,
    CompareSizes,
    Run,
    admin_url_of,
    backends,
    create_database,
    drive_threads,
    per_workflow,
    pg_pid,
    snapshot,
)
from bench.compare_http import DRIVERS, run_waymark_http
from bench.cpu import Window
from bench.harness import REPO_ROOT, STOP, TENANT, Bench, Result, checkpoint, progress

__all__ = ["DRIVERS", "Run", "as_json", "as_results", "compare", "format_runs"]
DBOS_DATABASE = "dbos_bench"


def run_dbos(bench: Bench, sizes: CompareSizes) -> Run:
    url = admin_url_of(bench.database_url, DBOS_DATABASE)
    create_database(bench.database_url, DBOS_DATABASE)

    def worker(*extra: str) -> dict[str, Any]:
        cmd = [
            sys.executable,
            "-m",
            "bench.dbos_worker",
            "--url",
            url,
            "--workflows",
            str(sizes.workflows),
            "--threads",
            ",".join(map(str, sizes.dbos_threads)),
            "--pg-pid",
            str(pg_pid(bench) or 0),
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
    connected = backends(bench.database_url, DBOS_DATABASE)
    before = snapshot(bench.database_url, DBOS_DATABASE)
    progress(f"dbos: {sizes.workflows} workflows at each of {sizes.dbos_threads} threads")
    report = worker()
    after = snapshot(bench.database_url, DBOS_DATABASE, backends_at_most=connected)
    runs = report["runs"]
    total = sum(r["workflows"] for r in runs) + int(report["warmup"])
    best = max(runs, key=lambda r: r["workflows"] / r["seconds"])
    sweep = ", ".join(f"{r['threads']}t {r['workflows'] / r['seconds']:,.0f}/s" for r in runs)
    run = Run(
        f"dbos/in-process/{best['threads']}t",
        best["workflows"],
        best["seconds"],
        best["p50_ms"],
        best["p99_ms"],
        per_workflow(before, after, total),
        note=f"DBOS 3.4 @workflow + 3 @step, best of {sweep}",
    )
    run.busy = best["busy"]
    run.cpu_ms = {k: v * 1000 / run.workflows for k, v in best["cpu_seconds"].items()}
    return run


# --- Waymark in process -------------------------------------------------------------------


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

    connected = backends(bench.database_url, "bench")
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
        window = Window({"postgres": pg_pid(bench)}, own="app")
        run = drive_threads(name, bench, sizes, start, tag, window)
    after = snapshot(bench.database_url, "bench", backends_at_most=connected)
    run.per_workflow = per_workflow(before, after, run.workflows + warm)
    run.note = "Container + InProcessWorkers; client threads start, do not wait" + (
        "" if group_commit else "; WAYMARK_GROUP_COMMIT=false (one transaction per command)"
    )
    return run


def compare(
    bench: Bench,
    quick: bool,
    pool_size: int,
    drivers: tuple[str, ...] = ("generator",),
    workflows: int | None = None,
) -> list[Run]:
    """Every run, DBOS first; the HTTP runs once per driver in `drivers` (DRIVERS).
    `workflows`: per run instead of the size's (each run's cap allows 20 workflows/s)."""
    sizes = QUICK_COMPARE if quick else FULL_COMPARE
    if workflows:
        sizes = replace(sizes, workflows=workflows, seconds=max(sizes.seconds, workflows / 20))
    bench.container.definitions.publish(TENANT, THREE_STEP)
    runs = [run_dbos(bench, sizes)]  # after bench.run's CHECKPOINT for the scenario
    http = [
        # Two API processes; the task and timer workers in processes of their own.
        lambda d=d, n=n: run_waymark_http(bench, sizes, pool_size, api_workers=n, driver=d)
        for n in (1, 2)
        for d in drivers
    ]
    measures = (
        lambda: run_waymark_in_process(bench, sizes, pool_size),
        *http,
        # The same in-process run with every command in its own transaction: the baseline
        # group commit is measured against, in the same run.
        lambda: run_waymark_in_process(bench, sizes, pool_size, group_commit=False),
    )
    for measure in measures:
        if STOP.is_set():
            break
        checkpoint(bench)  # each run starts with no other run's dirty pages to write
        runs.append(measure())
    return runs


def cpu_note(run: Run) -> str:
    """Where the CPU went: ms per workflow (the generator's per request), machine busy."""
    c = run.cpu_ms
    parts = [f"{label} {c[label]:.2f}" for label in ("app", "postgres") if label in c]
    if "generator" in c:
        parts.append(f"generator {c['generator']:.3f}/req")
    busy = f"machine {run.busy:.0%} busy" if run.busy is not None else ""
    return ", ".join(filter(None, ["CPU ms/wf: " + ", ".join(parts) if parts else "", busy]))


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
            f"rec, {counts.get('wal_bytes', 0) / 1024:.1f} KB WAL; {cpu_note(run)}"
        )
        result = Result(run.name, run.workflows, run.seconds, note=note)
        result.latencies = [(run.p50_ms or 0) / 1000.0]  # p50 column only
        out.append(result)
    return out


def format_runs(runs: list[Run]) -> str:
    """The side-by-side table; CPU columns in ms per workflow (`gen`: per request), `busy`
    the machine's busy fraction during the run."""
    dbos = runs[0].rate if runs else 0.0
    header = (
        f"{'run':48} {'wf':>5} {'wf/s':>6} {'vs DBOS':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'commits':>7} {'rollbk':>6} {'ins':>5} {'upd':>5} {'fetch':>6} {'WAL rec':>7} "
        f"{'WAL KB':>6} {'app ms':>6} {'pg ms':>6} {'gen ms':>6} {'busy':>5}"
    )
    lines = [header, "-" * len(header)]

    def cpu(r: Run, label: str, digits: int = 2) -> str:
        return f"{r.cpu_ms[label]:>6.{digits}f}" if label in r.cpu_ms else f"{'-':>6}"

    for r in runs:
        c = r.per_workflow
        lines.append(
            f"{r.name:48} {r.workflows:>5} {r.rate:>6.1f} {r.rate / dbos if dbos else 0:>6.2f}x "
            f"{r.p50_ms or 0:>7.1f} {r.p99_ms or 0:>7.1f} {c.get('xact_commit', 0):>7.1f} "
            f"{c.get('xact_rollback', 0):>6.1f} {c.get('tup_inserted', 0):>5.1f} "
            f"{c.get('tup_updated', 0):>5.1f} {c.get('tup_fetched', 0):>6.0f} "
            f"{c.get('wal_records', 0):>7.0f} {c.get('wal_bytes', 0) / 1024:>6.1f} "
            f"{cpu(r, 'app')} {cpu(r, 'postgres')} {cpu(r, 'generator', 3)} "
            + (f"{r.busy:>5.0%}" if r.busy is not None else f"{'-':>5}")
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
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--http-driver", choices=(*DRIVERS, "both"), default="generator")
    parser.add_argument("--compare-workflows", type=int)
    args = parser.parse_args(argv)
    from bench import run as bench_run

    return bench_run.main(
        ["--only", "dbos-compare", "--http-driver", args.http_driver]
        + (["--quick"] if args.quick else [])
        + (["--compare-workflows", str(args.compare_workflows)] if args.compare_workflows else [])
    )


if __name__ == "__main__":
    sys.exit(main())
