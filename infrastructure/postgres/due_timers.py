"""DueTimers on PostgreSQL: open timer and wait-timeout bookmarks whose time has come."""

from __future__ import annotations

from datetime import datetime

from eventsourcing.postgres import PostgresDatastore

from application.read_models import BookmarkRow
from infrastructure.postgres.queries import to_row

# No lease is needed: firing is a command on the instance, so when two timer workers fire
# the same bookmark, optimistic concurrency lets one apply and the other finds it consumed.
_DUE = """
    SELECT * FROM bookmarks
    WHERE status = 'open' AND kind IN ('timer', 'wait') AND due_at <= %s
    ORDER BY due_at
    LIMIT %s
"""


_NEXT_DUE = """
    SELECT min(due_at) AS due_at FROM bookmarks
    WHERE status = 'open' AND kind IN ('timer', 'wait') AND due_at IS NOT NULL
"""


class PostgresDueTimers:
    """Reads due timers from the bookmarks read model."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore

    def due(self, now: datetime, limit: int) -> list[BookmarkRow]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(_DUE, (now, limit))
            return [to_row(BookmarkRow, row) for row in curs.fetchall()]

    def next_due(self) -> datetime | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(_NEXT_DUE)
            row = curs.fetchone()
            return row["due_at"] if row else None
