"""Use cases for instances: start, read, cancel, resume by bookmark, callback or event."""

from __future__ import annotations

import builtins
import hashlib
import hmac
import uuid
from collections.abc import Callable
from typing import Any
from uuid import UUID

from application import audit
from application.admission import StartAdmission
from application.commands import CancelInstance, DeliverEvent, ResumeBookmark, StartInstance
from application.definitions import DefinitionCache
from application.delivery import EventDelivery
from application.errors import (
    IdempotencyKeyReusedError,
    InstanceNotFoundError,
    InvalidCursorError,
)
from application.idempotency import KeyedCommands, fingerprint, stored_result
from application.ports import (
    DefinitionStore,
    DueTimers,
    HistoryEntry,
    InstanceRead,
    InstanceStore,
    ReadModelQueries,
)
from application.read_models import InstanceFilter, Page
from application.runner import CommandRunner
from application.session import CommandAttempt
from application.views import (
    has_due_bookmarks,
    instance_row_view,
    instance_view,
    jsonable,
    with_set_aside_timers,
    with_sla,
)
from domain import engine, origin
from domain.definition import Definition
from domain.instance import WorkflowInstance

# Before server secrets, keyed ids were uuid5 in this public namespace: computable by anyone.
_LEGACY_KEYED_IDS = uuid.UUID("6f0d3c1e-9a57-4bb4-8d2e-0c1b5e7a9f42")


class KeyedIds:
    """Instance ids derived from idempotency keys, so a concurrent second start with the same
    key collides on the aggregate's first version instead of creating two.

    Derived with HMAC-SHA256 under a server secret (generated once per database): knowing
    another tenant's idempotency key does not tell you its instance id. The first 128 bits
    of the MAC become a version-8 (custom) UUID.
    """

    def __init__(self, secret: bytes):
        if len(secret) < 16:
            raise ValueError("the keyed-id secret must be at least 128 bits")
        self._secret = secret

    def derive(self, tenant: str, scope: str, key: str) -> UUID:
        mac = hmac.new(self._secret, _keyed_name(tenant, scope, key).encode(), hashlib.sha256)
        value = int.from_bytes(mac.digest()[:16], "big")
        value = (value & ~(0xF << 76)) | (0x8 << 76)  # version 8
        value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 9562 variant
        return UUID(int=value)

    @staticmethod
    def legacy(tenant: str, scope: str, key: str) -> UUID:
        """The id instances started before server secrets got: still found by their key."""
        return uuid.uuid5(_LEGACY_KEYED_IDS, _keyed_name(tenant, scope, key))


def _keyed_name(tenant: str, scope: str, key: str) -> str:
    return f"{tenant}\x00{scope}\x00{key}"


