"""Scale (issue 11, target 5): an empty store against one holding N stored instances.

`python -m bench.run --only scale [--quick]`. Two databases on the same PostgreSQL server:
`bench` (migrated, the definitions published, nothing else) and `bench_scale`, into which
bench/bulk_load.py writes N instances (full: 1,000,000; quick: 50,000) — mostly ended, copied
from real template instances, half of them the measured tenant's, the rest spread over three
other tenants. One `waymark serve` per database, both up at once; the measurement alternates
between them in rounds (empty, loaded, empty, loaded, ...) so that the shared machine's noise
falls on both sides alike:

- `scale/start`: `POST /v1/instances` of `set -> end` (it completes in its start command);
- `scale/list`: `GET /v1/instances` in its usual shapes, one after the other: no filter,
  `status=completed`, `status=suspended`, `definition=...`, `correlation_id=...` (one
  instance's), `created_after=` a day ago, page 2 and a page 20 deep via `next_cursor`, and
  `condition=stuck`/`long_running`; the slowest shape's p99 is printed on stderr.

`scale/gauges` plans the cross-tenant counts behind `/metrics` (infrastructure/postgres/
system_gauges.py) with EXPLAIN (ANALYZE, BUFFERS) as the application role on both databases:
the pages one scrape reads, a count that does not depend on the machine's noise.

Then the API process's RSS (from /proc via psutil) of each server, and a soak of the loaded
server (full: 10 minutes; quick: 30 s) under a steady mix of starts, lists and GETs while its
RSS is sampled every few seconds: start, end, max and the slope (MB per minute over the
second half, once caches and pools are warm). Both servers stop at the end.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from bench import bulk_load
from bench.harness import API_KEY, STOP, TENANT, Bench, Result, hammer, progress, serving

DATABASE = "bench_scale"
OTHER_TENANTS = ("acme", "globex", "initech")
THREADS = 4


@dataclasses.dataclass(frozen=True)
class ScaleSizes:
    instances: int
    rounds: int
    per_round: int  # requests of each kind per side per round
    soak_seconds: float
    sample_every: float


FULL = ScaleSizes(1_000_000, rounds=4, per_round=500, soak_seconds=600.0, sample_every=10.0)
QUICK = ScaleSizes(50_000, rounds=3, per_round=150, soak_seconds=30.0, sample_every=2.0)


def _database_url(url: str, name: str) -> str:
    from infrastructure.embedded_postgres import database_url_for

    return database_url_for(url, name)


def create_loaded_database(bench: Bench) -> str:
    from infrastructure.postgres.migrate import migrate

    with psycopg.connect(bench.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(DATABASE)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    url = _database_url(bench.database_url, DATABASE)
    migrate(url)
    return url


def load_store(bench: Bench, url: str, count: int) -> tuple[bulk_load.LoadReport, list[str]]:
    """The templates run and captured in the loaded database, then `count` copies.

    Returns the report and the measured tenant's ids of a few loaded instances' correlation."""
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings

    tenants = [TENANT, *OTHER_TENANTS]
    container = build_api(Settings(database_url=url, api_keys="k=bench:admin", db_pool_size=2))
    try:
        templates = bulk_load.prepare(container, url, tenants)
    finally:
        container.close()
    # Half the copies the measured tenant's: it appears three times in the rotation.
    rotation = [TENANT, OTHER_TENANTS[0], TENANT, OTHER_TENANTS[1], TENANT, OTHER_TENANTS[2]]
    report = bulk_load.load(
        url, templates, count, tenants=rotation, weights=bulk_load.WEIGHTS, progress=progress
    )
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT correlation_id FROM instances WHERE tenant = %s AND correlation_id IS NOT NULL "
            "ORDER BY created_at LIMIT 1 OFFSET %s",
            (TENANT, count // 4),
        ).fetchall()
    return report, [r[0] for r in rows]


# --- the requests ---------------------------------------------------------------------------


class Side:
    """One `waymark serve` and its clients, with the list shapes it is asked."""

    def __init__(self, name: str, base_url: str, correlation: str) -> None:
        import httpx

        self.name = name
        self.base_url = base_url
        self.clients = [
            httpx.Client(
                base_url=base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60
            )
            for _ in range(THREADS)
        ]
        day_ago = (datetime.now(UTC) - timedelta(days=1)).isoformat()
        self.shapes: list[tuple[str, dict[str, Any]]] = [
            ("all", {}),
            ("status=completed", {"status": "completed"}),
            ("status=suspended", {"status": "suspended"}),
            ("definition", {"definition": bulk_load.APPROVE["name"]}),
            ("correlation_id", {"correlation_id": correlation}),
            ("created_after", {"created_after": day_ago}),
            ("page 2", {"cursor": self._cursor_after(1)}),
            ("page 20", {"cursor": self._cursor_after(19)}),
            ("condition=stuck", {"condition": "stuck"}),
            ("condition=long_running", {"condition": "long_running"}),
        ]
        self.by_shape: dict[str, list[float]] = {shape: [] for shape, _ in self.shapes}

    def _cursor_after(self, pages: int) -> str | None:
        cursor = None
        for _ in range(pages):
            params = {"limit": 50, **({"cursor": cursor} if cursor else {})}
            response = self.clients[0].get("/v1/instances", params=params)
            response.raise_for_status()
            cursor = response.json()["next_cursor"]
            if cursor is None:
                break
        return cursor

    def start(self, k: int, i: int) -> None:
        response = self.clients[k].post(
            "/v1/instances", json={"definition": bulk_load.NOOP["name"], "input": {"n": i}}
        )
        if response.status_code != 201:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")

    def list(self, k: int, i: int) -> None:
        shape, params = self.shapes[i % len(self.shapes)]
        params = {"limit": 50, **{key: v for key, v in params.items() if v is not None}}
        t0 = time.perf_counter()
        response = self.clients[k].get("/v1/instances", params=params)
        self.by_shape[shape].append(time.perf_counter() - t0)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")

    def get(self, k: int, i: int) -> None:
        response = self.clients[k].get("/v1/instances", params={"limit": 5})
        items = response.json()["items"]
        if items:
            self.clients[k].get(f"/v1/instances/{items[i % len(items)]['id']}").raise_for_status()
            self.clients[k].get(f"/v1/instances/{items[0]['id']}/history").raise_for_status()

    def close(self) -> None:
        for client in self.clients:
            client.close()


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000.0 if ordered else 0.0


def server_rss(base_url: str) -> int:
    """Resident bytes of the `waymark serve` child listening on base_url's port."""
    import psutil

    port = base_url.rsplit(":", 1)[1]
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = child.cmdline()
            if "serve" in cmdline and port in cmdline:
                return int(child.memory_info().rss)
        except psutil.Error:
            continue
    raise RuntimeError(f"no waymark serve process on port {port}")


