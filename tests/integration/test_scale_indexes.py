"""Migration 0022: the cross-tenant counts of `/metrics` are served by indexes, not by a scan
of every instance and task ever stored (bench `scale`: ~50,000 pages per scrape at 1,000,000
stored instances before it).

The store is filled by bench/bulk_load.py (copies of real instances, mostly ended) and
vacuumed, then each gauge query of infrastructure/postgres/system_gauges.py is planned as the
application role with the cross-tenant scope, as the gauges run. Sequential and bitmap scans
are disabled so the question is only whether an index can answer; the negative control plans
the same queries on the schema before 0022.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from bench import bulk_load
from infrastructure.postgres import system_gauges
from infrastructure.postgres.cleanup import CONDITION_SQL
from infrastructure.postgres.migrate import alembic_config, migrate

NOW = datetime.now(UTC)
# (query, parameters, the index that must answer it)
GAUGES = {
    "active": (system_gauges._ACTIVE, {}, "instances_active_definition_status_idx"),
    "stuck": (
        f"SELECT count(*) AS n FROM instances WHERE {CONDITION_SQL['stuck']}",  # noqa: S608
        {},
        "instances_running_updated_idx",
    ),
    "overdue": (system_gauges._OVERDUE, {"now": NOW}, "tasks_open_due_at_idx"),
    "sla": (system_gauges._SLA, {"since": NOW - timedelta(days=1)}, "tasks_completed_due_idx"),
}


@pytest.fixture
def loaded(database_url: str) -> Iterator[str]:
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings

    container = build_api(Settings(database_url=database_url, api_keys="k=acme:admin"))
    try:
        templates = bulk_load.prepare(container, database_url, ["acme", "globex"])
    finally:
        container.close()
    bulk_load.load(
        database_url, templates, 2_000, tenants=["acme", "globex"], weights=bulk_load.WEIGHTS
    )
    yield database_url


def _plan(database_url: str, query: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's nodes, as the application role with the cross-tenant scope."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET ROLE waymark_app")
        conn.execute("SELECT set_config('waymark.tenant', '*', false)")
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET enable_bitmapscan = off")
        row = conn.execute("EXPLAIN (FORMAT JSON) " + query, params).fetchone()
    assert row is not None

    def nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)

    return list(nodes(row[0][0]["Plan"]))


def _scans(plan: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [
        (n["Node Type"], n.get("Relation Name", ""), n.get("Index Name", ""))
        for n in plan
        if "Scan" in n["Node Type"]
    ]


def _partial_indexes(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename IN ('instances', 'tasks') "
            "AND indexdef LIKE '%% WHERE %%'"
        ).fetchall()
    return {r[0] for r in rows}


def _main_scan(database_url: str, name: str) -> tuple[str, str, str]:
    query, params, _index = GAUGES[name]
    scans = _scans(_plan(database_url, query, params))
    main = [s for s in scans if s[1] in ("instances", "tasks")]
    assert len(main) == 1, (name, scans)
    return main[0]


def _bounded(scan: tuple[str, str, str], partial: set[str]) -> bool:
    """Reads only the index entries of the rows the gauge counts, never the heap: an
    index-only scan of a partial index (a full index's entries are every stored row's)."""
    node, _table, index = scan
    return node == "Index Only Scan" and index in partial


def test_the_gauges_are_answered_by_indexes_without_reading_the_heap(loaded: str) -> None:
    partial = _partial_indexes(loaded)
    for name, (_query, _params, index) in GAUGES.items():
        scan = _main_scan(loaded, name)
        assert scan[2] == index, (name, scan)
        assert _bounded(scan, partial), (name, scan)


def test_negative_control_before_0022_every_gauge_reads_every_row_or_the_heap(
    loaded: str,
) -> None:
    from alembic import command

    command.downgrade(alembic_config(loaded), "0021")
    try:
        with psycopg.connect(loaded, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE instances")
            conn.execute("VACUUM ANALYZE tasks")
        partial = _partial_indexes(loaded)
        for name in GAUGES:
            scan = _main_scan(loaded, name)
            # A seq scan (disabled, yet nothing else answers), a scan of a full index, or
            # 0014's index without `tenant`, whose rows the policy fetches from the heap.
            assert not _bounded(scan, partial), (name, scan)
    finally:
        migrate(loaded)
