"""The pool pings only connections that sat idle (issue 11: no round trip per checkout),
against the real PostgreSQL: an idle connection killed meanwhile is still replaced before a
command draws it."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from infrastructure.postgres.datastore import PING_AFTER_IDLE_SECONDS, build_datastore, ping_if_idle

pytestmark = pytest.mark.integration


def _pid(datastore: Any) -> int:
    with datastore.transaction(commit=False) as curs:
        curs.execute("SELECT pg_backend_pid() AS pid")
        return int(curs.fetchone()["pid"])


def test_a_recently_used_connection_is_not_pinged_an_idle_one_is(database_url: str) -> None:
    conn = psycopg.connect(database_url)
    conn.close()  # a ping on it would raise
    conn._waymark_used_at = time.monotonic()  # type: ignore[attr-defined]
    ping_if_idle(conn)  # used just now: no ping, no error
    conn._waymark_used_at -= PING_AFTER_IDLE_SECONDS + 1  # type: ignore[attr-defined]
    with pytest.raises(psycopg.OperationalError):
        ping_if_idle(conn)
    del conn._waymark_used_at  # type: ignore[attr-defined]
    with pytest.raises(psycopg.OperationalError):
        ping_if_idle(conn)  # never used through the datastore: pinged


def test_an_idle_connection_killed_meanwhile_is_replaced_on_checkout(database_url: str) -> None:
    datastore = build_datastore(database_url, pool_size=1)
    try:
        first = _pid(datastore)
        (pooled,) = datastore.pool._pool  # the one connection, back in the pool
        pooled._waymark_used_at -= PING_AFTER_IDLE_SECONDS + 1  # it has sat idle
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
            deadline = time.monotonic() + 10
            while admin.execute(
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (first,)
            ).fetchone():
                assert time.monotonic() < deadline
                time.sleep(0.02)
        # The ping finds it dead, the pool replaces it: the command never sees the error.
        assert _pid(datastore) != first
    finally:
        datastore.close()
