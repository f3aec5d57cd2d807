"""The open-loop load generator of `http-open-loop` (issue 11, target 2), run as a process of
its own: `python -m bench.openloop_gen < plan.json`, one JSON line per measured phase on
stdout.

Open loop: request k of a phase is *scheduled* at `t0 + k / rate` and sent then, whether or
not earlier requests have been answered (up to `connections` keep-alive connections; past
that, requests queue in the client). Latency is measured from the scheduled time, so a
server that falls behind shows as latency and is never hidden by a generator that slows down
with it (no coordinated omission). `lag` is how late the generator itself sent (its own
event loop falling behind on a busy machine), reported so a generator-bound step can be told
from a server-bound one. `slowest_at` (unix seconds) is when the phase's slowest answered
request was due, to match a stall with the server's or the database's logs. The requests go
out through `bench/http_client.py` (keep-alive connections, the httptools parser): about
half the shared machine's CPU per request that aiohttp took.

A phase: `start` posts `/v1/instances` of a definition that suspends at a `wait` (the
response names the wait's bookmark token); `callback` posts `/v1/callbacks/{token}`, signed
(`Waymark-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<path>.<raw body>">`,
SPEC §4), for the tokens the step's starts returned. Each step runs a start phase, then a
callback phase, at the same rate, with a pause between phases until the server answers
promptly again (`settle`). What is still unanswered `drain` seconds after the last scheduled
request is cancelled and counted as an error (`timeout`).

The plan: `{"base_url", "api_key", "secret", "definition", "connections", "drain",
"settle", "steps": [{"label", "rate", "seconds"}], "search": {"from", "factor", "max",
"seconds", "p99_ms", "max_error_ratio", "max_steps"} | null}`. With `search`, an ascending
search comes before the steps: the rate grows by `factor` until a step misses (p99 >=
`p99_ms` for either phase, errors above the ratio, or under 95 % of the rate achieved); then
one step halfway between the last rate that held and the first that missed. If the first
rate misses, it goes down by `factor` instead until one holds (not below SEARCH_FLOOR).
`max_steps` steps at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bench.http_client import Pool, build

HELD_FRACTION = 0.95  # of the scheduled rate a step must achieve to count as sustained
SETTLE_MAX_SECONDS = 30.0
SEARCH_FLOOR = 5.0  # req/s: the search goes no lower
SETTLED_MS = 20.0


@dataclass
class Phase:
    label: str
    kind: str  # start | callback
    rate: float
    scheduled: int
    latencies: list[float] = field(default_factory=list)  # seconds, scheduled -> answered
    lags: list[float] = field(default_factory=list)  # seconds, scheduled -> sent
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0  # first scheduled time -> last answer
    slowest_at: float = 0.0  # wall clock (unix seconds) the slowest answered request was due

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def percentile(self, q: float, values: list[float] | None = None) -> float:
        ordered = sorted(self.latencies if values is None else values)
        if not ordered:
            return float("inf")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def achieved(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def held(self, p99_ms: float, max_error_ratio: float) -> bool:
        return (
            self.ok > 0
            and self.percentile(0.99) * 1000 < p99_ms
            and self.failed <= max_error_ratio * self.scheduled
            and self.achieved >= HELD_FRACTION * self.rate
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "kind": self.kind,
            "rate": self.rate,
            "scheduled": self.scheduled,
            "ok": self.ok,
            "errors": dict(self.errors),
            "seconds": round(self.seconds, 3),
            "achieved": round(self.achieved, 1),
            "p50_ms": round(self.percentile(0.50) * 1000, 2) if self.ok else None,
            "p99_ms": round(self.percentile(0.99) * 1000, 2) if self.ok else None,
            "max_ms": round(max(self.latencies) * 1000, 2) if self.ok else None,
            "slowest_at": round(self.slowest_at, 3),
            "lag_p99_ms": round(self.percentile(0.99, self.lags) * 1000, 2) if self.lags else None,
            "latencies": [round(x, 5) for x in self.latencies],
        }


def sign(secret: str, path: str, body: bytes, now: float | None = None) -> str:
    """The `Waymark-Signature` header value for a callback (SPEC §4)."""
    t = str(int(time.time() if now is None else now))
    digest = hmac.new(secret.encode(), f"{t}.{path}.".encode() + body, hashlib.sha256)
    return f"t={t},v1={digest.hexdigest()}"


class Generator:
    def __init__(self, plan: dict[str, Any], pool: Pool) -> None:
        self.plan = plan
        self.pool = pool
        self.host = urlsplit(plan["base_url"]).netloc
        body = json.dumps({"definition": plan["definition"], "input": {}}).encode()
        self.start_request = build(
            "POST",
            "/v1/instances",
            self.host,
            {"Authorization": f"Bearer {plan['api_key']}", "Content-Type": "application/json"},
            body,
        )
        self.live_request = build("GET", "/health/live", self.host, {})

    async def start(self, tokens: list[str]) -> None:
        status, body = await self.pool.request(self.start_request)
        if status != 201:
            raise _Status(status)
        tokens.append(json.loads(body)["bookmarks"][0]["token"])

    async def callback(self, token: str) -> None:
        path = f"/v1/callbacks/{token}"
        body = b'{"ok":true}'
        headers = {
            "Content-Type": "application/json",
            "Waymark-Signature": sign(self.plan["secret"], path, body),
        }
        status, _ = await self.pool.request(build("POST", path, self.host, headers, body))
        if status != 200:
            raise _Status(status)

    async def phase(
        self, label: str, kind: str, rate: float, count: int, tokens: list[str]
    ) -> Phase:
        result = Phase(label, kind, rate, count)
        loop = asyncio.get_running_loop()
        t0 = loop.time() + 0.05
        wall_t0 = time.time() + (t0 - loop.time())  # to tell when (not only how long) it stalled
        slowest = 0.0
        pending: set[asyncio.Task[None]] = set()
        last_answer = t0

        async def one(k: int, due: float) -> None:
            nonlocal last_answer, slowest
            result.lags.append(loop.time() - due)
            try:
                if kind == "start":
                    await self.start(tokens)
                else:
                    await self.callback(tokens[k])
            except _Status as exc:
                result.errors[f"http {exc.status}"] += 1
            except (OSError, TimeoutError) as exc:  # ConnectionError is an OSError
                result.errors[type(exc).__name__] += 1
            else:
                now = loop.time()
                result.latencies.append(now - due)
                last_answer = max(last_answer, now)
                if now - due > slowest:
                    slowest, result.slowest_at = now - due, wall_t0 + (due - t0)

        for k in range(count):
            due = t0 + k / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(k, due))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            _done, late = await asyncio.wait(set(pending), timeout=float(self.plan["drain"]))
            for task in late:
                task.cancel()
            if late:
                result.errors["timeout"] += len(late)
                with contextlib.suppress(Exception):
                    await asyncio.gather(*late, return_exceptions=True)
        result.seconds = last_answer - t0
        return result

    async def step(self, label: str, rate: float, seconds: float) -> list[Phase]:
        count = max(1, int(rate * seconds))
        tokens: list[str] = []
        started = await self.phase(label, "start", rate, count, tokens)
        emit(started)
        await self.settle()
        resumed = await self.phase(label, "callback", rate, len(tokens), tokens)
        emit(resumed)
        await self.settle()
        return [started, resumed]

    async def settle(self) -> None:
        """Pause, then wait (up to SETTLE_MAX_SECONDS) until the server answers a liveness
        probe promptly twice in a row: an overloaded phase's backlog (requests the server
        still works through after they were cancelled here) must not weigh on the next."""
        await asyncio.sleep(float(self.plan["settle"]))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_MAX_SECONDS
        prompt = 0
        while prompt < 2 and loop.time() < deadline:
            t0 = loop.time()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(self.pool.request(self.live_request), 5.0)
            prompt = prompt + 1 if loop.time() - t0 < SETTLED_MS / 1000 else 0
            await asyncio.sleep(0.2)

    async def run(self) -> None:
        await self.step("warm-up", 20.0, 1.0)  # connections, caches, prepared statements
        search = self.plan.get("search")
        if search:  # first: a fixed step beyond capacity would leave the most backlog
            await self.search(search)
        for step in self.plan["steps"]:
            await self.step(step["label"], float(step["rate"]), float(step["seconds"]))

    async def search(self, search: dict[str, Any]) -> None:
        p99_ms, ratio = float(search["p99_ms"]), float(search["max_error_ratio"])
        seconds = float(search["seconds"])
        held: float | None = None
        missed: float | None = None
        rate = float(search["from"])
        factor = float(search["factor"])
        steps = int(search["max_steps"])
        while rate <= float(search["max"]) and steps > 0:
            steps -= 1
            if all(p.held(p99_ms, ratio) for p in await self.step("search", rate, seconds)):
                held = rate
                rate = round(rate * factor)
            else:
                missed = rate
                break
        while held is None and missed is not None and missed / factor >= SEARCH_FLOOR:
            if steps <= 0:
                break
            steps -= 1
            # Missed at the first rate (a busy machine): go down until one holds.
            rate = round(missed / factor, 1)
            if all(p.held(p99_ms, ratio) for p in await self.step("search", rate, seconds)):
                held = rate
            else:
                missed = rate
        if held is not None and missed is not None and missed - held > 0.1 * held and steps > 0:
            middle = round((held + missed) / 2)
            if all(p.held(p99_ms, ratio) for p in await self.step("search", middle, seconds)):
                held = middle
        print(json.dumps({"max_sustained": held, "first_missed": missed}), flush=True)


class _Status(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def emit(phase: Phase) -> None:
    print(json.dumps(phase.as_json()), flush=True)


async def main_async(plan: dict[str, Any]) -> None:
    address = urlsplit(plan["base_url"])
    pool = Pool(address.hostname or "127.0.0.1", address.port or 80, int(plan["connections"]))
    try:
        await Generator(plan, pool).run()
    finally:
        pool.close()


def main() -> int:
    plan = json.loads(sys.stdin.read())
    try:
        asyncio.run(main_async(plan))
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
