"""Operator recovery: incidents, retry and skip, and time travel.

`RecoveryService` lists the open incidents of a tenant (`GET /v1/incidents`, from the
`incidents` read model), retries or skips an instance's failed node through the ordinary
command path (`domain.engine.recovery`: one event naming who and why; with an idempotency
key a repeat replays the first answer), and rebuilds an
instance as it was after a given event (`?at_version=N`) or at a given time (`?at=`), by
replaying its events up to that version (`InstanceStore.get(..., version=N)`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from application import audit
from application.commands import RecoverNode, RetryNode, SkipNode
from application.errors import InstanceNotFoundError
from application.idempotency import IdempotencyRecords, KeyedCommands, fingerprint, stored_result
from application.ports import IncidentQueries, InstanceStore
from application.read_models import IncidentFilter, IncidentRow, Page
from application.runner import CommandRunner
from application.session import CommandAttempt
from application.views import instance_view, jsonable
from domain.engine import recovery
from domain.errors import NotRecoverableError
from domain.instance import WorkflowInstance

HISTORY_PAGE = 500


class RecoveryService:
    def __init__(
        self,
        runner: CommandRunner,
        store: InstanceStore,
        incidents: IncidentQueries,
        records: IdempotencyRecords,
    ) -> None:
        self.runner = runner
        self.keyed = KeyedCommands(runner, records)
        self.store = store
        self.incidents = incidents

    # --- incidents ------------------------------------------------------------------------

    def list_incidents(
        self,
        tenant: str,
        criteria: IncidentFilter = IncidentFilter(),
        *,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        page = self.incidents.list_incidents(tenant, criteria, limit=limit, cursor=cursor)
        return Page([incident_view(row) for row in page.items], page.next_cursor)

    def retry(self, cmd: RetryNode) -> tuple[dict[str, Any], bool]:
        """(view, replayed); a repeated idempotency key replays the first view."""

        def act(instance: WorkflowInstance, session: CommandAttempt) -> str:
            return recovery.retry(
                instance,
                session.definition_of(instance),
                incident_id=cmd.incident_id,
                variables=cmd.variables,
                actor=cmd.actor,
                reason=cmd.reason,
                env=session.env,
            )

        request = fingerprint(str(cmd.instance_id), cmd.incident_id, cmd.variables, cmd.reason)
        return self._recover(cmd, "retried", audit.INSTANCE_RETRIED, act, request)

    def skip(self, cmd: SkipNode) -> tuple[dict[str, Any], bool]:
        """(view, replayed); a repeated idempotency key replays the first view."""

        def act(instance: WorkflowInstance, session: CommandAttempt) -> str:
            return recovery.skip(
                instance,
                session.definition_of(instance),
                incident_id=cmd.incident_id,
                result=cmd.result,
                outcome=cmd.outcome,
                actor=cmd.actor,
                reason=cmd.reason,
                env=session.env,
            )

        request = fingerprint(
            str(cmd.instance_id), cmd.incident_id, cmd.result, cmd.outcome, cmd.reason
        )
        return self._recover(cmd, "skipped", audit.INSTANCE_SKIPPED, act, request)

    def _recover(
        self,
        cmd: RecoverNode,
        action: str,
        audit_action: str,
        act: Callable[[WorkflowInstance, CommandAttempt], str],
        request: str,
    ) -> tuple[dict[str, Any], bool]:
        """One recovery command: `act` on the instance, audited in the same transaction.

        With a key, the view is stored under (tenant, `action`, key) in that transaction, with
        the fingerprint of the whole request (instance and body): a repeat of the same request
        replays it, the key with another request is refused (422 idempotency-key-reused)."""
        tenant, key, scope = cmd.tenant, cmd.idempotency_key, action
        prior = self.keyed.first_result(tenant, scope, key, request)
        if prior is not None:
            return prior, True

        def command(session: CommandAttempt) -> dict[str, Any]:
            instance = session.load(cmd.instance_id, cmd.tenant)
            node_id = act(instance, session)
            target = f"instance:{cmd.instance_id}"
            entry = audit.entry(
                cmd.tenant, audit_action, target, node_id=node_id, reason=cmd.reason
            )
            session.audit(entry)
            view = jsonable(recovered_view(instance, action, node_id))
            session.remember(tenant, scope, key, stored_result(request, view))
            return view

        # A concurrent repeat that lost the race finds the incident resolved: not-recoverable.
        return self.keyed.run(
            command, [cmd.instance_id], tenant, scope, key, request, (NotRecoverableError,)
        )

    # --- time travel ----------------------------------------------------------------------

    def instance_at(
        self,
        tenant: str,
        instance_id: UUID,
        *,
        version: int | None = None,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """The instance as it was after event `version`, or after the last event at or
        before `at`; 404 when it did not exist yet."""
        current = self.store.get(instance_id, tenant)
        if current is None or current.tenant != tenant:
            raise InstanceNotFoundError(instance_id)
        if at is not None:
            if at.tzinfo is None:  # a time without an offset is read as UTC
                at = at.replace(tzinfo=UTC)
            version = self._version_at(instance_id, at)
        if version is None or version < 1:
            raise InstanceNotFoundError(instance_id)
        version = min(version, current.version)
        past = current if version == current.version else self.store.get(instance_id, None, version)
        if past is None:
            raise InstanceNotFoundError(instance_id)
        return past_view(past)

    def _version_at(self, instance_id: UUID, at: datetime) -> int | None:
        found: int | None = None
        after = 0
        while True:
            entries = self.store.history(instance_id, after, HISTORY_PAGE)
            for entry in entries:
                if entry.timestamp > at:
                    return found
                found = entry.version
            if len(entries) < HISTORY_PAGE:
                return found
            after = entries[-1].version


def past_view(instance: WorkflowInstance) -> dict[str, Any]:
    """The instance view, plus its incidents (time travel and recovery answers)."""
    view = instance_view(instance)
    view["incidents"] = [incident_state_view(i) for i in instance.incidents.values()]
    return view


def recovered_view(instance: WorkflowInstance, action: str, node_id: str) -> dict[str, Any]:
    return {**past_view(instance), "recovery": {"action": action, "node_id": node_id}}


def incident_state_view(incident: Any) -> dict[str, Any]:
    return jsonable(
        {
            "id": incident.id,
            "node_id": incident.node_id,
            "node_type": incident.node_type,
            "error": incident.error,
            "status": incident.status.value,
            "raised_at": incident.raised_at,
            "resolved_at": incident.resolved_at,
            "resolved_by": incident.resolved_by,
            "reason": incident.reason,
        }
    )


def incident_view(row: IncidentRow) -> dict[str, Any]:
    return jsonable(
        {
            "id": row.id,
            "instance_id": row.instance_id,
            "definition": row.definition,
            "version": row.version,
            "node_id": row.node_id,
            "node_type": row.node_type,
            "error": row.error,
            "status": row.status,
            "raised_at": row.raised_at,
            "resolved_at": row.resolved_at,
            "resolved_by": row.resolved_by,
            "reason": row.reason,
        }
    )
