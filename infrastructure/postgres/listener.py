"""LISTEN/NOTIFY: commits that create work wake the workers of every process.

The recorder sends the notifications in the command's own transaction (`notify_new_work`),
so PostgreSQL delivers them only once the work is committed and visible, and never for a
rolled-back command. A notification is only a hint: it can be lost (the listener was
reconnecting), so workers still poll, and tick once after every (re)connection.

The listener holds a dedicated connection, not one of the pool's: LISTEN belongs to a
session, and a pooled connection would be handed to a command between two waits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import Cursor, sql

from application.read_models import Projection
from infrastructure.postgres.datastore import normalise_url

logger = logging.getLogger(__name__)

ACTIVITIES_CHANNEL = "waymark_activities"
TIMERS_CHANNEL = "waymark_timers"
TIMER_KINDS = frozenset({"timer", "wait"})

# How long one wait for notifications lasts: the longest a stop request waits, and how often
# the connection is checked when nothing arrives.
WAIT_SECONDS = 1.0
PING_EVERY_SECONDS = 10.0
MAX_RECONNECT_BACKOFF_SECONDS = 30.0


def notify_new_work(curs: Cursor[Any], projection: Projection) -> None:
    """In the command's transaction: announce new activities and timers, with the earliest
    time each falls due (ISO 8601) as the payload.

    Rows of the projection are the state after the command, so a scheduled activity or an
    open timer among them is new or rescheduled; a spare notification only costs a tick.
    """
    run_after = [a.run_after for a in projection.activities if _value(a.status) == "scheduled"]
    # A task's SLA is a timer too (escalated by the timer worker), until it is escalated.
    due = [
        b.due_at
        for b in projection.bookmarks
        if _is_due_kind(b) and _value(b.status) == "open" and b.due_at is not None
    ]
    for channel, times in ((ACTIVITIES_CHANNEL, run_after), (TIMERS_CHANNEL, due)):
        if times:
            curs.execute("SELECT pg_notify(%s, %s)", (channel, min(times).isoformat()))


def _is_due_kind(b: Any) -> bool:
    kind = _value(b.kind)
    return kind in TIMER_KINDS or (kind == "task" and b.escalated_at is None)


def parse_due(payload: str) -> datetime | None:
    """The due time a notification carries; None when it carries none we understand."""
    try:
        due = datetime.fromisoformat(payload)
    except ValueError:
        return None
    return due if due.tzinfo is not None else None


def _value(field: Any) -> Any:
    # Read-model rows hold strings today; an Enum status or kind compares by its value.
    return getattr(field, "value", field)


class PostgresListener:
    """LISTENs on `channels` over its own connection and hands each notification on.

    `on_notify(channel, payload)` runs in the listener's thread for every notification;
    `on_connect()` after every (re)connection, since notifications sent while it was away
    are lost. A lost connection (the server restarted, a failover) is retried with backoff.
    """

    def __init__(
        self,
        database_url: str,
        channels: Sequence[str],
        on_notify: Callable[[str, str], None],
        *,
        on_connect: Callable[[], None] | None = None,
        connect_timeout: float = 5.0,
        max_backoff: float = MAX_RECONNECT_BACKOFF_SECONDS,
        name: str = "waymark-listener",
    ) -> None:
        self.conninfo = normalise_url(database_url)
        self.channels = tuple(channels)
        self.on_notify = on_notify
        self.on_connect = on_connect
        self.connect_timeout = connect_timeout
        self.max_backoff = max_backoff
        self.name = name
        self.connected = threading.Event()
        self.connections = 0  # successful connections so far (reconnects = connections - 1)

    def run(self, stop: threading.Event) -> None:
        """Listen until `stop` is set, reconnecting after connection failures."""
        failures = 0
        while not stop.is_set():
            try:
                with self._connect() as conn:
                    failures = 0
                    self._listen(conn, stop)
            except psycopg.OperationalError as exc:
                self.connected.clear()
                failures += 1
                delay = min(0.5 * 2 ** (failures - 1), self.max_backoff)
                logger.warning(
                    "%s: connection lost or refused (%s); reconnecting in %g s",
                    self.name,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                    delay,
                )
                stop.wait(delay)
        self.connected.clear()

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            self.conninfo,
            autocommit=True,
            connect_timeout=max(1, round(self.connect_timeout)),
            application_name=self.name,
            # A peer that vanished without closing the socket (a network partition) is
            # noticed by TCP keepalives and by the ping below, not never.
            keepalives=1,
            keepalives_idle=10,
            keepalives_interval=5,
            keepalives_count=3,
        )

    def _listen(self, conn: psycopg.Connection[Any], stop: threading.Event) -> None:
        for channel in self.channels:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        self.connections += 1
        self.connected.set()
        logger.info("%s: listening on %s", self.name, ", ".join(self.channels))
        if self.on_connect is not None:
            self.on_connect()
        pinged = time.monotonic()
        while not stop.is_set():
            for notify in conn.notifies(timeout=WAIT_SECONDS):
                self.on_notify(notify.channel, notify.payload)
            if time.monotonic() - pinged >= PING_EVERY_SECONDS:
                conn.execute("SELECT 1")
                pinged = time.monotonic()
