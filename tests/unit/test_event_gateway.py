"""The event-based gateway in the domain (WCP-16): the first wait or timer to fire wins,
the others are cancelled in the same command, a late delivery to a loser is refused, and
two commands deciding on the same state conflict (only one can be stored)."""

from __future__ import annotations

import copy

import pytest

from domain import engine
from domain.errors import BookmarkNotOpenError
from domain.state import BookmarkStatus
from tests.unit.engine_support import FakeEnv, definition, event_names, replay_stored, start, state

NODES = [
    {"id": "first", "type": "event_gateway"},
    {"id": "paid", "type": "wait", "event": "payment.received", "correlation": "input.order"},
    {"id": "cancelled", "type": "wait", "event": "order.cancelled"},
    {"id": "expired", "type": "timer", "duration": "P1D"},
    {"id": "ship", "type": "end"},
    {"id": "stop", "type": "end", "status": "failed", "error": "cancelled"},
    {"id": "late", "type": "end", "status": "failed", "error": "expired"},
]
ROUTES = [
    {"from": "first", "to": "paid"},
    {"from": "first", "to": "cancelled"},
    {"from": "first", "to": "expired"},
    {"from": "paid", "to": "ship"},
    {"from": "cancelled", "to": "stop"},
    {"from": "expired", "to": "late"},
]


def gateway():  # type: ignore[no-untyped-def]
    return definition(NODES, ROUTES)


def by_node(instance):  # type: ignore[no-untyped-def]
    return {b.node_id: b for b in instance.bookmarks.values()}


def test_entering_opens_every_wait_as_one_group() -> None:
    d, fake = gateway(), FakeEnv()
    instance = start(d, fake, input={"order": "o-1"})
    marks = by_node(instance)
    assert set(marks) == {"paid", "cancelled", "expired"}
    assert len({b.gateway_group for b in marks.values()}) == 1
    assert {b.gateway_node for b in marks.values()} == {"first"}
    assert marks["paid"].correlation == "o-1"
    assert event_names(instance).count("NodeEntered") == 4  # the gateway and its three waits


def test_the_first_event_wins_and_the_others_are_cancelled() -> None:
    d, fake = gateway(), FakeEnv()
    instance = start(d, fake, input={"order": "o-1"})
    marks = by_node(instance)
    engine.resume(instance, d, marks["paid"].id, payload={"ok": 1}, source="event", env=fake.env())
    assert instance.status == "completed"
    after = by_node(instance)
    assert after["cancelled"].status is BookmarkStatus.CANCELLED
    assert after["expired"].status is BookmarkStatus.CANCELLED
    decided = next(e for e in instance.pending_events if type(e).__name__ == "EventGatewayDecided")
    assert (decided.node_id, decided.winner_node_id) == ("first", "paid")
    with pytest.raises(BookmarkNotOpenError):
        engine.resume(instance, d, marks["cancelled"].id, payload=None, source="e", env=fake.env())
    assert state(replay_stored(instance)) == state(instance)


def test_the_timer_wins_when_nothing_arrives() -> None:
    d, fake = gateway(), FakeEnv()
    instance = start(d, fake, input={"order": "o-1"})
    marks = by_node(instance)
    fake.advance(days=1)
    engine.fire_timer(instance, d, marks["expired"].id, fake.env())
    assert instance.status == "failed" and instance.error["node_id"] == "late"
    assert all(not b.is_open for b in instance.bookmarks.values())
    assert marks["expired"].due_at == fake.now


def test_two_deliveries_deciding_on_the_same_state_cannot_both_be_stored() -> None:
    """Each racing command decides on a copy of the same version: both would win alone, so
    their first new events have the same aggregate version and the store keeps only one
    (the loser re-decides on the fresh state and finds its bookmark cancelled)."""
    d, fake = gateway(), FakeEnv()
    instance = start(d, fake, input={"order": "o-1"})
    marks = by_node(instance)
    base = instance.version
    one, two = copy.deepcopy(instance), copy.deepcopy(instance)
    engine.resume(one, d, marks["paid"].id, payload={}, source="event", env=fake.env())
    engine.resume(two, d, marks["cancelled"].id, payload={}, source="event", env=fake.env())
    first_new = lambda i: next(e for e in i.pending_events if e.originator_version > base)  # noqa: E731
    assert first_new(one).originator_version == first_new(two).originator_version
    # Re-deciding the loser on the winner's state refuses it.
    with pytest.raises(BookmarkNotOpenError):
        engine.resume(one, d, marks["cancelled"].id, payload={}, source="event", env=fake.env())
