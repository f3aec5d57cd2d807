"""The events' channel is notified by the insert-order trigger (migration 0025), not by a
statement of the recorder's: a command's commit wakes a LISTEN on `waymark_events`, so does
any other writer's insert (the bulk loader's path), a rolled-back insert does not, and
the recorder itself sends no NOTIFY statement."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from application.commands import StartInstance
from tests.containers import api_publishing
from tests.patterns_support import routes

pytestmark = pytest.mark.integration

TENANT = "acme"
CHANNEL = "waymark_events"
PARKED = {
    "name": "parked",
    "nodes": [
        {"id": "parked", "type": "wait", "result_var": "got"},
        {"id": "done", "type": "end"},
    ],
    "routes": routes("parked>done"),
}


@pytest.fixture
def listening(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        yield conn


def _heard(conn: psycopg.Connection[Any]) -> list[str]:
    return [n.channel for n in conn.notifies(timeout=1.0, stop_after=1)]


def test_a_commands_commit_notifies_and_the_recorder_sends_no_notify(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    real = psycopg.Cursor.execute

    def recording(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(query.decode() if isinstance(query, bytes) else str(query))
        return real(self, query, *args, **kwargs)

    with (
        api_publishing(database_url, PARKED) as container,
        psycopg.connect(database_url, autocommit=True) as listening,
    ):
        listening.execute(f"LISTEN {CHANNEL}")  # after the publishing: only the start's
        monkeypatch.setattr(psycopg.Cursor, "execute", recording)
        container.instances.start(StartInstance(TENANT, "parked", input={}))
        monkeypatch.undo()
        assert _heard(listening) == [CHANNEL]
    assert not [q for q in sent if q.lstrip().upper().startswith("NOTIFY")], sent
    assert any("waymark_events" in q and q.startswith("INSERT") for q in sent)


def test_any_insert_notifies_at_commit_and_a_rollback_does_not(
    database_url: str, listening: psycopg.Connection[Any]
) -> None:
    insert = (
        "INSERT INTO waymark_events (originator_id, originator_version, topic, state) "
        "VALUES (gen_random_uuid(), 1, 't', '\\x00')"
    )
    with psycopg.connect(database_url) as writer:
        writer.execute(insert)
        writer.rollback()
        assert _heard(listening) == []
        writer.execute(insert)
        assert _heard(listening) == []  # not before the commit
        writer.commit()
    assert _heard(listening) == [CHANNEL]
