"""The process's one connection pool: an eventsourcing `PostgresDatastore` built from a URL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg.errors
import psycopg_pool
from eventsourcing.persistence import OperationalError, PersistenceError
from eventsourcing.postgres import PostgresDatastore
from psycopg.conninfo import conninfo_to_dict

from application import tenant_scope

# Parameters PostgresDatastore takes as arguments; any other libpq parameter in the URL
# (sslmode, application_name, ...) is handed to the pool's connect kwargs as it is.
_DATASTORE_PARAMS = ("dbname", "host", "port", "user", "password")


class DatabaseUnavailableError(PersistenceError):
    """No connection could be had within the pool's timeout (the server is down or full)."""


class DatabaseTimeoutError(PersistenceError):
    """A statement ran past `statement_timeout` or waited past `lock_timeout`.

    Not an `OperationalError`: the library would retry it ten times, holding the request
    for ten timeouts. The transaction was rolled back; retrying the request is safe.
    """


# QueryCanceled is also what a pg_cancel_backend() by an operator gives: a cancelled
# statement, answered the same way.
_TIMEOUTS = (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable)


_SET_TENANT = "SELECT set_config('waymark.tenant', %s, false)"


class WaymarkDatastore(PostgresDatastore):
    """The library's datastore, failing fast when no connection can be had.

    The library retries `OperationalError` up to ten times; a pool timeout is one too, so a
    request during an outage would wait ten pool timeouts. Raising a non-retried error
    instead answers within one timeout; a connection lost mid-statement is still retried.
    """

    # Set by `build_datastore(app_role=...)`: every checked-out connection then carries the
    # current tenant scope (application/tenant_scope.py) for the row-level security policies.
    tenant_scoped = False

    @contextmanager
    def get_connection(self) -> Iterator[Any]:
        entered = False
        try:
            with super().get_connection() as conn:
                entered = True
                if self.tenant_scoped:
                    # Session-level (not `true`, transaction-local): the connections are in
                    # autocommit mode and one checkout may run several transactions. It is
                    # set at every checkout whose scope differs from the connection's, so no
                    # scope outlives its checkout; a checkout in the scope the connection
                    # already carries skips the round trip (set in autocommit, outside any
                    # transaction, nothing can roll it back).
                    scope = tenant_scope.current()
                    if getattr(conn, "_waymark_scope", None) != scope:
                        conn._waymark_scope = None  # type: ignore[attr-defined]
                        conn.execute(_SET_TENANT, (scope,))
                        conn._waymark_scope = scope  # type: ignore[attr-defined]
                yield conn
                # A connection handed back after a statement that worked: the pool's check
                # skips the ping when it is drawn again soon (`ping_if_idle`).
                conn._waymark_used_at = time.monotonic()  # type: ignore[attr-defined]
        except OperationalError as e:
            if not entered and isinstance(e.__cause__, psycopg_pool.PoolTimeout):
                raise DatabaseUnavailableError(str(e)) from e
            if isinstance(e.__cause__, _TIMEOUTS):
                raise DatabaseTimeoutError(str(e)) from e
            raise


@contextmanager
def one_statement(datastore: PostgresDatastore) -> Iterator[Any]:
    """A cursor for ONE read statement, run in autocommit (the pool's connections are).

    `datastore.transaction(commit=False)` wraps a read in BEGIN ... ROLLBACK: three round
    trips where the statement alone is one. A single statement has its own snapshot either
    way, so for one read the answer is the same; reads that must agree with each other (two
    statements, one snapshot) keep using `transaction()`. Errors are translated as by
    `get_connection`.
    """
    with datastore.get_connection() as conn, conn.cursor() as curs:
        yield curs


# A connection used successfully less than this long ago is handed out without a ping.
PING_AFTER_IDLE_SECONDS = 2.0


def ping_if_idle(conn: Any) -> None:
    """The pool's check on checkout: ping (an empty query) only a connection that has been
    idle for PING_AFTER_IDLE_SECONDS or longer.

    A ping on every checkout was one extra round trip per transaction (~10% of a start).
    Connections that sat idle, the ones a failover or an idle timeout kills, are still
    checked and replaced before a command draws them; one that dies mid-use fails its
    statement, which the library retries on a fresh connection (OperationalError).
    """
    used_at = getattr(conn, "_waymark_used_at", None)
    if used_at is not None and time.monotonic() - used_at < PING_AFTER_IDLE_SECONDS:
        return
    psycopg_pool.ConnectionPool.check_connection(conn)


