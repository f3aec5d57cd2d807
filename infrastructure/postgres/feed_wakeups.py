"""Wake-ups for the feed's Server-Sent Events streams: one LISTEN per API process.

The recorder NOTIFYs `waymark_events` in every command's transaction, so PostgreSQL
delivers the notification once the events are committed. One listener thread (started when
the first stream waits) bumps a generation counter and wakes every waiting stream on its
own event loop. A stream reads the generation *before* it queries, and `wait(seen, ...)`
returns at once when the generation moved since: a notification that arrives between the
query and the wait is never lost. Notifications are hints: streams also re-read after
`timeout` seconds, and every (re)connection of the listener wakes them (notifications sent
while it was away are lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

from infrastructure.postgres.listener import PostgresListener
from infrastructure.postgres.recorder import EVENTS_TABLE

EVENTS_CHANNEL = EVENTS_TABLE  # the library NOTIFYs on the events table's name


class FeedWakeups:
    """Wakes waiting feed streams on new events; `close()` ends them all."""

    def __init__(
        self, listener_factory: Callable[[Callable[[], None]], PostgresListener] | None = None
    ) -> None:
        # None: no listener; streams wake by their poll timeout (and on close) only.
        self._listener_factory = listener_factory
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._generation = 0
        self._closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_database(cls, database_url: str) -> FeedWakeups:
        """Wake-ups from LISTEN `waymark_events` on a connection of their own."""
        return cls(
            lambda wake: PostgresListener(
                database_url,
                [EVENTS_CHANNEL],
                lambda _channel, _payload: wake(),
                on_connect=wake,
                name="waymark-feed-listener",
            )
        )

    @property
    def generation(self) -> int:
        """Bumped by every wake-up: read it before querying, pass it to `wait`."""
        return self._generation

    @property
    def closed(self) -> bool:
        return self._closed

    def wake(self) -> None:
        """New events may be there (a notification, a reconnection): wake every stream."""
        with self._lock:
            self._generation += 1
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that loop has closed meanwhile
                loop.call_soon_threadsafe(event.set)

    async def wait(self, seen: int, timeout: float) -> None:
        """Until a wake-up after generation `seen`, `timeout` seconds, or `close()`."""
        self._start()
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._lock:
            if self._closed or self._generation != seen:
                return
            self._waiters.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
        finally:
            with self._lock:
                self._waiters.discard(waiter)

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed or self._listener_factory is None:
                return
            listener = self._listener_factory(self.wake)
            self._thread = threading.Thread(
                target=listener.run, args=(self._stop,), name=listener.name, daemon=True
            )
            self._thread.start()

    def end_streams(self) -> None:
        """Shutdown has begun: every stream ends (they see `closed`). Never blocks, so a
        signal handler on the event loop's thread may call it. Idempotent."""
        with self._lock:
            self._closed = True
        self._stop.set()
        self.wake()

    def close(self) -> None:
        """End every stream and stop listening (waits for the listener's thread)."""
        self.end_streams()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(5.0)
