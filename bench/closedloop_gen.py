"""The closed-loop load generator of `dbos-compare`'s HTTP runs (issue 11, target 1), run as a
process of its own: `python -m bench.closedloop_gen`, the plan as one JSON line on stdin.

Closed loop: `connections` coroutines, each on its own keep-alive connection
(`bench/http_client.py`: asyncio protocols and the httptools parser, on uvloop when
installed), post `POST /v1/instances` `{"definition", "input": {"n": i},
"correlation_id"}` one after the other, the next as soon as the answer to the previous came
back, until `count` starts were sent (or `seconds` passed). It is lean on purpose: on a
2-core machine every CPU-millisecond the client spends is taken from the server and
PostgreSQL (one event loop cost a fraction of httpx + threads per request, and the lean
client about half of what aiohttp took).

Protocol on stdin/stdout: the plan line `{"base_url", "api_key", "definition",
"correlation_id", "count", "connections", "warm", "warm_correlation_id", "seconds"}`; the
generator opens its connections with `warm` untimed starts (`warm_correlation_id`, as many
in flight as connections), prints `{"ready": ...}` and waits for a line `go` on stdin (the
caller takes its CPU readings in between); then the measured starts and one report line:
starts answered (`ok`), `errors` by kind (`http <status>`, the exception's class, `timeout`),
start latency p50/p99/max (request sent → response read), `began`/`ended` (epoch seconds of
the first send and the last answer) and its own CPU seconds over the measured starts
(`resource.getrusage`, user + system) and per request.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from bench.cpu import own_seconds
from bench.http_client import Pool, build

TIMEOUT_SECONDS = 60.0  # one request, sent -> answered


class _Status(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class ClosedLoop:
    def __init__(self, plan: dict[str, Any], pool: Pool) -> None:
        self.plan = plan
        self.pool = pool
        self.host = urlsplit(plan["base_url"]).netloc
        self.headers = {
            "Authorization": f"Bearer {plan['api_key']}",
            "Content-Type": "application/json",
        }
        self.definition = plan["definition"]

    def body(self, tag: str, i: int) -> bytes:
        document = {"definition": self.definition, "input": {"n": i}, "correlation_id": tag}
        return json.dumps(document).encode()

    async def post(self, body: bytes) -> None:
        request = build("POST", "/v1/instances", self.host, self.headers, body)
        status, _ = await asyncio.wait_for(self.pool.request(request), TIMEOUT_SECONDS)
        if status != 201:
            raise _Status(status)

    async def loop(self, tag: str, count: int, deadline: float) -> dict[str, Any]:
        """`count` starts from `connections` coroutines; latencies and errors."""
        counter = itertools.count()
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        last = 0.0

        async def one_connection() -> None:
            nonlocal last
            clock = time.perf_counter
            while (i := next(counter)) < count and clock() < deadline:
                t0 = clock()
                try:
                    await self.post(self.body(tag, i))
                except _Status as exc:
                    errors[f"http {exc.status}"] += 1
                except (OSError, TimeoutError) as exc:  # ConnectionError is an OSError
                    errors[type(exc).__name__] += 1
                else:
                    latencies.append(clock() - t0)
                last = time.time()

        await asyncio.gather(*(one_connection() for _ in range(int(self.plan["connections"]))))
        return {"latencies": latencies, "errors": errors, "last": last}

    async def run(self) -> dict[str, Any]:
        plan = self.plan
        warm = await self.loop(plan["warm_correlation_id"], int(plan["warm"]), float("inf"))
        print(json.dumps({"ready": True, "warm_ok": len(warm["latencies"])}), flush=True)
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        if line.strip() != "go":
            raise SystemExit(f"expected 'go' on stdin, got {line!r}")
        cpu0, began = own_seconds(), time.time()
        deadline = time.perf_counter() + float(plan["seconds"])
        out = await self.loop(plan["correlation_id"], int(plan["count"]), deadline)
        cpu = own_seconds() - cpu0
        ordered = sorted(out["latencies"])
        ok = len(ordered)
        sent = ok + sum(out["errors"].values())

        def ms(q: float) -> float | None:
            return round(ordered[min(ok - 1, int(q * ok))] * 1000, 3) if ok else None

        return {
            "ok": ok,
            "errors": dict(out["errors"]),
            "connections": int(plan["connections"]),
            "p50_ms": ms(0.50),
            "p99_ms": ms(0.99),
            "max_ms": round(ordered[-1] * 1000, 3) if ok else None,
            "began": began,
            "ended": out["last"],
            "cpu_seconds": round(cpu, 4),
            "cpu_ms_per_request": round(cpu * 1000 / sent, 4) if sent else None,
            "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        }


async def main_async(plan: dict[str, Any]) -> dict[str, Any]:
    address = urlsplit(plan["base_url"])
    pool = Pool(address.hostname or "127.0.0.1", address.port or 80, int(plan["connections"]))
    try:
        return await ClosedLoop(plan, pool).run()
    finally:
        pool.close()


def main() -> int:
    plan = json.loads(sys.stdin.readline())
    try:
        import uvloop
    except ImportError:  # not on every platform: the default loop then
        report = asyncio.run(main_async(plan))
    else:
        report = uvloop.run(main_async(plan))
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
