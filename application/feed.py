"""The event feed: every stored event of a tenant's instances, in commit order, as
CloudEvents (the envelopes of `application/envelopes.py`), read from a global position.

Positions are the event store's notification ids. Every insert takes the events table's
lock, so ids become visible in id order: a reader that has seen every event up to position
P never later finds a new event at or below P, and "after P" resumes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from application.envelopes import EventEnvelope, envelope
from application.errors import InvalidCursorError
from application.ports import EventFeedReader

MAX_LIMIT = 500
# The largest position a client may name: PostgreSQL's bigint.
MAX_POSITION = 2**63 - 1


@dataclass(frozen=True)
class FeedPage:
    """A page of the feed. `next_after` is where the next read starts (always set, so a
    follower can poll with it); `more` says the next page may already have events."""

    items: list[EventEnvelope]
    next_after: int
    more: bool

    @property
    def next_cursor(self) -> str | None:
        return str(self.next_after) if self.more else None


class EventFeed:
    """Reads the tenant's feed a page at a time."""

    def __init__(self, reader: EventFeedReader) -> None:
        self.reader = reader

    def page(self, tenant: str, *, after: int = 0, limit: int = 100) -> FeedPage:
        """The tenant's events after position `after`, oldest first (at most `limit`)."""
        limit = max(1, min(int(limit), MAX_LIMIT))
        batch = self.reader.events_after(tenant, after, limit)
        items = [
            envelope(e.entry, instance_id=e.instance_id, tenant=e.tenant) for e in batch.entries
        ]
        # Never backwards: a client that names a position beyond the head keeps it.
        return FeedPage(items, max(after, batch.read_to), batch.more)


def parse_position(raw: str | None, *, default: int = 0) -> int:
    """A position given as text (`cursor`, `Last-Event-ID`): ASCII digits, within bigint."""
    if raw is None or raw == "":
        return default
    # `str.isdigit` also accepts "²", which `int` refuses.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or int(raw) > MAX_POSITION:
        raise InvalidCursorError(raw)
    return int(raw)
