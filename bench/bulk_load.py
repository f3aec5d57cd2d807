"""Bulk loader: N stored instances written straight into PostgreSQL with COPY, fast.

`python -m bench.bulk_load DATABASE_URL --count N [--tenant T ...]`, or `load()` from the
`scale` benchmark (bench/scale.py). The rows are not invented: `make_templates()` runs real
instances through the production Container (a `set -> end`, an approval completed by a user,
a service task completed by the task worker, and an approval still waiting for its user),
`capture()` reads back every row Waymark stored for each of them — its events in
`waymark_events` and its read-model rows in `instances`, `bookmarks`, `tasks`, `activities`,
`incidents` — and `load()` writes copies of those rows with every id (the instance's and the
ids of its bookmarks, tasks and activities, also inside event state and idempotency keys),
the tenant and every timestamp varied: each copy is shifted to its own creation time, spread
evenly over the last `span` days, oldest first. So reads, cleanup (retention by `ended_at`)
and the outbox (new notification ids, inserted under the insert-order lock, migration 0024, so
ids commit in order) treat them as instances the engine stored. Event state must be stored
as plain JSON (no `WAYMARK_*` cipher or compression); `capture()` refuses otherwise.

One COPY per table per chunk of instances, one transaction per chunk; at the end `VACUUM
(ANALYZE)` of the loaded tables, as autovacuum would have done on a store that grew slowly.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
from psycopg import sql

from bench import cases

# Per instance, the tables Waymark writes and the column naming the instance.
TABLES = (
    ("instances", "id"),
    ("bookmarks", "instance_id"),
    ("tasks", "instance_id"),
    ("activities", "instance_id"),
    ("incidents", "instance_id"),
)
EVENTS = "waymark_events"
# `tenant`: the events table's second wall (migration 0021), as the recorder writes it.
EVENT_COLUMNS = ("originator_id", "originator_version", "topic", "state", "tenant")

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A timestamp as COPY prints timestamptz under TimeZone UTC, or as eventsourcing's JSON
# transcoder stores datetimes (isoformat).
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}([ T])\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?\+00(?::00)?")
_TENANT_NAME = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass
class Template:
    """One captured instance, every stored row of it as a format string whose fields are
    its ids ({u0}, {u1}, ...), timestamps ({s0} with a space, {t0} with a T) and tenant."""

    instance_id: UUID
    status: str
    created_at: datetime
    uuids: int = 0
    offsets: list[timedelta] = field(default_factory=list)
    rows: dict[str, list[str]] = field(default_factory=dict)  # table -> COPY text lines
    events: list[tuple[str, str]] = field(default_factory=list)  # (prefix line, state)


class _Tokens:
    """Turns literal text into a format string, numbering the ids and times it meets."""

    def __init__(self, template: Template, tenant: str) -> None:
        self.template = template
        self.tenant = tenant
        self.ids: dict[str, int] = {}
        self.times: dict[str, int] = {}

    def _time(self, match: re.Match[str]) -> str:
        text = match.group(0)
        moment = datetime.fromisoformat(text.replace(" ", "T").replace("+00:00", "+00") + ":00")
        offset = moment - self.template.created_at
        try:
            k = self.template.offsets.index(offset)
        except ValueError:
            k = len(self.template.offsets)
            self.template.offsets.append(offset)
        kind = "s" if match.group(1) == " " else "t"
        return "{" + f"{kind}{k}" + "}"

    def _id(self, match: re.Match[str]) -> str:
        k = self.ids.setdefault(match.group(0), len(self.ids))
        self.template.uuids = max(self.template.uuids, k + 1)
        return "{" + f"u{k}" + "}"

    def text(self, value: str) -> str:
        escaped = value.replace("{", "{{").replace("}", "}}")
        with_times = _TIMESTAMP.sub(self._time, escaped)
        return _UUID.sub(self._id, with_times)

    def copy_line(self, line: str) -> str:
        cells = line.rstrip("\n").split("\t")
        return "\t".join("{tenant}" if c == self.tenant else self.text(c) for c in cells)

    def state(self, value: str) -> str:
        quoted = f'"tenant":"{self.tenant}"'
        parts = value.split(quoted)
        return '"tenant":"{tenant}"'.join(self.text(p) for p in parts)


def capture(database_url: str, instance_ids: Iterable[UUID], tenant: str) -> list[Template]:
    """Every stored row of each instance, as a `Template` (the instances must be `tenant`'s)."""
    templates = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        for instance_id in instance_ids:
            found = conn.execute(
                "SELECT status, created_at FROM instances WHERE id = %s AND tenant = %s",
                (instance_id, tenant),
            ).fetchone()
            if found is None:
                raise ValueError(f"no instance {instance_id} of tenant {tenant}")
            template = Template(instance_id, found[0], found[1].astimezone(UTC))
            tokens = _Tokens(template, tenant)
            tokens.ids[str(instance_id)] = 0  # {u0} is always the instance id
            template.uuids = 1
            for table, key in TABLES:
                query = sql.SQL(
                    "COPY (SELECT * FROM {} WHERE {} = {} ORDER BY 1) TO STDOUT"
                ).format(sql.Identifier(table), sql.Identifier(key), sql.Literal(str(instance_id)))
                with conn.cursor().copy(query) as copy:
                    text = b"".join(bytes(chunk) for chunk in copy).decode()
                template.rows[table] = [tokens.copy_line(line) for line in text.splitlines()]
            for _id, version, topic, state in conn.execute(
                "SELECT originator_id, originator_version, topic, state FROM waymark_events "
                "WHERE originator_id = %s ORDER BY originator_version",
                (instance_id,),
            ):
                raw = bytes(state)
                if not raw.startswith(b"{"):
                    raise ValueError("event state is not plain JSON (cipher or compression on)")
                prefix = "{u0}" + f"\t{version}\t{topic}\t"
                template.events.append((prefix, tokens.state(raw.decode())))
            templates.append(template)
    return templates


def _new_id() -> str:
    return str(UUID(bytes=os.urandom(16), version=4))


@dataclass
class LoadReport:
    instances: int
    events: int
    rows: dict[str, int]
    seconds: float
    vacuum_seconds: float

    def summary(self) -> str:
        rate = self.instances / self.seconds if self.seconds else 0.0
        return (
            f"loaded {self.instances:,} instances ({self.events:,} events, "
            f"{', '.join(f'{n:,} {t}' for t, n in self.rows.items() if n)}) in "
            f"{self.seconds:.1f} s = {rate:,.0f}/s, VACUUM ANALYZE {self.vacuum_seconds:.1f} s"
        )


Chunk = tuple[list[str], dict[str, list[str]]]  # event lines, lines per table


def generate(
    templates: Sequence[Template],
    count: int,
    *,
    tenants: Sequence[str],
    weights: Sequence[int] | None = None,
    span: timedelta = timedelta(days=30),
    until: datetime | None = None,
    chunk: int = 20_000,
) -> Iterator[Chunk]:
    """The COPY text lines of `count` copies, `chunk` instances at a time (see `load`)."""
    for tenant in tenants:
        if not _TENANT_NAME.fullmatch(tenant):
            raise ValueError(f"tenant name {tenant!r}: letters, digits, '_', '.', '-' only")
    shares = weights or [1] * len(templates)
    pattern = [t for t, w in zip(templates, shares, strict=True) for _ in range(w)]
    newest = (until or datetime.now(UTC)) - timedelta(minutes=5)
    step = span / max(count, 1)
    oldest = newest - span
    for first in range(0, count, chunk):
        lines: dict[str, list[str]] = {table: [] for table, _ in TABLES}
        event_lines: list[str] = []
        for i in range(first, min(first + chunk, count)):
            template = pattern[i % len(pattern)]
            base = oldest + step * i
            # Whole rounds of the pattern per tenant: every tenant gets the same mix.
            values: dict[str, str] = {"tenant": tenants[(i // len(pattern)) % len(tenants)]}
            for k in range(template.uuids):
                values[f"u{k}"] = _new_id()
            for k, offset in enumerate(template.offsets):
                moment = base + offset
                values[f"s{k}"] = moment.isoformat(" ")
                values[f"t{k}"] = moment.isoformat()
            for table, formats in template.rows.items():
                lines[table].extend(f.format_map(values) for f in formats)
            for prefix, state in template.events:
                hexed = state.format_map(values).encode().hex()
                event_lines.append(
                    prefix.format_map(values) + "\\\\x" + hexed + "\t" + values["tenant"]
                )
        yield event_lines, lines


def load(
    database_url: str,
    templates: Sequence[Template],
    count: int,
    *,
    tenants: Sequence[str],
    weights: Sequence[int] | None = None,
    span: timedelta = timedelta(days=30),
    until: datetime | None = None,
    chunk: int = 20_000,
    vacuum: bool = True,
    progress: Callable[[str], None] = lambda message: None,
) -> LoadReport:
    """Write `count` copies of `templates` (round robin over `weights`, one per template by
    default) for `tenants` (round robin, a whole round of the pattern each), created evenly
    over `span` before `until`. The next chunk is generated on a thread while PostgreSQL
    takes the current one (psycopg releases the GIL while it waits)."""
    chunks = generate(
        templates, count, tenants=tenants, weights=weights, span=span, until=until, chunk=chunk
    )
    rows = {table: 0 for table, _ in TABLES}
    events = done = 0
    began = time.perf_counter()
    with psycopg.connect(database_url) as conn, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(next, chunks, None)
        while (current := pending.result()) is not None:
            pending = pool.submit(next, chunks, None)
            event_lines, lines = current
            with conn.transaction(), conn.cursor() as curs:
                curs.execute("SET LOCAL TimeZone = 'UTC'")
                # The COPY fires the table's insert-order trigger (migration 0024), as every
                # insert does: notification ids commit in order.
                _copy(curs, EVENTS, EVENT_COLUMNS, event_lines)
                for table, _key in TABLES:
                    _copy(curs, table, None, lines[table])
                    rows[table] += len(lines[table])
            events += len(event_lines)
            done += len(lines["instances"])
            progress(f"bulk load: {done:,} / {count:,} instances")
    seconds = time.perf_counter() - began
    vacuum_seconds = 0.0
    if vacuum:
        t0 = time.perf_counter()
        with psycopg.connect(database_url, autocommit=True) as conn:
            for table in (EVENTS, *(t for t, _ in TABLES)):
                conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
        vacuum_seconds = time.perf_counter() - t0
    return LoadReport(count, events, rows, seconds, vacuum_seconds)


def _copy(
    curs: psycopg.Cursor[Any], table: str, columns: Sequence[str] | None, lines: list[str]
) -> None:
    if not lines:
        return
    target = sql.Identifier(table)
    if columns is not None:
        target = sql.SQL("{} ({})").format(target, sql.SQL(", ").join(map(sql.Identifier, columns)))
    with curs.copy(sql.SQL("COPY {} FROM STDIN").format(target)) as copy:
        for start in range(0, len(lines), 5_000):
            copy.write("\n".join(lines[start : start + 5_000]) + "\n")


# --- templates through the real engine ---------------------------------------------------


def _renamed(definition: dict[str, Any]) -> dict[str, Any]:
    """A benchmark definition of bench/cases.py under its own name (`scale-...`)."""
    return {**definition, "name": definition["name"].replace("bench-", "scale-", 1)}


NOOP, APPROVE, SERVICE = (_renamed(d) for d in (cases.NOOP, cases.APPROVE, cases.SERVICE))
DEFINITIONS = (NOOP, APPROVE, SERVICE)
# Mostly ended: of every 20 copies 8 noop, 5 approved, 1 rejected (failed), 5 service
# tasks, 1 approval still open (a suspended instance with an open task).
WEIGHTS = (8, 5, 1, 5, 1)


def make_templates(container: Any, tenant: str) -> list[UUID]:
    """Publish DEFINITIONS for `tenant` and run one instance of each template through the
    Container: noop, approved, rejected, service task (done by a task worker), open approval."""
    from application.commands import CompleteTask, StartInstance
    from infrastructure.worker_bootstrap import build_task_worker
    from workers.task_worker import TaskWorker

    for document in DEFINITIONS:
        container.definitions.publish(tenant, document)
    instances, tasks = container.instances, container.tasks
    # A uuid as correlation id: each copy gets its own, as callers' business keys would be.
    noop, _ = instances.start(
        StartInstance(tenant, NOOP["name"], input={"n": 1}, correlation_id=str(uuid4()))
    )
    ids = [UUID(noop["id"])]
    for outcome in ("approved", "rejected"):
        view, _ = instances.start(StartInstance(tenant, APPROVE["name"]))
        task_id = view["bookmarks"][0]["id"]
        tasks.complete(CompleteTask(tenant, task_id, outcome=outcome, user="loader"))
        ids.append(UUID(view["id"]))
    service, _ = instances.start(StartInstance(tenant, SERVICE["name"]))
    worker = TaskWorker(
        build_task_worker(container.settings, core=container.core), worker_id="loader"
    )
    deadline = time.monotonic() + 60
    while instances.get(tenant, UUID(service["id"]))["status"] != "completed":
        if time.monotonic() > deadline:
            raise RuntimeError("the service-task template did not complete")
        if not worker.tick():
            time.sleep(0.05)
    ids.append(UUID(service["id"]))
    waiting, _ = instances.start(StartInstance(tenant, APPROVE["name"]))
    ids.append(UUID(waiting["id"]))
    return ids


def prepare(container: Any, database_url: str, tenants: Sequence[str]) -> list[Template]:
    """Templates run for tenants[0]; the definitions published for every tenant."""
    ids = make_templates(container, tenants[0])
    for tenant in tenants[1:]:
        for document in DEFINITIONS:
            container.definitions.publish(tenant, document)
    return capture(database_url, ids, tenants[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bulk_load", description=__doc__.split("\n")[0]
    )
    parser.add_argument("database_url")
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--tenant", action="append", help="repeatable (default: bench)")
    parser.add_argument("--days", type=float, default=30.0, help="creation times spread over")
    args = parser.parse_args(argv)
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings

    tenants = args.tenant or ["bench"]
    container = build_api(Settings(database_url=args.database_url, api_keys="k=bench:admin"))
    try:
        templates = prepare(container, args.database_url, tenants)
    finally:
        container.close()
    report = load(
        args.database_url,
        templates,
        args.count,
        tenants=tenants,
        weights=WEIGHTS,
        span=timedelta(days=args.days),
        progress=lambda m: print(m, file=sys.stderr, flush=True),
    )
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
