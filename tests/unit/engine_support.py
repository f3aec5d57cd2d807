"""In-memory helpers for driving the domain engine in unit tests (no I/O)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from application.read_models import ActivityRow
from domain import engine
from domain.definition import Definition
from domain.env import CommandEnv
from domain.instance import WorkflowInstance
from domain.state import Activity
from domain.validation import validate_document

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class FakeEnv:
    """Deterministic ids and a clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0
        self._ids = itertools.count(1)

    def env(self) -> CommandEnv:
        return CommandEnv(
            now=self.now,
            new_id=lambda: f"id-{next(self._ids)}",
            new_token=lambda: f"tok-{next(self._ids)}",
        )

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def definition(
    nodes: list[dict[str, Any]], routes: list[dict[str, Any]], **extra: Any
) -> Definition:
    document = {"name": extra.pop("name", "test-flow"), "nodes": nodes, "routes": routes, **extra}
    problems = validate_document(document)
    assert problems == [], problems
    return Definition.from_document(document, version=1)


def start(
    d: Definition,
    fake: FakeEnv | None = None,
    input: dict[str, Any] | None = None,  # noqa: A002
) -> WorkflowInstance:
    fake = fake or FakeEnv()
    instance = WorkflowInstance(
        id=uuid4(),
        tenant="t1",
        definition=d.name,
        definition_version=d.version,
        input=input or {},
        correlation_id=None,
        idempotency_key=None,
        parent=None,
    )
    engine.start(instance, d, fake.env())
    return instance


def only_open(instance: WorkflowInstance, kind: str | None = None) -> dict[str, Any]:
    found = [b for b in instance.open_bookmarks() if kind is None or b.kind == kind]
    assert len(found) == 1, instance.open_bookmarks()
    return found[0]


def event_names(instance: WorkflowInstance) -> list[str]:
    return [type(e).__name__ for e in instance.pending_events]


def replay(instance: WorkflowInstance) -> WorkflowInstance:
    """Rebuild an aggregate from the instance's (pending) events."""
    rebuilt = None
    for e in instance.pending_events:
        rebuilt = e.mutate(rebuilt)
    assert rebuilt is not None
    return rebuilt


def replay_stored(instance: WorkflowInstance) -> WorkflowInstance:
    """Rebuild from the events as they would be stored: mapped to JSON bytes and back with
    the transcodings the application registers (UUID, Decimal, datetime)."""
    from eventsourcing.persistence import (
        DatetimeAsISO,
        DecimalAsStr,
        JSONTranscoder,
        Mapper,
        UUIDAsHex,
    )

    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    mapper: Mapper = Mapper(transcoder=transcoder)
    rebuilt = None
    for e in instance.pending_events:
        rebuilt = mapper.to_domain_event(mapper.to_stored_event(e)).mutate(rebuilt)
    assert rebuilt is not None
    return rebuilt


def state(instance: WorkflowInstance) -> dict[str, Any]:
    return {k: v for k, v in vars(instance).items() if k != "_pending_events"}


def assert_replays(instance: WorkflowInstance) -> None:
    """The instance rebuilt from its events, in memory and through their stored JSON form,
    is in the same state."""
    assert state(replay(instance)) == state(instance)
    assert state(replay_stored(instance)) == state(instance)


def open_at(instance: WorkflowInstance) -> list[str]:
    """The nodes of the open bookmarks, sorted."""
    return sorted(b.node_id for b in instance.open_bookmarks())


def complete_at(instance: WorkflowInstance, d: Definition, node_id: str, fake: FakeEnv) -> None:
    """Completes the one open task of node `node_id` (no outcome, no data, by ann)."""
    (bookmark,) = [b for b in instance.open_bookmarks() if b.node_id == node_id]
    complete_bookmark(instance, d, bookmark.id, fake, data={})


def resume_at(
    instance: WorkflowInstance,
    d: Definition,
    node_id: str,
    fake: FakeEnv,
    payload: dict[str, Any] | None = None,
) -> None:
    """Resumes the one open bookmark of node `node_id` with `payload` (default `{}`)."""
    (bookmark,) = [b for b in instance.open_bookmarks() if b.node_id == node_id]
    engine.resume(instance, d, bookmark.id, payload=payload or {}, source="t", env=fake.env())


def scheduled_row(tenant: str, instance: WorkflowInstance, activity: Activity) -> ActivityRow:
    """The activity queue's row of one of `instance.scheduled_activities()`, due now."""
    return ActivityRow(
        id=activity.id,
        tenant=tenant,
        instance_id=instance.id,
        node_id=activity.node_id,
        attempt=activity.attempt,
        status="scheduled",
        run_after=datetime.now(UTC),
        action=activity.action,
        timeout_seconds=activity.timeout_seconds,
        idempotency_key=activity.idempotency_key,
    )


def complete_bookmark(
    instance: WorkflowInstance,
    d: Definition,
    bookmark_id: str,
    fake: FakeEnv,
    *,
    outcome: str | None = None,
    data: dict[str, Any] | None = None,
    comment: str | None = None,
    by: str | None = "ann",
) -> None:
    """`engine.complete_task` on the task bookmark `bookmark_id`, at the fake clock."""
    engine.complete_task(
        instance,
        d,
        bookmark_id,
        outcome=outcome,
        data=data,
        comment=comment,
        completed_by=by,
        env=fake.env(),
    )
