"""The real clock."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    """Wall-clock time as a timezone-aware UTC datetime."""

    def now(self) -> datetime:
        return datetime.now(UTC)