def _mb(value: float) -> str:
    return f"{value / 1e6:.0f} MB"


# --- the /metrics gauges ----------------------------------------------------------------


def gauge_pages(url: str) -> tuple[int, float]:
    """Pages read (shared hit + read) and server-side ms of one scrape's gauge queries."""
    from infrastructure.postgres import system_gauges
    from infrastructure.postgres.cleanup import CONDITION_SQL

    now = datetime.now(UTC)
    queries: list[tuple[str, dict[str, Any]]] = [
        (system_gauges._ACTIVE, {}),
        (system_gauges._TIMERS_DUE, {"now": now}),
        (system_gauges._OVERDUE, {"now": now}),
        (system_gauges._SLA, {"since": now - timedelta(days=1)}),
        *(
            (f"SELECT count(*) AS n FROM instances WHERE {where}", {"before": now})  # noqa: S608
            for where in CONDITION_SQL.values()
        ),
    ]
    pages, ms = 0, 0.0
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET ROLE waymark_app")
        conn.execute("SELECT set_config('waymark.tenant', '*', false)")
        for query, params in queries:
            row = conn.execute(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + query, params
            ).fetchone()
            assert row is not None
            plan = row[0][0]
            pages += plan["Plan"].get("Shared Hit Blocks", 0) + plan["Plan"].get(
                "Shared Read Blocks", 0
            )
            ms += plan["Execution Time"]
    return pages, ms


