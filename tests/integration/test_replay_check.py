"""`waymark replay-check` over stored histories in PostgreSQL (tests/fixtures/replay_histories.json:
release 0.1's events and incident histories, with the read model their code wrote), and
negative controls: a changed engine rule, and history that no longer rebuilds, are flagged."""

from __future__ import annotations

import base64
import json
from typing import Any
from uuid import UUID

import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from api.cli import main
from domain.instance import WorkflowInstance
from domain.state import Bookmark
from tests.fixtures.make_replay_fixture import REPLAY_FIXTURE, TABLES

pytestmark = pytest.mark.integration


@pytest.fixture
def stored(database_url: str, datastore: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The fixture's events and read-model rows, stored as a database holds them."""
    fixture = json.loads(REPLAY_FIXTURE.read_text())
    with datastore.transaction(commit=True) as curs:
        curs.executemany(
            "INSERT INTO waymark_events (originator_id, originator_version, topic, state) "
            "VALUES (%s, %s, %s, %s)",
            [
                (
                    UUID(e["originator_id"]),
                    e["originator_version"],
                    e["topic"],
                    base64.b64decode(e["state_b64"]),
                )
                for e in fixture["events"]
            ],
        )
        for table in TABLES:
            for row in fixture["rows"][table]:
                query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                    sql.Identifier(table),
                    sql.SQL(", ").join(map(sql.Identifier, row)),
                    sql.SQL(", ").join(sql.Placeholder() * len(row)),
                )
                curs.execute(
                    query, [Jsonb(v) if isinstance(v, dict | list) else v for v in row.values()]
                )
    monkeypatch.setenv("DATABASE_URL", database_url)
    return fixture


def test_every_stored_history_replays_to_its_read_model(
    stored: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay-check"]) == 0
    out = capsys.readouterr().out
    assert f"{len(stored['rows']['instances'])} instances replayed, 0 differ" in out
    assert main(["replay-check", "--definition", "held", "--sample", "2"]) == 0
    assert "2 instances replayed, 0 differ" in capsys.readouterr().out


def test_a_changed_engine_rule_is_flagged(
    stored: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A "new release" that forgets to mark a skipped incident as resolved: the stored
    # instances that were skipped no longer rebuild to what their read model says.
    def forgetful_resolve(
        self: Any, incident_id: Any, reopened: bool, status: Any, *a: Any
    ) -> None:
        if reopened:
            self.ended_status = None

    monkeypatch.setattr(WorkflowInstance, "_resolve", forgetful_resolve)
    assert main(["replay-check", "--definition", "held"]) == 1
    out = capsys.readouterr().out
    assert "differs" in out and "incidents" in out and ".status: stored 'skipped'" in out
    assert "4 instances replayed, 2 differ" in out  # the retried and the skipped one


def test_history_that_no_longer_rebuilds_is_flagged(
    stored: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(cls: Any, payload: dict[str, Any]) -> Bookmark:
        raise KeyError("kind")

    monkeypatch.setattr(Bookmark, "from_payload", classmethod(refuse))
    assert main(["replay-check"]) == 1
    out = capsys.readouterr().out
    assert ": fails" in out and "KeyError" in out
