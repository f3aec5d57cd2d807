"""Request bodies of the HTTP API (SPEC §4). Unknown fields are refused, not ignored."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Filter values of the list endpoints (SPEC §3, §4): a typo is a 422, not an empty list.
InstanceStatus = Literal["running", "suspended", "completed", "failed", "cancelled"]
TaskStatus = Literal["open", "claimed", "completed", "cancelled"]
Urgency = Literal["low", "normal", "high", "critical"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartInstanceRequest(Strict):
    """Start an instance of a definition (the latest version unless `version` is given)."""

    definition: str = Field(min_length=1, max_length=100)
    version: int | None = Field(default=None, ge=1)
    input: dict[str, Any] | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    correlation_id: str | None = Field(default=None, max_length=200)


class CancelRequest(Strict):
    reason: str | None = Field(default=None, max_length=1000)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class ResumeRequest(Strict):
    payload: Any = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class EventRequest(Strict):
    """An event: resumes matching `wait` nodes and starts event-triggered definitions."""

    type: str = Field(min_length=1, max_length=200)
    correlation: str | None = Field(default=None, max_length=200)
    payload: Any = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class ClaimRequest(Strict):
    user: str | None = Field(default=None, min_length=1, max_length=200)


class DelegateRequest(Strict):
    assignee: str = Field(min_length=1, max_length=200)


class CompleteTaskRequest(Strict):
    outcome: str | None = Field(default=None, max_length=100)
    data: dict[str, Any] | None = None
    comment: str | None = Field(default=None, max_length=4000)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class InstantiateTemplateRequest(Strict):
    """Publish a template's definition, under `name` instead of the template's own."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    # Publish the next version when the tenant has a definition of that name already
    # (otherwise that is a 409: a template never silently replaces a user's definition).
    new_version: bool = False
