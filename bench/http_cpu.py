"""`http-cpu`: what one HTTP request costs the API process, by route, in CPU.

Target 2 (issue 11) is bound by the API processes' CPU: at 500 req/s a process whose GIL is
nearly full answers late in bursts, and the open-loop p99 swings by 2x between runs of the
same code on this VM. The CPU each request costs is the steadier figure behind it, and the
one a change to the request path moves. Against `waymark serve` (no in-process workers, no
rate limits), from THREADS keep-alive clients in this process, one phase each:

- `GET /health/live`: the HTTP floor (uvicorn, the middleware, a route that does nothing);
- `POST /v1/instances` of a definition that suspends at a `wait` (a start);
- the signed `POST /v1/callbacks/{token}` of each of those instances (a resume to the end).

Each row's note gives the CPU per request of the server's process tree and of PostgreSQL
(/proc, over the phase, bench/cpu.py), and how busy the machine was. The clients share the
machine: their own CPU is not counted, but they compete for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from bench.compare_base import pg_pid
from bench.cpu import Window
from bench.harness import API_KEY, TENANT, THREADS, Bench, Result, hammer, serving_process, warm_up
from bench.openloop import SECRET, WAIT, server_env
from bench.openloop_gen import sign

CALLBACK_BODY = b'{"ok":true}'


def bench_http_cpu(bench: Bench, total: int, seconds: float, pool_size: int) -> list[Result]:
    import httpx

    bench.container.definitions.publish(TENANT, WAIT)
    with serving_process(bench, pool_size, extra_env=server_env()) as (base_url, server):
        local = threading.local()
        clients: list[httpx.Client] = []

        def client() -> httpx.Client:
            if not hasattr(local, "client"):
                local.client = httpx.Client(base_url=base_url, timeout=30.0)
                clients.append(local.client)
            client_: httpx.Client = local.client
            return client_

        tokens: list[str] = []

        def live(_k: int, _i: int) -> None:
            _expect(client().get("/health/live"), 200)

        def start(_k: int, _i: int) -> None:
            response = client().post(
                "/v1/instances",
                json={"definition": WAIT["name"], "input": {}},
                headers={"Authorization": f"Bearer {API_KEY}"},
            )
            _expect(response, 201)
            tokens.append(response.json()["bookmarks"][0]["token"])

        def callback(_k: int, i: int) -> None:
            path = f"/v1/callbacks/{tokens[i]}"
            headers = {
                "Content-Type": "application/json",
                "Waymark-Signature": sign(SECRET, path, CALLBACK_BODY),
            }
            _expect(client().post(path, content=CALLBACK_BODY, headers=headers), 200)

        try:
            warm_up(live, THREADS)
            warm_up(start, THREADS)
            warm_up(callback, THREADS)
            del tokens[:]  # the warm-up's instances are resumed; the phases start afresh
            trees = {"server": server.pid, "postgres": pg_pid(bench)}
            results = [
                _phase("http-cpu/live", live, total, seconds, trees),
                _phase("http-cpu/start", start, total, seconds, trees),
            ]
            # As many callbacks as the start phase left instances, one each.
            results.append(_phase("http-cpu/callback", callback, len(tokens), seconds, trees))
            return results
        finally:
            for each in clients:
                each.close()


def _phase(
    name: str,
    op: Callable[[int, int], Any],
    total: int,
    seconds: float,
    trees: dict[str, int | None],
) -> Result:
    window = Window(dict(trees)).start()
    result = hammer(f"{name}/{THREADS}t", op, threads=THREADS, total=total, seconds=seconds)
    window.stop()
    if result.ops:
        per = {label: used / result.ops * 1000 for label, used in window.seconds.items()}
        busy = f", machine {window.busy:.0%} busy" if window.busy is not None else ""
        result.note = (
            f"CPU ms/request: server {per['server']:.2f}, postgres {per['postgres']:.2f}{busy}"
        )
    return result


def _expect(response: Any, status: int) -> None:
    if response.status_code != status:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
