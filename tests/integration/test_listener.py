"""LISTEN/NOTIFY against the real PostgreSQL: commits that create work notify in their own
transaction, and the listener survives its connection being killed."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from application.commands import StartInstance
from bench.definitions import approval_flow, service_flow
from infrastructure.postgres.listener import (
    ACTIVITIES_CHANNEL,
    TIMERS_CHANNEL,
    PostgresListener,
    parse_due,
)

pytestmark = pytest.mark.integration

TENANT = "acme"
DEADLINE = 10.0

TIMER = {
    "name": "one-timer",
    "nodes": [
        {"id": "pause", "type": "timer", "duration": "PT1H"},
        {"id": "done", "type": "end"},
    ],
    "routes": [{"from": "pause", "to": "done"}],
}
CALL = service_flow("one-call")
APPROVAL = approval_flow("one-approval")


@pytest.fixture
def container(database_url: str) -> Iterator[Any]:
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings

    built = build_api(
        Settings(database_url=database_url, api_keys="k=acme:admin", tenant_secrets="acme=s")
    )
    for document in (TIMER, CALL, APPROVAL):
        built.definitions.publish(TENANT, document)
    yield built
    built.close()


class Heard:
    """A running listener and what it heard."""

    def __init__(self, database_url: str) -> None:
        self.notifications: queue.Queue[tuple[str, str]] = queue.Queue()
        self.connects = 0
        self.listener = PostgresListener(
            database_url,
            [ACTIVITIES_CHANNEL, TIMERS_CHANNEL],
            lambda channel, payload: self.notifications.put((channel, payload)),
            on_connect=self._connected,
            max_backoff=0.5,
        )
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.listener.run, args=(self.stop,), daemon=True)

    def _connected(self) -> None:
        self.connects += 1

    def next(self, timeout: float = DEADLINE) -> tuple[str, str]:
        return self.notifications.get(timeout=timeout)

    def nothing_within(self, seconds: float) -> bool:
        try:
            self.notifications.get(timeout=seconds)
        except queue.Empty:
            return True
        return False


@pytest.fixture
def heard(database_url: str) -> Iterator[Heard]:
    running = Heard(database_url)
    running.thread.start()
    assert running.listener.connected.wait(DEADLINE)
    yield running
    running.stop.set()
    running.thread.join(DEADLINE)
    assert not running.thread.is_alive()


def test_a_commit_that_creates_a_timer_notifies_its_due_time(container: Any, heard: Heard) -> None:
    view, _ = container.instances.start(StartInstance(TENANT, "one-timer"))

    channel, payload = heard.next()
    assert channel == TIMERS_CHANNEL
    due = datetime.fromisoformat(view["bookmarks"][0]["due_at"].replace("Z", "+00:00"))
    assert parse_due(payload) == due


def test_a_commit_that_schedules_an_activity_notifies_the_task_channel(
    container: Any, heard: Heard
) -> None:
    container.instances.start(StartInstance(TENANT, "one-call"))

    channel, payload = heard.next()
    assert channel == ACTIVITIES_CHANNEL
    assert parse_due(payload) is not None


def test_a_commit_that_creates_no_work_for_workers_notifies_nothing(
    container: Any, heard: Heard
) -> None:
    container.instances.start(StartInstance(TENANT, "one-approval"))

    assert heard.nothing_within(0.5)


def test_a_rolled_back_transaction_notifies_nothing(datastore: Any, heard: Heard) -> None:
    from application.read_models import BookmarkRow, Projection
    from infrastructure.postgres.listener import notify_new_work

    now = datetime.now().astimezone()
    row = BookmarkRow(**{**_bookmark_fields(now), "due_at": now + timedelta(seconds=5)})
    with pytest.raises(RuntimeError), datastore.transaction(commit=True) as curs:
        notify_new_work(curs, Projection(bookmarks=[row]))
        raise RuntimeError("the command failed after projecting")
    assert heard.nothing_within(0.5)

    # Control: the same notification in a committed transaction is heard.
    with datastore.transaction(commit=True) as curs:
        notify_new_work(curs, Projection(bookmarks=[row]))
    assert heard.next()[0] == TIMERS_CHANNEL


def test_the_listener_reconnects_after_its_connection_is_killed(
    postgres_admin_url: str, database_url: str, heard: Heard
) -> None:
    with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'waymark-listener' AND datname = %s",
            (conninfo_to_dict(database_url)["dbname"],),
        ).fetchall()
    assert killed, "the listener's session was not found"

    deadline = time.monotonic() + DEADLINE
    while heard.listener.connections < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert heard.listener.connections == 2
    assert heard.connects == 2  # workers tick after a reconnection: notifications were lost

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, %s)", (ACTIVITIES_CHANNEL, "after"))
    assert heard.next() == (ACTIVITIES_CHANNEL, "after")


def _bookmark_fields(now: datetime) -> dict[str, Any]:
    from dataclasses import fields

    from application.read_models import BookmarkRow

    # Only kind, status and due_at matter to the notification.
    return {**{f.name: None for f in fields(BookmarkRow)}, "kind": "timer", "status": "open"}