def normalise_url(database_url: str) -> str:
    """Accept SQLAlchemy-style `postgresql+psycopg://` (and `postgres://`) for libpq."""
    scheme, sep, rest = database_url.partition("://")
    if sep and scheme in {"postgresql+psycopg", "postgresql+psycopg2", "postgres"}:
        return "postgresql://" + rest
    return database_url


def build_datastore(
    database_url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 0,
    connect_timeout: float = 5.0,
    idle_in_transaction_session_timeout: float = 30.0,
    statement_timeout: float = 30.0,
    lock_timeout: float = 10.0,
    datastore_class: type[PostgresDatastore] = WaymarkDatastore,
    app_role: str | None = None,
) -> PostgresDatastore:
    """A datastore (pool not yet opened) for the URL; the caller closes it on shutdown.

    Understands `postgresql://user:pw@host:port/db?sslmode=...`, the unix-socket form
    `postgresql://user@/db?host=/run/postgresql` and libpq `key=value` strings.
    Every connection runs with `statement_timeout` and `lock_timeout` (seconds, 0 = none)
    set at connect time, so no request holds a lock (the events table's above all) forever.

    `app_role` (e.g. `waymark_app`, created by migration 0017): every connection switches to
    that role at connect time, a role subject to the tables' row-level security, and carries
    the current tenant scope (`waymark.tenant`) from each checkout on.
    """
    params: dict[str, Any] = conninfo_to_dict(normalise_url(database_url))
    if not params.get("dbname"):
        raise ValueError("the database URL names no database")
    datastore = datastore_class(
        dbname=str(params["dbname"]),
        host=str(params.get("host", "")),
        port=str(params.get("port", "5432")),
        user=str(params.get("user", "")),
        password=str(params.get("password", "")),
        pool_size=pool_size,
        max_overflow=max_overflow,
        connect_timeout=connect_timeout,
        idle_in_transaction_session_timeout=idle_in_transaction_session_timeout,
        # A connection killed by a failover or an idle timeout is replaced on checkout
        # instead of failing the command that drew it (pinged only when idle, see below).
        pre_ping=True,
        originator_id_type="uuid",
        # The library's `lock_timeout` (default 0) is left alone: it is only used by library
        # paths Waymark does not take (its own insert_events SETs it LOCAL, overriding the
        # session's); WaymarkRecorder's LOCK TABLE runs under the session's lock_timeout.
    )
    # Not psycopg_pool's ping on every checkout: only on connections idle for a while.
    datastore.pool._check = ping_if_idle
    pool_kwargs = datastore.pool.kwargs
    assert isinstance(pool_kwargs, dict)  # eventsourcing passes a dict, never a callable
    for name in ("host", "port", "user", "password"):
        # Absent means "libpq default" (local socket, 5432, OS user, .pgpass/PGPASSWORD):
        # an empty string would override those defaults instead.
        if name not in params:
            pool_kwargs.pop(name, None)
    for name, value in params.items():
        if name not in _DATASTORE_PARAMS:
            pool_kwargs[name] = value
    timeouts = f"-c statement_timeout={_ms(statement_timeout)} -c lock_timeout={_ms(lock_timeout)}"
    if app_role:
        if not app_role.replace("_", "").isalnum():
            raise ValueError(f"not a role name: {app_role!r}")
        timeouts += f" -c role={app_role}"
        if isinstance(datastore, WaymarkDatastore):
            datastore.tenant_scoped = True
    # Options from the URL come first; ours follow and win for these two settings.
    pool_kwargs["options"] = f"{params.get('options', '')} {timeouts}".strip()
    return datastore


def _ms(seconds: float) -> int:
    # PostgreSQL takes milliseconds; a positive fraction of one still is a timeout.
    return max(1, round(seconds * 1000)) if seconds > 0 else 0
