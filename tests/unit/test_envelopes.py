"""The integration envelope: CloudEvents attributes from a stored event, in one place."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from application.envelopes import envelope
from application.ports import HistoryEntry
from domain.events import EVENTS_BY_NAME, INSTANCE_EVENTS, event_name


def entry(type_: str = "BookmarkCreated", position: int | None = 42) -> HistoryEntry:
    at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    return HistoryEntry(position=position, version=3, type=type_, timestamp=at, data={"x": 1})


def test_an_envelope_carries_the_cloudevents_attributes_of_its_event() -> None:
    instance_id = uuid4()
    env = envelope(entry(), instance_id=instance_id, tenant="acme")

    assert env.id == f"{instance_id}:3"  # stable: a republished event keeps its id
    assert env.type == "waymark.instance.bookmark_created"
    assert (env.subject, env.tenant, env.position) == (str(instance_id), "acme", 42)
    assert env.structured() == {
        "specversion": "1.0",
        "id": f"{instance_id}:3",
        "type": "waymark.instance.bookmark_created",
        "source": "/waymark/tenants/acme",
        "subject": str(instance_id),
        "time": "2026-12-01T09:30:00+00:00",
        "datacontenttype": "application/json",
        "waymarktenant": "acme",
        "waymarkposition": 42,
        "data": {"x": 1},
    }


def test_every_catalogued_event_has_an_envelope_type() -> None:
    assert set(EVENTS_BY_NAME) == {event_name(c) for c in INSTANCE_EVENTS}
    for name in EVENTS_BY_NAME:
        assert envelope(entry(name), instance_id=uuid4(), tenant="t").type.startswith(
            "waymark.instance."
        )


def test_an_event_without_a_global_position_has_no_envelope() -> None:
    with pytest.raises(ValueError, match="global position"):
        envelope(entry(position=None), instance_id=uuid4(), tenant="t")


def test_a_callback_token_never_leaves_waymark() -> None:
    data = {"bookmark": {"id": "b", "kind": "wait", "token": "secret-capability"}}
    created = HistoryEntry(
        position=1, version=2, type="BookmarkCreated", timestamp=datetime.now(UTC), data=data
    )
    env = envelope(created, instance_id=uuid4(), tenant="t")
    assert env.data["bookmark"] == {"id": "b", "kind": "wait", "token": None}
    assert data["bookmark"]["token"] == "secret-capability"  # the history's copy is untouched
