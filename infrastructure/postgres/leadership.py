"""Leadership for workers that must run once (the outbox publisher, the cron scheduler).

A session-level advisory lock (`pg_try_advisory_lock`) held on a dedicated connection: the
lock lives exactly as long as that session, so when the leader's process dies (or its
connection is cut) PostgreSQL releases it and a standby's next attempt takes over. Standbys
retry every `retry_interval`; the leader checks its connection on every `ensure()` and
steps down the moment the check fails.

What this does not give: a leader whose network is cut keeps believing it leads until its
next check, while the server frees the lock only once it notices the dead session (TCP
keepalives, tens of seconds). Work done under leadership must therefore stay idempotent
(the outbox publishes at-least-once anyway); it is a guard against doing the work twice
as a rule, not a fence.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from infrastructure.postgres.datastore import normalise_url

logger = logging.getLogger(__name__)

DEFAULT_RETRY_INTERVAL_SECONDS = 2.0


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for `name` (same in every process)."""
    digest = hashlib.blake2b(f"waymark:leader:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Leadership:
    """Whether this process leads `name`: `try_acquire()`, `is_leader`, `release()`.

    Not thread-safe by itself: call it from the one thread that does the leader's work
    (`ensure()` at the top of each tick is the usual pattern; see `leader_only`).
    """

    def __init__(
        self,
        database_url: str,
        name: str,
        *,
        retry_interval: float = DEFAULT_RETRY_INTERVAL_SECONDS,
        connect_timeout: float = 5.0,
    ) -> None:
        self.conninfo = normalise_url(database_url)
        self.name = name
        self.key = lock_key(name)
        self.retry_interval = retry_interval
        self.connect_timeout = connect_timeout
        self._conn: psycopg.Connection[Any] | None = None
        self._next_attempt = 0.0
        self._lock = threading.Lock()

    @property
    def is_leader(self) -> bool:
        """True while the lock is held on a connection that has not failed (no round trip)."""
        conn = self._conn
        return conn is not None and not conn.closed and not conn.broken

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True if this process leads now (already or newly)."""
        with self._lock:
            if self.is_leader:
                return True
            self._drop()
            try:
                conn = psycopg.connect(
                    self.conninfo,
                    autocommit=True,
                    connect_timeout=max(1, round(self.connect_timeout)),
                    application_name=f"waymark-leader:{self.name}",
                    keepalives=1,
                    keepalives_idle=10,
                    keepalives_interval=5,
                    keepalives_count=3,
                )
            except psycopg.OperationalError as exc:
                logger.warning("leadership %s: cannot connect (%s)", self.name, exc)
                return False
            try:
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            except psycopg.Error:
                conn.close()
                raise
            if not row or not row[0]:
                conn.close()
                return False
            self._conn = conn
            logger.info("leadership %s: acquired (this process leads)", self.name)
            return True

    def check(self) -> bool:
        """Round trip on the lock's connection; on failure step down. True if still leader."""
        with self._lock:
            conn = self._conn
            if conn is None:
                return False
            try:
                conn.execute("SELECT 1")
            except psycopg.Error as exc:
                logger.warning(
                    "leadership %s: lost the connection holding the lock (%s); stepping down",
                    self.name,
                    exc,
                )
                self._drop()
                return False
            return True

    def ensure(self) -> bool:
        """Lead if possible: check the lock if held, else retry at most every retry interval."""
        if self._conn is not None:
            return self.check()
        now = time.monotonic()
        if now < self._next_attempt:
            return False
        self._next_attempt = now + self.retry_interval
        try:
            return self.try_acquire()
        except psycopg.Error as exc:
            logger.warning("leadership %s: attempt failed (%s)", self.name, exc)
            return False

    def release(self) -> None:
        """Step down: unlock and close the connection (closing alone would release it too)."""
        with self._lock:
            conn = self._conn
            if conn is None:
                return
            try:
                if not conn.broken:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
            except psycopg.Error:
                pass  # the session is gone, and with it the lock
            finally:
                self._drop()
            logger.info("leadership %s: released", self.name)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> Leadership:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def leader_only(leadership: Leadership, tick: Callable[[], int]) -> Callable[[], int]:
    """A worker tick that does `tick`'s work only while this process leads (else 0).

    Under a `WorkerRunner`, a standby retries once per poll interval (an idle tick waits one).
    """

    def guarded() -> int:
        return tick() if leadership.ensure() else 0

    return guarded
