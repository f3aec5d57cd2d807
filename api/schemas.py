"""Request bodies of the HTTP API (SPEC §4). Unknown fields are refused, not ignored."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

# The command bodies live in the application layer: the Kafka command consumer validates
# its messages with the same models (a worker imports no web framework).
from application.requests import (
    CancelRequest,
    CompleteTaskRequest,
    EventRequest,
    ResumeRequest,
    StartInstanceRequest,
    Strict,
)

# Filter values of the list endpoints (SPEC §3, §4): a typo is a 422, not an empty list.
InstanceStatus = Literal["running", "suspended", "incident", "completed", "failed", "cancelled"]
TaskStatus = Literal["open", "claimed", "completed", "cancelled"]
# `low`/`critical` (and undated tasks' `normal`/`high`) are a node's fixed `urgency`; an open
# task with a due time gets `overdue`, `urgent` (< 4 h left), `high` (< 24 h) or `normal`
# computed from the time left when it is read.
Urgency = Literal["low", "normal", "high", "critical", "urgent", "overdue"]


class EraseRequest(Strict):
    reason: str | None = Field(default=None, max_length=1000)


InstanceCondition = Literal["long_running", "stuck"]


class ClaimRequest(Strict):
    user: str | None = Field(default=None, min_length=1, max_length=200)


class CancelTaskRequest(Strict):
    reason: str | None = Field(default=None, max_length=1000)


class DelegateRequest(Strict):
    assignee: str = Field(min_length=1, max_length=200)


class InstantiateTemplateRequest(Strict):
    """Publish a template's definition, under `name` instead of the template's own."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    # Publish the next version when the tenant has a definition of that name already
    # (otherwise that is a 409: a template never silently replaces a user's definition).
    new_version: bool = False


__all__ = [
    "CancelRequest",
    "ClaimRequest",
    "CompleteTaskRequest",
    "DelegateRequest",
    "EventRequest",
    "InstanceStatus",
    "InstantiateTemplateRequest",
    "ResumeRequest",
    "StartInstanceRequest",
    "Strict",
    "TaskStatus",
    "Urgency",
]


# --- operator recovery (api/routes/incidents.py) ---------------------------------------------

IncidentStatus = Literal["open", "retried", "skipped", "closed"]


class RetryRequest(Strict):
    """Retry the failed node: `variables` are merged into the instance's first."""

    variables: dict[str, Any] | None = None
    incident_id: str | None = Field(default=None, min_length=1, max_length=200)
    reason: str | None = Field(default=None, max_length=1000)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class SkipRequest(Strict):
    """Complete the failed node with `result` (its `result_var` gets it) and go on."""

    result: Any = None
    outcome: str | None = Field(default=None, min_length=1, max_length=200)
    incident_id: str | None = Field(default=None, min_length=1, max_length=200)
    reason: str | None = Field(default=None, max_length=1000)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
