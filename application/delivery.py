"""Delivering an event inside Waymark: resume the matching waits, start triggered definitions.

One piece of logic for both ways an event arrives: `POST /v1/events`
(`InstanceService.deliver_event`) and the `emit` action, which a command settles in its own
unit of work (`CommandAttempt.settle`), so the emitter's step, the resumed instances and the
started ones commit in ONE transaction — no HTTP round trip, no task worker.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from application.admission import StartAdmission
from application.errors import InvalidDataError
from application.ports import DefinitionStore, PublishedDefinition, ReadModelQueries
from application.read_models import BookmarkRow
from domain import engine, origin
from domain.errors import BookmarkNotOpenError, MilestoneNotReachedError

if TYPE_CHECKING:
    from application.session import CommandAttempt


class EventDelivery:
    """Finds who an event concerns (read models, definition store) and applies it to a
    command attempt."""

    def __init__(
        self, queries: ReadModelQueries, definitions: DefinitionStore, admission: StartAdmission
    ):
        self.queries = queries
        self.definitions = definitions
        self.admission = admission

    def lookup(
        self, tenant: str, event_type: str, correlation: str | None
    ) -> tuple[list[BookmarkRow], list[PublishedDefinition]]:
        """The open `wait` bookmarks the event matches, and the definitions it triggers."""
        waiting = self.queries.waiting_bookmarks(tenant, event_type, correlation)
        return waiting, self.triggered(tenant, event_type)

    def triggered(self, tenant: str, event_type: str) -> list[PublishedDefinition]:
        """The definitions the event starts (their newest versions, enabled)."""
        return self.definitions.event_triggered(tenant, event_type)

    def deliver(
        self,
        session: CommandAttempt,
        tenant: str,
        event_type: str,
        correlation: str | None,
        payload: Any,
        *,
        waiting: list[BookmarkRow],
        triggered: list[PublishedDefinition],
        source: str,
        new_instance_id: Callable[[PublishedDefinition], UUID] = lambda published: uuid.uuid4(),
    ) -> dict[str, Any]:
        """Resume `waiting`, start `triggered` (those accepting the payload) in `session`;
        `{type, resumed, started, rejected}`."""
        resumed = []
        for row in waiting:
            instance = session.load(row.instance_id, tenant)
            try:
                engine.resume(
                    instance,
                    session.definition_of(instance),
                    row.id,
                    payload=payload,
                    source=source,
                    env=session.env,
                )
            except BookmarkNotOpenError:
                continue  # resumed by someone else between the lookup and now
            except MilestoneNotReachedError:
                continue  # a wait away from its milestone (WCP-18) is not resumed by it
            resumed.append({"instance_id": str(instance.id), "bookmark_id": row.id})
        started, rejected = [], []
        data = payload if isinstance(payload, dict) else {"payload": payload}
        for published in triggered:
            try:
                self.admission.check_input(published.definition, data)
            except InvalidDataError as e:
                # One definition refusing the payload does not stop the others.
                errors = [{"path": p, "message": m} for p, m in e.errors]
                rejected.append({"definition": published.name, "errors": errors})
                continue
            instance = session.start(
                instance_id=new_instance_id(published),
                tenant=tenant,
                definition=published.definition,
                input=data,
                correlation_id=correlation,
                idempotency_key=None,
                started_by=origin.by_event(event_type, correlation),
            )
            started.append(str(instance.id))
        return {"type": event_type, "resumed": resumed, "started": started, "rejected": rejected}
