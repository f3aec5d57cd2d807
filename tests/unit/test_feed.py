"""The feed's use case (pages, positions) with a fake reader, and the stream wake-ups."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from application.errors import InvalidCursorError
from application.feed import EventFeed, parse_position
from application.ports import FeedBatch, FeedEntry, HistoryEntry
from infrastructure.postgres.feed_wakeups import FeedWakeups


class Reader:
    def __init__(self, batch: FeedBatch) -> None:
        self.batch = batch
        self.calls: list[tuple[str, int, int]] = []

    def events_after(self, tenant: str, after: int, limit: int) -> FeedBatch:
        self.calls.append((tenant, after, limit))
        return self.batch


def entry(position: int) -> FeedEntry:
    history = HistoryEntry(position, 1, "Started", datetime(2026, 1, 1, tzinfo=UTC), {"x": 1})
    return FeedEntry(uuid4(), "acme", history)


def test_a_page_maps_entries_to_envelopes_and_says_where_to_go_on() -> None:
    reader = Reader(FeedBatch([entry(5), entry(9)], read_to=12, more=True))
    page = EventFeed(reader).page("acme", after=4, limit=10_000)
    assert reader.calls == [("acme", 4, 500)]  # the limit is capped
    assert [e.position for e in page.items] == [5, 9]
    assert page.items[0].type == "waymark.instance.started"
    assert (page.next_after, page.next_cursor) == (12, "12")


def test_a_caught_up_page_has_no_cursor_and_never_goes_backwards() -> None:
    page = EventFeed(Reader(FeedBatch([], read_to=3, more=False))).page("acme", after=70)
    assert (page.items, page.next_after, page.next_cursor) == ([], 70, None)


@pytest.mark.parametrize("raw", ["abc", "-1", "²", "1.5", "9" * 20, str(2**63)])
def test_positions_that_are_not_bigint_digits_are_refused(raw: str) -> None:
    with pytest.raises(InvalidCursorError):
        parse_position(raw)


def test_positions() -> None:
    assert parse_position(None, default=7) == 7
    assert parse_position("", default=7) == 7
    assert parse_position("42") == 42
    assert parse_position(str(2**63 - 1)) == 2**63 - 1


def test_a_wake_up_before_the_wait_is_not_lost() -> None:
    wakeups = FeedWakeups()
    seen = wakeups.generation
    wakeups.wake()  # between the stream's read and its wait

    async def wait() -> float:
        started = time.monotonic()
        await wakeups.wait(seen, timeout=5)
        return time.monotonic() - started

    assert asyncio.run(wait()) < 0.5


def test_a_wake_up_from_another_thread_ends_the_wait_and_close_ends_them_all() -> None:
    wakeups = FeedWakeups()

    async def wait() -> float:
        started = time.monotonic()
        await wakeups.wait(wakeups.generation, timeout=5)
        return time.monotonic() - started

    threading.Timer(0.1, wakeups.wake).start()
    assert asyncio.run(wait()) < 1.0
    threading.Timer(0.1, wakeups.close).start()
    assert asyncio.run(wait()) < 1.0
    assert wakeups.closed
    # Closed: a wait returns at once
    assert asyncio.run(wait()) < 0.1


def test_without_a_wake_up_the_wait_times_out() -> None:
    # Negative control for the two tests above.
    wakeups = FeedWakeups()

    async def wait() -> float:
        started = time.monotonic()
        await wakeups.wait(wakeups.generation, timeout=0.3)
        return time.monotonic() - started

    assert asyncio.run(wait()) >= 0.29
