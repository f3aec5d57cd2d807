"""ScheduleCursors on PostgreSQL: the `schedule_ticks` table (migration 0007)."""

from __future__ import annotations

from datetime import datetime

from eventsourcing.postgres import PostgresDatastore

# GREATEST: a replica whose clock lags never moves a cursor back.
_ADVANCE = """
    INSERT INTO schedule_ticks (tenant, definition, last_tick) VALUES (%s, %s, %s)
    ON CONFLICT (tenant, definition)
    DO UPDATE SET last_tick = GREATEST(schedule_ticks.last_tick, EXCLUDED.last_tick)
"""


class PostgresScheduleCursors:
    """Per (tenant, definition): the instant up to which its ticks are handled."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore

    def all(self) -> dict[tuple[str, str], datetime]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute("SELECT tenant, definition, last_tick FROM schedule_ticks")
            return {(r["tenant"], r["definition"]): r["last_tick"] for r in curs.fetchall()}

    def advance(self, tenant: str, definition: str, to: datetime) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(_ADVANCE, (tenant, definition, to))