class InstanceService:
    """Starting, reading and steering instances."""

    def __init__(
        self,
        runner: CommandRunner,
        store: InstanceStore,
        definitions: DefinitionCache,
        definition_store: DefinitionStore,
        queries: ReadModelQueries,
        admission: StartAdmission,
        keyed_ids: KeyedIds,
        timers: DueTimers | None = None,
    ):
        self.timers = timers  # to show timers set aside after a failed firing
        self.runner = runner
        self.keyed = KeyedCommands(runner, queries)
        self.keyed_ids = keyed_ids
        self.store = store
        self.definitions = definitions
        self.definition_store = definition_store
        self.queries = queries
        self.admission = admission
        self.delivery = EventDelivery(queries, definition_store, admission)

    # --- start ---------------------------------------------------------------------------

    def start(self, cmd: StartInstance) -> tuple[dict[str, Any], bool]:
        """Start an instance; (view, created). The same idempotency key gives the same one."""

        def same_start(found: WorkflowInstance) -> None:
            _check_same_start(found, cmd.idempotency_key or "", cmd.definition, cmd.version)

        return self.start_keyed(
            cmd.tenant,
            lambda data: self.admission.admit(cmd.tenant, cmd.definition, cmd.version, data),
            cmd.input or {},
            scope="start",
            idempotency_key=cmd.idempotency_key,
            correlation_id=cmd.correlation_id,
            check_existing=same_start,
            started_by=cmd.started_by or origin.by_api(None),
            latest=cmd.version is None,
        )

    def start_keyed(
        self,
        tenant: str,
        admit: Callable[[dict[str, Any]], Definition],
        data: dict[str, Any],
        *,
        scope: str,
        idempotency_key: str | None,
        correlation_id: str | None,
        check_existing: Callable[[WorkflowInstance], None] = lambda found: None,
        remember: tuple[str, str] | None = None,
        started_by: dict[str, Any] | None = None,
        caller_waits: bool = True,
        latest: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Start once per (tenant, scope, key): the key derives the instance id, so a repeat —
        even a concurrent one — finds the first instance; (view, created). `remember` is a
        (scope, key) recorded in the start's transaction (a webhook signature, used once).
        `caller_waits` False (a schedule's tick): what the caller cannot be told fails the
        instance's node instead of refusing the start (`CommandEnv.caller_waits`).
        `latest`: `admit` takes the newest version (its commit checks it still is)."""
        instance_id = (
            self.keyed_ids.derive(tenant, scope, idempotency_key)
            if idempotency_key
            else uuid.uuid4()
        )
        if idempotency_key:
            existing = self.store.get(instance_id, tenant) or self.store.get(
                self.keyed_ids.legacy(tenant, scope, idempotency_key), tenant
            )
            if existing is not None:
                check_existing(existing)
                return instance_view(existing), False
        # Refused here, before any lock or command is taken, like every later attempt would.
        admitted = [admit(data)]

        def command(session: CommandAttempt) -> tuple[Any, bool]:
            if idempotency_key:
                found = session.store.get(instance_id, tenant)
                if found is not None:  # a concurrent start with the same key won the race
                    check_existing(found)
                    return found, False
            # Admitted again for a later attempt: the commit may have found the definition
            # changed (disabled, a newer version), which the cache then forgot.
            model = admitted.pop() if admitted else admit(data)
            started = session.start(
                instance_id=instance_id,
                tenant=tenant,
                definition=model,
                input=data,
                correlation_id=correlation_id,
                # The instances' key column holds API start keys only; other scopes keep
                # theirs in the derived id, so they never collide with an API start.
                idempotency_key=idempotency_key if scope == "start" else None,
                started_by=started_by,
                latest=latest,
            )
            if remember is not None:
                session.remember(
                    tenant, remember[0], remember[1], {"instance_id": str(instance_id)}
                )
            return started, True

        # The view is taken once committed (children settled), before the instance cache
        # may hand the instance to another command (application/instance_cache.py).
        view, created = self.runner.run(
            command, instance_id, caller_waits=caller_waits, finish=_viewed
        )
        return view, created

    # --- read ----------------------------------------------------------------------------

    def get(self, tenant: str, instance_id: UUID) -> dict[str, Any]:
        instance = self.store.get(instance_id, tenant)
        if instance is None or instance.tenant != tenant:
            raise InstanceNotFoundError(instance_id)
        view = instance_view(instance)
        definition = self.definitions.get(tenant, instance.definition, instance.definition_version)
        view = with_sla(view, definition.definition.sla_hours, self.runner.clock.now())
        if self.timers is not None and has_due_bookmarks(view):
            view = with_set_aside_timers(view, self.timers.set_aside_for(tenant, instance_id))
        return view

    def list(
        self,
        tenant: str,
        criteria: InstanceFilter = InstanceFilter(),
        *,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        page = self.queries.list_instances(tenant, criteria, limit=limit, cursor=cursor)
        return Page([instance_row_view(row) for row in page.items], page.next_cursor)

    def history(
        self, tenant: str, instance_id: UUID, *, limit: int = 500, cursor: str | None = None
    ) -> tuple[builtins.list[HistoryEntry], str | None]:
        """A page of the instance's events; the cursor is the last aggregate version seen."""
        if self.queries.instance(tenant, instance_id) is None:
            raise InstanceNotFoundError(instance_id)
        after = _history_cursor(cursor)
        entries = self.store.history(instance_id, after, limit + 1)
        more = len(entries) > limit
        entries = entries[:limit]
        return entries, (str(entries[-1].version) if more else None)

    # --- steer ---------------------------------------------------------------------------

    def cancel(self, cmd: CancelInstance) -> tuple[dict[str, Any], bool]:
        """Cancel an instance; (view, replayed). A repeated key replays the first view."""
        tenant, instance_id, key = cmd.tenant, cmd.instance_id, cmd.idempotency_key
        scope = "cancel"
        request = fingerprint(str(instance_id))
        prior = self.keyed.first_result(tenant, scope, key, request)
        if prior is not None:
            return prior, True

        def command(session: CommandAttempt) -> dict[str, Any]:
            instance = session.load(instance_id, tenant)
            engine.cancel(instance, cmd.reason, session.env)
            session.audit(
                audit.entry(
                    tenant, audit.INSTANCE_CANCELLED, f"instance:{instance_id}", reason=cmd.reason
                )
            )
            view = jsonable(instance_view(instance))
            session.remember(tenant, scope, key, stored_result(request, view))
            return view

        return self.keyed.run(command, [instance_id], tenant, scope, key, request)

    def resume(
        self, cmd: ResumeBookmark, loaded: InstanceRead | None = None
    ) -> tuple[dict[str, Any], bool]:
        """Resume one bookmark; (result, replayed). A repeated key replays the first result.

        `loaded`: the instance as the caller just read it (a callback, with its bookmark):
        the first attempt decides on it, or on the cached copy at its version, instead of
        reading it again (`CommandAttempt.adopt`).
        """
        tenant, instance_id, bookmark_id = cmd.tenant, cmd.instance_id, cmd.bookmark_id
        scope, key = "resume", cmd.idempotency_key
        request = fingerprint(str(instance_id), bookmark_id)
        prior = self.keyed.first_result(tenant, scope, key, request)
        if prior is not None:
            return prior, True
        adopt = [loaded] if loaded is not None and loaded.id == instance_id else []

        def command(session: CommandAttempt) -> dict[str, Any]:
            if adopt:  # the first attempt only: a later one reads the store
                session.adopt(adopt.pop())
            instance = session.load(instance_id, tenant)
            definition = session.definition_of(instance)
            engine.resume(
                instance,
                definition,
                bookmark_id,
                payload=cmd.payload,
                source=cmd.source,
                env=session.env,
            )
            result = _resume_result(instance, bookmark_id)
            session.remember(tenant, scope, key, stored_result(request, result))
            return result

        return self.keyed.run(command, [instance_id], tenant, scope, key, request)

    def deliver_event(self, cmd: DeliverEvent) -> tuple[dict[str, Any], bool]:
        """Resume every matching `wait` and start every definition triggered by the event."""
        tenant, event_type, correlation = cmd.tenant, cmd.type, cmd.correlation
        payload, idempotency_key = cmd.payload, cmd.idempotency_key
        scope = "event"
        request = fingerprint(event_type, correlation)
        prior = self.keyed.first_result(tenant, scope, idempotency_key, request)
        if prior is not None:
            return prior, True
        waiting, triggered = self.delivery.lookup(tenant, event_type, correlation)
        looked_up = [triggered]

        def command(session: CommandAttempt) -> dict[str, Any]:
            # Looked up again for a later attempt: its commit may have found one of them
            # disabled or superseded (application/admission.py).
            starting = looked_up.pop() if looked_up else self.delivery.triggered(tenant, event_type)
            result = self.delivery.deliver(
                session,
                tenant,
                event_type,
                correlation,
                payload,
                waiting=waiting,
                triggered=starting,
                source=f"event:{event_type}",
                new_instance_id=lambda published: (
                    self.keyed_ids.derive(tenant, f"event:{published.name}", idempotency_key)
                    if idempotency_key
                    else uuid.uuid4()
                ),
            )
            session.remember(tenant, scope, idempotency_key, stored_result(request, result))
            return result

        targets = [row.instance_id for row in waiting]
        return self.keyed.run(command, targets, tenant, scope, idempotency_key, request)


def _history_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    # ASCII digits only (`str.isdigit` also accepts "²", which `int` refuses), and within
    # the bigint range of the version column.
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 18:
        raise InvalidCursorError(cursor)
    return int(cursor)


def _viewed(result: tuple[Any, bool]) -> tuple[Any, bool]:
    instance, created = result
    return instance_view(instance), created


def _check_same_start(
    instance: WorkflowInstance,
    key: str,
    definition: str,
    version: int | None,
) -> None:
    same = instance.definition == definition
    if not same or (version is not None and instance.definition_version != version):
        raise IdempotencyKeyReusedError(key)


def _resume_result(instance: WorkflowInstance, bookmark_id: str) -> dict[str, Any]:
    return {
        "instance_id": str(instance.id),
        "bookmark_id": bookmark_id,
        "status": instance.status,
        "resumed": True,
    }
