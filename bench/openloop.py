"""`http-open-loop` (issue 11, target 2): `POST /v1/instances` of a definition that suspends at
a `wait`, then the signed `POST /v1/callbacks/{token}` of each, at fixed open-loop rates,
against `waymark serve`; also `python -m bench.run --only http-open-loop`.

The load comes from a process of its own (`bench/openloop_gen.py`: asyncio + httpx, many
keep-alive connections, each request sent at its scheduled time and timed from it), so it
does not slow down when the server does. A step is a start phase and then a callback phase at
the same rate: first an ascending search for the highest rate at which both phases keep
p99 < 50 ms without errors, then the fixed step, 500 req/s. One table row per phase and step.
Then the fixed step once more against `waymark serve --workers 2` (two API processes on the
one database, the replica topology; rows `.../2api`): one process is bound by its GIL near
500 callbacks/s on this 2-core machine (docs/performance.md).

The server runs without its in-process workers (nothing here needs them) and without the
rate limits (1,200/minute per key would refuse most of the load); the tenant `bench` gets a
callback secret. Everything started here is stopped at the end, also on Ctrl-C.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bench.harness import (
    API_KEY,
    STOP,
    TENANT,
    Bench,
    Result,
    _terminate,
    checkpoint,
    progress,
    spawn_generator,
)
from bench.harness import serving as serving_

WAIT = {
    "name": "bench-wait",
    "nodes": [
        {"id": "parked", "type": "wait", "result_var": "got"},
        {"id": "done", "type": "end"},
    ],
    "routes": [{"from": "parked", "to": "done"}],
}
SECRET = "bench-callback-secret"  # noqa: S105 - the throw-away bench server's HMAC secret
TARGET_RATE = 500.0
P99_TARGET_MS = 50.0


@dataclass(frozen=True)
class Plan:
    seconds: float  # one phase at a fixed rate
    search_seconds: float  # one phase of the search
    search_from: float
    search_factor: float
    search_max: float
    drain: float  # seconds after the last scheduled request before the rest time out
    settle: float  # pause between phases, so one phase's backlog does not start the next
    connections: int
    search_steps: int  # at most


FULL_PLAN = Plan(15.0, 10.0, 25.0, 1.5, 4000.0, 10.0, 2.0, 256, 12)
QUICK_PLAN = Plan(2.0, 2.0, 25.0, 1.6, 4000.0, 3.0, 0.5, 256, 3)


def server_env() -> dict[str, str]:
    return {
        "WAYMARK_TENANT_SECRETS": f"{TENANT}={SECRET}",
        "WAYMARK_RATE_LIMIT_PER_KEY": "",
        "WAYMARK_RATE_LIMIT_PER_IP": "",
    }


def generator_plan(base_url: str, plan: Plan, *, search: bool = True) -> dict[str, Any]:
    """The generator's plan: the search (unless `search` is False), then the fixed step."""
    return {
        "base_url": base_url,
        "api_key": API_KEY,
        "secret": SECRET,
        "definition": WAIT["name"],
        "connections": plan.connections,
        "drain": plan.drain,
        "settle": plan.settle,
        "steps": [{"label": "fixed", "rate": TARGET_RATE, "seconds": plan.seconds}],
        "search": {
            "from": plan.search_from,
            "factor": plan.search_factor,
            "max": plan.search_max,
            "seconds": plan.search_seconds,
            "p99_ms": P99_TARGET_MS,
            "max_error_ratio": 0.0,
            "max_steps": plan.search_steps,
        }
        if search
        else None,
    }


def run_generator(plan: dict[str, Any], log_path: Any) -> list[dict[str, Any]]:
    """The generator process until it ends; its JSON lines (stopped on Ctrl-C too)."""
    lines: list[dict[str, Any]] = []
    with open(log_path, "ab") as log:
        process = spawn_generator("bench.openloop_gen", stderr=log)
    try:
        assert process.stdin is not None and process.stdout is not None  # noqa: S101
        process.stdin.write(json.dumps(plan))
        process.stdin.close()
        for raw in process.stdout:
            line = json.loads(raw)
            lines.append(line)
            progress(describe(line))
            if STOP.is_set():
                break
        process.wait(30)
        if process.returncode != 0:
            raise RuntimeError(f"the load generator exited {process.returncode} (see {log_path})")
    finally:
        _terminate(process)  # type: ignore[arg-type]
    return lines


def describe(line: dict[str, Any]) -> str:
    if "max_sustained" in line:
        return (
            f"http-open-loop: max sustained rate with p99 < {P99_TARGET_MS:.0f} ms: "
            f"{line['max_sustained']} req/s (first missed: {line['first_missed']})"
        )
    return (
        f"http-open-loop {line['label']} {line['kind']}@{line['rate']:.0f}/s: "
        f"{line['ok']}/{line['scheduled']} ok, achieved {line['achieved']:.0f}/s, "
        f"p50 {line['p50_ms']} p99 {line['p99_ms']} max {line['max_ms']} ms, "
        f"errors {line['errors']}, generator lag p99 {line['lag_p99_ms']} ms"
    )


def as_results(lines: list[dict[str, Any]], suffix: str = "") -> list[Result]:
    """Table rows of the generator's lines; `suffix` ends every row's name (`/2api`)."""
    results: list[Result] = []
    for line in lines:
        if "max_sustained" in line:
            results.append(
                Result(
                    "http-open-loop/max-sustained",
                    int(line["max_sustained"] or 0),
                    1.0,
                    note=(
                        f"ops = highest rate (req/s) where start and callback both kept p99 < "
                        f"{P99_TARGET_MS:.0f} ms, no errors; first missed: {line['first_missed']}"
                    ),
                )
            )
            continue
        if line["label"] == "warm-up":
            continue
        errors = line["errors"]
        results.append(
            Result(
                f"http-open-loop/{line['kind']}@{line['rate']:.0f}"
                + ("" if line["label"] == "fixed" else "/search")
                + suffix,
                line["ok"],
                line["seconds"],
                latencies=line["latencies"],
                errors=sum(errors.values()),
                note=(
                    f"open loop {line['rate']:.0f}/s: p99 {line['p99_ms']} ms, max "
                    f"{line['max_ms']} ms, gen lag p99 {line['lag_p99_ms']} ms"
                    + (f", errors {errors}" if errors else "")
                ),
            )
        )
    return results


def bench_http_open_loop(bench: Bench, quick: bool, pool_size: int) -> list[Result]:
    plan = QUICK_PLAN if quick else FULL_PLAN
    bench.container.definitions.publish(TENANT, WAIT)
    progress("starting waymark serve (no in-process workers, no rate limits)")
    with serving_(bench, pool_size, extra_env=server_env()) as base_url:
        lines = run_generator(generator_plan(base_url, plan), bench.workdir / "openloop.log")
    results = as_results(lines)
    if STOP.is_set():
        return results
    checkpoint(bench)
    progress("starting waymark serve --workers 2 (two API processes) for the fixed step")
    two = {**server_env(), "WAYMARK_API_WORKERS": "2"}
    with serving_(bench, pool_size, extra_env=two) as base_url:
        lines = run_generator(
            generator_plan(base_url, plan, search=False), bench.workdir / "openloop.log"
        )
    return results + as_results(lines, "/2api")
