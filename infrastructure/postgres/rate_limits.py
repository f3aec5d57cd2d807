"""Rate-limit counters shared by every API replica: a fixed window per key in PostgreSQL.

`WAYMARK_RATE_LIMIT_STORAGE=postgres` (api/security.py): the budget of a key or a client
address is one budget however many replicas serve it, where the in-memory limiter (the
default) gives each replica a budget of its own.

One row per limited identity in `rate_limit_counters` (migration 0021, UNLOGGED: counters
are worth no WAL and no fsync, and a crash only resets them): the window it counts in and
its hits. One statement, one round trip, checks every limit of a request (per key and per
address) at once: each row's count restarts when the database clock entered a new window,
else grows by one. The database's clock, not the replicas', decides windows. A fixed window
lets up to twice the budget through across a window boundary (the in-memory limiter's
moving window does not); rows of identities not seen for a day are deleted now and then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eventsourcing.postgres import PostgresDatastore

from infrastructure.postgres.arrays import Int8Array, TextArray

_HIT = (
    "INSERT INTO rate_limit_counters AS c (key, window_start, expires_at, hits) "
    "SELECT u.key, w.start, w.start + u.period, 1 "
    "FROM unnest(%b::text[], %b::bigint[]) AS u(key, period), "
    "LATERAL (SELECT (floor(extract(epoch FROM statement_timestamp()) / u.period) "
    "* u.period)::bigint AS start) AS w "
    "ON CONFLICT (key) DO UPDATE SET "
    "hits = CASE WHEN c.window_start = EXCLUDED.window_start THEN c.hits + 1 ELSE 1 END, "
    "window_start = EXCLUDED.window_start, expires_at = EXCLUDED.expires_at "
    "RETURNING key, hits, expires_at, extract(epoch FROM statement_timestamp()) AS now"
)
_FORGET = "DELETE FROM rate_limit_counters WHERE expires_at < extract(epoch FROM now()) - 86400"
_FORGET_EVERY = 4096


@dataclass(frozen=True)
class Check:
    """One limit to count a hit against: `amount` hits per `period` seconds for `key`."""

    key: str
    amount: int
    period: int


@dataclass(frozen=True)
class Verdict:
    key: str
    allowed: bool
    retry_after: float  # seconds until the window restarts (when not allowed)


class PostgresRateLimiter:
    """Counts hits in `rate_limit_counters`; safe to share between threads and replicas."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore
        self._calls = 0

    def hit(self, checks: Sequence[Check]) -> list[Verdict]:
        """Count one hit against every check (one statement); each one's verdict."""
        if not checks:
            return []
        by_key = {c.key: c for c in checks}
        self._calls += 1
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                _HIT,
                (
                    TextArray([c.key for c in by_key.values()]),
                    Int8Array([c.period for c in by_key.values()]),
                ),
            )
            rows = curs.fetchall()
            if self._calls % _FORGET_EVERY == 0:
                curs.execute(_FORGET)
        verdicts = {
            row["key"]: Verdict(
                row["key"],
                int(row["hits"]) <= by_key[row["key"]].amount,
                max(0.0, float(row["expires_at"]) - float(row["now"])),
            )
            for row in rows
        }
        return [verdicts[c.key] for c in checks]
