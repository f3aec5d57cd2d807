"""ActivityQueue on PostgreSQL: task workers lease due service-task activities."""

from __future__ import annotations

from datetime import datetime, timedelta

from eventsourcing.postgres import PostgresDatastore

from application.read_models import ActivityRow
from infrastructure.postgres.queries import to_row

# SKIP LOCKED: concurrent claimers (threads or replicas) pass over each other's candidate
# rows instead of waiting for them, so no activity is handed to two workers and no worker
# blocks behind another. An expired lease (a worker that died mid-run) is claimable again;
# that is the at-least-once re-execution the idempotency key exists for.
_CLAIM = """
    UPDATE activities SET locked_by = %(worker)s, locked_until = %(until)s
    WHERE id IN (
        SELECT id FROM activities
        WHERE status = 'scheduled' AND run_after <= %(now)s
          AND (locked_until IS NULL OR locked_until < %(now)s)
        ORDER BY run_after
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    )
    RETURNING *
"""

# Only the lease of this attempt: a newer attempt's lease is someone else's.
_RELEASE = """
    UPDATE activities SET locked_by = NULL, locked_until = NULL
    WHERE id = %s AND attempt = %s
"""

# The attempt stays the same (not spent); `run_after` moves, so no worker claims it before
# its target's breaker half-opens. A newer attempt or a recorded result is left alone.
_DEFER = """
    UPDATE activities SET locked_by = NULL, locked_until = NULL, run_after = %s
    WHERE id = %s AND attempt = %s AND status = 'scheduled'
"""


class PostgresActivityQueue:
    """Leases due `scheduled` activities to task workers."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore

    def claim(
        self, worker_id: str, limit: int, lease_seconds: float, now: datetime
    ) -> list[ActivityRow]:
        if limit < 1:
            return []
        params = {
            "worker": worker_id,
            "until": now + timedelta(seconds=lease_seconds),
            "now": now,
            "limit": limit,
        }
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(_CLAIM, params)
            rows = curs.fetchall()
        # RETURNING has no order of its own; hand them out oldest-due first.
        return sorted((to_row(ActivityRow, row) for row in rows), key=lambda a: a.run_after)

    def release(self, activity_id: str, attempt: int) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(_RELEASE, (activity_id, attempt))

    def defer(self, activity_id: str, attempt: int, until: datetime) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(_DEFER, (until, activity_id, attempt))
