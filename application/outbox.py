"""The outbox as operators see it: how far the publisher is behind, its circuit breaker, and
the events it could never publish (dead letters), which an operator can re-drive.

The publisher itself lives in infrastructure (`infrastructure/outbox.py`): it reads the
event store and talks to Kafka; this module is what the API and the CLI ask about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from application.errors import WaymarkError


@dataclass(frozen=True)
class OutboxStatus:
    """Exact figures from the stored position: `pending` events have a global position above
    it; `lag_seconds` is the age of the oldest of them (0 when none is pending)."""

    publisher: str
    position: int
    pending: int
    lag_seconds: float
    breaker_state: str
    breaker_changed_at: datetime | None
    updated_at: datetime | None
    dead_letters: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "publisher": self.publisher,
            "position": self.position,
            "workflow_outbox_events_pending": self.pending,
            "workflow_outbox_processing_lag_seconds": round(self.lag_seconds, 3),
            "breaker_state": self.breaker_state,
            "breaker_changed_at": _iso(self.breaker_changed_at),
            "updated_at": _iso(self.updated_at),
            "dead_letters": self.dead_letters,
        }


@dataclass(frozen=True)
class DeadLetter:
    """One event the publisher gave up on; `status` is `dead`, `retry` (re-drive requested)
    or `published` (a re-drive succeeded)."""

    id: int
    position: int
    instance_id: UUID
    tenant: str
    event_type: str
    error: str
    status: str
    failed_at: datetime
    retry_requested_at: datetime | None
    published_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "position": self.position,
            "instance_id": str(self.instance_id),
            "tenant": self.tenant,
            "event_type": self.event_type,
            "error": self.error,
            "status": self.status,
            "failed_at": self.failed_at.isoformat(),
            "retry_requested_at": _iso(self.retry_requested_at),
            "published_at": _iso(self.published_at),
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


class DeadLetterNotFoundError(WaymarkError):
    code = "not-found"

    def __init__(self, dead_letter_id: int):
        super().__init__(f"dead letter {dead_letter_id} not found")
        self.dead_letter_id = dead_letter_id


class OutboxMonitor(Protocol):
    """Port: the outbox's stored state (positions, breaker state, dead letters)."""

    def status(self) -> OutboxStatus: ...

    def dead_letters(self, tenant: str | None, limit: int) -> list[DeadLetter]:
        """The newest dead letters (of `tenant`, or of every tenant when None)."""
        ...

    def request_retry(self, tenant: str | None, dead_letter_id: int) -> DeadLetter | None:
        """Mark it for re-drive by the publisher; None when there is no such dead letter."""
        ...


class OutboxService:
    """What operators ask about the outbox (HTTP API and CLI)."""

    def __init__(self, monitor: OutboxMonitor):
        self.monitor = monitor

    def status(self) -> OutboxStatus:
        return self.monitor.status()

    def dead_letters(self, tenant: str | None, limit: int = 100) -> list[DeadLetter]:
        return self.monitor.dead_letters(tenant, limit)

    def retry(self, tenant: str | None, dead_letter_id: int) -> DeadLetter:
        """Ask the publisher to publish this event again (it does at its next batch)."""
        letter = self.monitor.request_retry(tenant, dead_letter_id)
        if letter is None:
            raise DeadLetterNotFoundError(dead_letter_id)
        return letter
