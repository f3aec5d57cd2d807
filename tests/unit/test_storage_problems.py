"""Storage limits and database timeouts cross the API as problems (413 / 503), not 500s."""

from __future__ import annotations

from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from infrastructure.postgres.datastore import DatabaseTimeoutError
from infrastructure.postgres.recorder import StoredEventTooLargeError, WriteLimits
from tests.unit.test_api_problems import AsgiClient, app_raising


def test_a_command_over_a_storage_limit_is_413_naming_the_limit() -> None:
    error = StoredEventTooLargeError("WAYMARK_MAX_EVENT_BYTES", 900_123, 262_144, "event Started")
    response = AsgiClient(app_raising(error)).get("/boom")

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "https://waymark.dev/problems/command-too-large"
    assert (body["limit"], body["size"], body["maximum"]) == (
        "WAYMARK_MAX_EVENT_BYTES",
        900_123,
        262_144,
    )
    assert (
        body["detail"]
        == "event Started is 900123 bytes stored, over WAYMARK_MAX_EVENT_BYTES=262144"
    )


def test_a_database_timeout_is_503_with_retry_after() -> None:
    error = DatabaseTimeoutError("canceling statement due to statement timeout")
    response = AsgiClient(app_raising(error)).get("/boom")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert body["type"] == "https://waymark.dev/problems/database-timeout"
    assert "statement timeout" not in body["detail"]  # no server message leaks


def _event(size: int) -> StoredEvent:
    return StoredEvent(uuid4(), 1, "domain.instance:WorkflowInstance.Started", b"x" * size)


def test_write_limits_count_each_event_and_the_command() -> None:
    limits = WriteLimits(max_event_bytes=10, max_command_bytes=15)
    limits.check([_event(10), _event(5)])  # at the limits: accepted
    with pytest.raises(StoredEventTooLargeError) as one:
        limits.check([_event(11)])
    assert one.value.limit == "WAYMARK_MAX_EVENT_BYTES"
    with pytest.raises(StoredEventTooLargeError) as total:
        limits.check([_event(10), _event(6)])
    assert (total.value.limit, total.value.size) == ("WAYMARK_MAX_COMMAND_BYTES", 16)
