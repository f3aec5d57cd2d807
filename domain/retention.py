"""How long an ended instance is kept: the defaults (settings) and a definition's override.

A definition may carry `"retention": "forever"` (never pruned) or an object naming, per end
status, an ISO-8601 duration or `"forever"`: `{"completed": "P3650D", "failed": "forever"}`.
Statuses it does not name keep the defaults. Retention only ever applies to ENDED instances:
the events of a running or suspended instance are its state (the aggregate is rebuilt from
them), so they are never pruned, whatever their age.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from domain.durations import parse_duration

FOREVER = "forever"
ENDED_STATUSES = ("completed", "failed", "cancelled")
# A kept-for-a-century instance is still a cut-off PostgreSQL and `datetime` can compute.
MAX_RETENTION = timedelta(days=36_500)


@dataclass(frozen=True)
class Retention:
    """How long an ended instance is kept, per end status (None: forever)."""

    completed: timedelta | None
    failed: timedelta | None
    cancelled: timedelta | None

    def of(self, status: str) -> timedelta | None:
        kept: timedelta | None = getattr(self, status)
        return kept

    def cutoffs(self, now: datetime) -> dict[str, datetime]:
        """Per end status, the `ended_at` before which an instance may go (kept forever:
        the status is absent)."""
        return {
            status: now - kept for status in ENDED_STATUSES if (kept := self.of(status)) is not None
        }

    def overridden_by(self, field: Any) -> Retention:
        """This retention with a definition's `retention` field applied (already valid)."""
        if field is None:
            return self
        if field == FOREVER:
            return Retention(None, None, None)
        changes = {
            status: parse_retention(field[status]) for status in ENDED_STATUSES if status in field
        }
        return replace(self, **changes)


def parse_retention(value: str) -> timedelta | None:
    """An ISO-8601 duration, or None for `forever`; ValueError otherwise."""
    if value == FOREVER:
        return None
    kept = parse_duration(value)
    if kept > MAX_RETENTION:
        raise ValueError(f"retention {value!r} is longer than 36500 days (use 'forever')")
    return kept
