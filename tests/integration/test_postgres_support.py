"""Shared builders for the PostgreSQL integration tests (a test aggregate and read-model rows)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate, event

from application.read_models import ActivityRow, BookmarkRow, InstanceRow, TaskRow

R = TypeVar("R")

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class Probe(Aggregate):
    """A small aggregate standing in for WorkflowInstance in store tests."""

    @event("Created")
    def __init__(self, tenant: str, label: str, payload: dict[str, Any] | None = None) -> None:
        self.tenant = tenant
        self.label = label
        self.payload = payload or {}

    @event("Relabelled")
    def relabel(self, label: str, at: datetime, ref: UUID) -> None:
        self.label = label


def instance_row(
    instance: Aggregate,
    *,
    tenant: str = "acme",
    status: str = "running",
    created_at: datetime = T0,
    **overrides: Any,
) -> InstanceRow:
    values: dict[str, Any] = {
        "id": instance.id,
        "tenant": tenant,
        "definition": "flow",
        "version": 1,
        "status": status,
        "correlation_id": None,
        "idempotency_key": None,
        "parent_id": None,
        "created_at": created_at,
        "updated_at": created_at,
        "ended_at": None,
        "aggregate_version": instance.version,
    }
    values.update(overrides)
    return InstanceRow(**values)


def _row(
    row: Callable[..., R],
    prefix: str,
    instance_id: UUID,
    defaults: dict[str, Any],
    overrides: dict[str, Any],
) -> R:
    """A read-model row of tenant acme for `instance_id` with a fresh id `<prefix>-...`: the
    `defaults`, then the `overrides` over them."""
    values: dict[str, Any] = {
        "id": f"{prefix}-{uuid4().hex[:12]}",
        "tenant": "acme",
        "instance_id": instance_id,
        **defaults,
    }
    values.update(overrides)
    return row(**values)


def bookmark_row(instance_id: UUID, **overrides: Any) -> BookmarkRow:
    defaults = {
        "node_id": "wait_payment",
        "kind": "wait",
        "status": "open",
        "event_type": "payment.received",
        "correlation": "order-1",
        "due_at": None,
        "created_at": T0,
        "resolved_at": None,
        "token": uuid4().hex,  # a fresh one each row
    }
    return _row(BookmarkRow, "bm", instance_id, defaults, overrides)


def task_row(instance_id: UUID, **overrides: Any) -> TaskRow:
    defaults = {
        "definition": "flow",
        "node_id": "approve",
        "name": "Approve",
        "kind": "approval",
        "status": "open",
        "assignee": None,
        "role": "manager",
        "claimed_by": None,
        "urgency": "normal",
        "form": {"type": "object"},
        "outcome": None,
        "created_at": T0,
        "completed_at": None,
        "due_at": T0 + timedelta(hours=24),
    }
    return _row(TaskRow, "task", instance_id, defaults, overrides)


def activity_row(instance_id: UUID, **overrides: Any) -> ActivityRow:
    defaults = {
        "node_id": "notify",
        "attempt": 1,
        "status": "scheduled",
        "run_after": T0,
        "action": {"type": "noop", "input": {"n": 1}},
        "timeout_seconds": 30.0,
        "idempotency_key": f"{instance_id}:notify:1",
    }
    return _row(ActivityRow, "act", instance_id, defaults, overrides)
