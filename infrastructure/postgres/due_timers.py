"""DueTimers on PostgreSQL: open timer and wait-timeout bookmarks whose time has come, and
open tasks past their SLA that were not escalated yet."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore

from application.read_models import BookmarkRow
from domain.engine.waits import EARLIEST_DUE, LATEST_DUE
from infrastructure.postgres.queries import to_row

# What a set-aside row keeps of its error (the full text is in the worker's log).
MAX_ERROR_CHARS = 2_000

# Due rows are claimed with a short lease (FOR UPDATE SKIP LOCKED, like activities), so
# replicas share the due timers instead of all loading and trying the same first N. The
# lease is an efficiency, not the guarantee: firing is a command on the instance, so if a
# lease expires while its worker is still firing, optimistic concurrency lets one apply and
# the other finds the bookmark consumed. A worker that dies leaves its rows to expire.
# Set-aside rows (timer_error) are skipped, so a row that fails every time never holds back
# the rows behind it; the range check keeps rows that cannot be read back out of the result.
# What the timer worker fires: timers, wait timeouts, and task SLAs not yet handled (a task
# past its SLA is escalated once; `escalated_at` is the projection of its TaskEscalated).
# A constant: the queries below are built from it once, never from input.
_DUE_KINDS = "(kind IN ('timer', 'wait') OR (kind = 'task' AND escalated_at IS NULL))"

_CLAIM_DUE = """
    UPDATE bookmarks SET timer_leased_until = %(now)s + make_interval(secs => %(lease)s)
    WHERE id IN (
        SELECT id FROM bookmarks
        WHERE status = 'open' AND {due_kinds} AND due_at <= %(now)s
          AND due_at >= %(earliest)s AND timer_error IS NULL
          AND (timer_leased_until IS NULL OR timer_leased_until <= %(now)s)
        ORDER BY due_at
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    )
    RETURNING *
""".replace("{due_kinds}", _DUE_KINDS)

_RELEASE = "UPDATE bookmarks SET timer_leased_until = NULL WHERE id = %(id)s"

# Rows stored before due times were range-checked (year 0 or 10000 in UTC) make psycopg
# raise while reading the whole result; set them aside without reading their due_at.
_SET_ASIDE_OUT_OF_RANGE = """
    UPDATE bookmarks
    SET timer_error = %(error)s, timer_failed_at = %(now)s, timer_attempts = timer_attempts + 1
    WHERE status = 'open' AND {due_kinds} AND timer_error IS NULL
      AND (due_at < %(earliest)s OR due_at >= %(latest)s)
""".replace("{due_kinds}", _DUE_KINDS)

# When this worker could next claim a row: the earliest due time among the unleased rows,
# or the earliest lease expiry among the rows another replica holds (a row it is firing is
# not this worker's to wait for: counting it as overdue made an idle replica sleep the
# 1 s overdue recheck while the next timers fell due, bench/timers.py quick run).
_NOW = "COALESCE(%(now)s::timestamptz, now())"
_NEXT_DUE = """
    SELECT LEAST(
        (SELECT min(due_at) FROM bookmarks
         WHERE status = 'open' AND {due_kinds} AND timer_error IS NULL
           AND due_at >= %(earliest)s AND due_at < %(latest)s
           AND (timer_leased_until IS NULL OR timer_leased_until <= {now})),
        (SELECT min(timer_leased_until) FROM bookmarks
         WHERE status = 'open' AND {due_kinds} AND timer_error IS NULL
           AND due_at >= %(earliest)s AND due_at < %(latest)s
           AND timer_leased_until > {now})
    ) AS due_at
""".replace("{due_kinds}", _DUE_KINDS).replace("{now}", _NOW)

_SET_ASIDE = """
    UPDATE bookmarks
    SET timer_error = %(error)s, timer_failed_at = %(now)s, timer_attempts = timer_attempts + 1
    WHERE id = %(id)s AND status = 'open'
"""

_COUNT_SET_ASIDE = (
    "SELECT count(*) AS n FROM bookmarks WHERE timer_error IS NOT NULL AND status = 'open'"
)

# due_at is not selected: an out-of-range one cannot be read back.
_SET_ASIDE_FOR = """
    SELECT id, tenant, instance_id, node_id, kind, status, token, event_type, correlation,
           CASE WHEN due_at >= %(earliest)s AND due_at < %(latest)s THEN due_at END AS due_at,
           created_at, resolved_at, timer_error, timer_failed_at, timer_attempts, escalated_at
    FROM bookmarks
    WHERE tenant = %(tenant)s AND instance_id = %(instance_id)s
      AND status = 'open' AND timer_error IS NOT NULL
"""

_RANGE = {"earliest": EARLIEST_DUE, "latest": LATEST_DUE}
_OUT_OF_RANGE = (
    f"due_at outside the supported range {EARLIEST_DUE.year}-01-01 to "
    f"{LATEST_DUE.year}-01-01 (UTC): it cannot be read back"
)


class PostgresDueTimers:
    """Reads due timers from the bookmarks read model; sets aside the ones that fail."""

    def __init__(self, datastore: PostgresDatastore, lease_seconds: float = 30.0) -> None:
        self.datastore = datastore
        self.lease_seconds = lease_seconds

    def due(self, now: datetime, limit: int) -> list[BookmarkRow]:
        """Claim up to `limit` due rows for `lease_seconds` (other replicas skip them)."""
        params = {"now": now, "limit": limit, "lease": self.lease_seconds, **_RANGE}
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(_SET_ASIDE_OUT_OF_RANGE, {"error": _OUT_OF_RANGE, "now": now, **_RANGE})
            curs.execute(_CLAIM_DUE, params)
            rows = [to_row(BookmarkRow, row) for row in curs.fetchall()]
        return sorted(rows, key=lambda row: row.due_at or now)  # RETURNING has no order

    def release(self, bookmark_id: str) -> None:
        """Give a claimed row back at once (its firing lost a race and should be retried)."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(_RELEASE, {"id": bookmark_id})

    def next_due(self, now: datetime | None = None) -> datetime | None:
        """The earliest time a row may be claimed here (see _NEXT_DUE); None if none."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(_NEXT_DUE, {"now": now, **_RANGE})
            row = curs.fetchone()
            return row["due_at"] if row else None

    def set_aside(self, bookmark_id: str, error: str, at: datetime) -> None:
        text = error.replace("\x00", "\\0")[:MAX_ERROR_CHARS]  # text columns refuse NUL
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(_SET_ASIDE, {"id": bookmark_id, "error": text, "now": at})

    def set_aside_count(self) -> int:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(_COUNT_SET_ASIDE)
            row = curs.fetchone()
            return int(row["n"]) if row else 0

    def set_aside_for(self, tenant: str, instance_id: UUID) -> list[BookmarkRow]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(_SET_ASIDE_FOR, {"tenant": tenant, "instance_id": instance_id, **_RANGE})
            return [to_row(BookmarkRow, row) for row in curs.fetchall()]