# --- the soak -------------------------------------------------------------------------------


def soak(side: Side, seconds: float, every: float) -> tuple[list[tuple[float, int]], int, int]:
    """A steady mix (start, list, get) on THREADS threads while RSS is sampled; the samples
    (seconds since start, bytes), requests done and errors."""
    samples: list[tuple[float, int]] = []
    done = threading.Event()
    counts = [0] * THREADS
    errors = [0] * THREADS
    ops: list[Callable[[int, int], None]] = [side.start, side.list, side.get]

    def work(k: int) -> None:
        i = k
        while not done.is_set() and not STOP.is_set():
            try:
                ops[i % len(ops)](k, i)
                counts[k] += 1
            except Exception:
                errors[k] += 1
            i += THREADS

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(THREADS)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    try:
        while time.monotonic() - t0 < seconds and not STOP.is_set():
            samples.append((time.monotonic() - t0, server_rss(side.base_url)))
            time.sleep(every)
        samples.append((time.monotonic() - t0, server_rss(side.base_url)))
    finally:
        done.set()
        for t in threads:
            t.join(timeout=60)
    return samples, sum(counts), sum(errors)


def slope_mb_per_minute(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of RSS over time, MB per minute."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_r = sum(r for _, r in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (r - mean_r) for t, r in samples)
    return cov / var * 60.0 / 1e6


# --- the scenario ---------------------------------------------------------------------------


@contextmanager
def _sides(bench: Bench, loaded_url: str, pool_size: int, correlation: str) -> Iterator[list[Side]]:
    loaded_dir = bench.workdir / "loaded"
    loaded_dir.mkdir(exist_ok=True)
    loaded = dataclasses.replace(bench, database_url=loaded_url, workdir=loaded_dir)
    with ExitStack() as stack:
        progress("scale: starting two waymark serve (empty, loaded)")
        # The bench's few clients send far more than the per-key/per-IP limits allow.
        unlimited = {"WAYMARK_RATE_LIMIT_PER_KEY": "", "WAYMARK_RATE_LIMIT_PER_IP": ""}
        empty_url = stack.enter_context(serving(bench, pool_size, extra_env=unlimited))
        full_url = stack.enter_context(serving(loaded, pool_size, extra_env=unlimited))
        sides = [Side("empty", empty_url, correlation), Side("loaded", full_url, correlation)]
        for side in sides:
            stack.callback(side.close)
        yield sides


def bench_scale(bench: Bench, quick: bool, pool_size: int) -> list[Result]:
    sizes = QUICK if quick else FULL
    for document in bulk_load.DEFINITIONS:  # the empty store: definitions only
        bench.container.definitions.publish(TENANT, document)
    loaded_url = create_loaded_database(bench)
    progress(f"scale: bulk loading {sizes.instances:,} instances")
    report, correlations = load_store(bench, loaded_url, sizes.instances)
    progress(report.summary())
    correlation = correlations[0] if correlations else "none"
    gauges = {"empty": gauge_pages(bench.database_url), "loaded": gauge_pages(loaded_url)}
    with _sides(bench, loaded_url, pool_size, correlation) as sides:
        starts: dict[str, list[float]] = {s.name: [] for s in sides}
        lists: dict[str, list[float]] = {s.name: [] for s in sides}
        errors = {s.name: 0 for s in sides}
        for side in sides:  # untimed warm-up: pools, caches, prepared plans
            for i in range(2 * len(side.shapes)):
                side.start(0, i)
                side.list(0, i)
            side.by_shape = {shape: [] for shape in side.by_shape}
        for r in range(sizes.rounds):
            for side in sides if r % 2 == 0 else reversed(sides):
                if STOP.is_set():
                    break
                for kind, op, into in (("start", side.start, starts), ("list", side.list, lists)):
                    result = hammer(
                        f"scale/{kind}/{side.name}",
                        op,
                        threads=THREADS,
                        total=sizes.per_round,
                        seconds=120.0,
                    )
                    into[side.name].extend(result.latencies)
                    errors[side.name] += result.errors
        rss = {side.name: server_rss(side.base_url) for side in sides}
        for side in sides:
            worst = max(side.by_shape.items(), key=lambda item: _p99(item[1]))
            progress(
                f"scale/list/{side.name} p99 by shape: "
                + ", ".join(f"{shape} {_p99(v):.1f}" for shape, v in side.by_shape.items())
                + f" (slowest: {worst[0]})"
            )
        progress(f"scale: soak of the loaded server for {sizes.soak_seconds:.0f} s")
        samples, soaked, soak_errors = soak(sides[1], sizes.soak_seconds, sizes.sample_every)
    results = _results(sizes, report, starts, lists, errors, rss, samples, soaked, soak_errors)
    (empty_pages, empty_ms), (loaded_pages, loaded_ms) = gauges["empty"], gauges["loaded"]
    results.insert(
        5,
        Result(
            "scale/gauges",
            loaded_pages,
            loaded_ms / 1000.0,
            note=f"pages read by one /metrics scrape's counts: empty {empty_pages} "
            f"({empty_ms:.1f} ms), loaded {loaded_pages} ({loaded_ms:.1f} ms)",
        ),
    )
    return results


def _results(
    sizes: ScaleSizes,
    report: bulk_load.LoadReport,
    starts: dict[str, list[float]],
    lists: dict[str, list[float]],
    errors: dict[str, int],
    rss: dict[str, int],
    samples: list[tuple[float, int]],
    soaked: int,
    soak_errors: int,
) -> list[Result]:
    n = f"{sizes.instances // 1000}k"
    results = [
        Result(
            "scale/load",
            report.instances,
            report.seconds,
            note=f"bulk_load COPY: {report.events:,} events; "
            f"VACUUM ANALYZE {report.vacuum_seconds:.0f} s",
        )
    ]
    for kind, measured in (("start", starts), ("list", lists)):
        empty, loaded = measured["empty"], measured["loaded"]
        ratio = _p99(loaded) / _p99(empty) if _p99(empty) else 0.0
        for side, latencies in (("empty", empty), (n, loaded)):
            key = "empty" if side == "empty" else "loaded"
            results.append(
                Result(
                    f"scale/{kind}/{side}",
                    len(latencies),
                    sum(latencies),
                    latencies,
                    errors[key] if kind == "start" else 0,
                    note=f"p99 {_p99(latencies):.1f} ms"
                    + (
                        f"; p99 ratio loaded/empty {ratio:.2f}x (target <= 1.5x)"
                        if key == "loaded"
                        else ""
                    ),
                )
            )
    second_half = [s for s in samples if s[0] >= samples[-1][0] / 2] if samples else []
    peak = max((r for _, r in samples), default=0)
    results.append(
        Result(
            "scale/rss",
            len(samples),
            samples[-1][0] if samples else 0.0,
            note=f"API RSS after load: empty {_mb(rss['empty'])}, loaded {_mb(rss['loaded'])}; "
            f"soak max {_mb(peak)} (target < 250 MB)",
        )
    )
    results.append(
        Result(
            "scale/soak",
            soaked,
            samples[-1][0] if samples else 0.0,
            errors=soak_errors,
            note=f"RSS start {_mb(samples[0][1]) if samples else '-'}, end "
            f"{_mb(samples[-1][1]) if samples else '-'}, slope {slope_mb_per_minute(samples):+.2f} "
            f"MB/min (2nd half {slope_mb_per_minute(second_half):+.2f})",
        )
    )
    return results
