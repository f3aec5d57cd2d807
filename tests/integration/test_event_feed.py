"""The event feed's reader against the real PostgreSQL: tenant scoping with a small scan
window (pages that read past other tenants' events come back empty but say `more`), a
reader tailing the feed while many writers commit concurrently (nothing skipped, nothing
twice, commit order), and a query plan that walks the notification-id index."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest

from application.commands import ResumeBookmark, StartInstance
from application.feed import EventFeed
from infrastructure.postgres.feed import PostgresEventFeed

pytestmark = pytest.mark.integration

WAIT = {
    "name": "one-wait",
    "nodes": [{"id": "wait", "type": "wait"}, {"id": "done", "type": "end"}],
    "routes": [{"from": "wait", "to": "done"}],
}


@pytest.fixture
def container(database_url: str) -> Iterator[Any]:
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings

    built = build_api(Settings(database_url=database_url, api_keys="k=acme:admin", db_pool_size=12))
    for tenant in ("acme", "globex"):
        built.definitions.publish(tenant, WAIT)
    yield built
    built.close()


def stored(database_url: str, tenant: str) -> list[tuple[str, int]]:
    """The tenant's event ids (`<instance>:<version>`) and positions, straight from SQL."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT e.originator_id, e.originator_version, e.notification_id "
            "FROM waymark_events e JOIN instances i ON i.id = e.originator_id "
            "WHERE i.tenant = %s ORDER BY e.notification_id",
            (tenant,),
        ).fetchall()
    return [(f"{r[0]}:{r[1]}", r[2]) for r in rows]


def run_instance(container: Any, tenant: str) -> None:
    view, _ = container.instances.start(StartInstance(tenant, "one-wait"))
    bookmark = view["bookmarks"][0]["id"]
    container.instances.resume(ResumeBookmark(tenant, UUID(view["id"]), bookmark))


def test_a_small_window_pages_past_other_tenants_and_still_yields_everything(
    container: Any, database_url: str
) -> None:
    # Given one acme instance between many of globex's
    for _ in range(4):
        run_instance(container, "globex")
    run_instance(container, "acme")
    for _ in range(4):
        run_instance(container, "globex")
    datastore, mapper = container.core.datastore, container.core.store.app.mapper
    feed = EventFeed(PostgresEventFeed(datastore, mapper, window=3))

    # When acme follows its feed two events at a time, through a 3-position window
    read, empty_pages, after = [], 0, 0
    while True:
        page = feed.page("acme", after=after, limit=2)
        read += [(e.id, e.position) for e in page.items]
        empty_pages += not page.items and page.more
        after = page.next_after
        if not page.more:
            break

    # Then it got exactly its events, in order, having skipped globex's without returning them
    assert read == stored(database_url, "acme")
    assert empty_pages > 0
    assert after == max(p for _, p in stored(database_url, "globex"))


def test_a_tail_reader_misses_nothing_while_writers_commit_concurrently(
    container: Any, database_url: str
) -> None:
    # Given a reader tailing acme's feed from the start
    writers, per_writer = 8, 6
    done = threading.Event()
    read: list[tuple[str, int]] = []
    errors: list[BaseException] = []

    def tail() -> None:
        after = 0
        try:
            while True:
                finished = done.is_set()  # read once more after the last commit
                page = container.feed.page("acme", after=after, limit=25)
                read.extend((e.id, e.position) for e in page.items)
                after = page.next_after
                if finished and not page.more:
                    return
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def write() -> None:
        try:
            for n in range(per_writer):
                run_instance(container, "acme" if n % 2 == 0 else "globex")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    reader = threading.Thread(target=tail)
    reader.start()
    # When eight writers commit starts and resumes of both tenants at once
    threads = [threading.Thread(target=write) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    done.set()
    reader.join(60)

    # Then the reader saw every acme event exactly once, in commit (position) order
    assert not errors, errors
    expected = stored(database_url, "acme")
    assert len(expected) >= writers * (per_writer // 2) * 3  # at least 3 events per run
    assert read == expected


def test_the_feed_query_walks_the_notification_id_index(container: Any, database_url: str) -> None:
    for _ in range(3):
        run_instance(container, "acme")
    from infrastructure.postgres import feed as module

    with psycopg.connect(database_url) as conn:
        conn.execute("ANALYZE waymark_events; ANALYZE instances")
        conn.execute("SET enable_seqscan = off")  # a tiny table: ask what it can use
        plan = "\n".join(
            row[0]
            for row in conn.execute(
                "EXPLAIN " + module._SELECT_AFTER,
                {"after": 0, "upto": 10_000, "tenant": "acme", "limit": 100},
            ).fetchall()
        )
    assert "waymark_events_notification_id_idx" in plan, plan
    assert "instances_pkey" in plan or "Hash" in plan, plan
