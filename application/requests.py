"""The bodies of the commands any entry point receives (SPEC §4): the HTTP API's request
models, and the Kafka command consumer's messages built on them, so both refuse the same
bodies with the same errors. Unknown fields are refused, not ignored.

pydantic, not FastAPI: a worker validates with these models without a web framework.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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


class CompleteTaskRequest(Strict):
    outcome: str | None = Field(default=None, max_length=100)
    data: dict[str, Any] | None = None
    comment: str | None = Field(default=None, max_length=4000)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
