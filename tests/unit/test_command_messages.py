"""Command messages (the Kafka topic `waymark.commands`): parsed into the HTTP API's commands
with the API's own request models, every one keyed, refusals rendered by their stable code."""

from __future__ import annotations

import json
import uuid

import pytest

from application.command_messages import (
    PROBLEM_TYPE_BASE,
    InvalidMessageError,
    correlation_of,
    parse_message,
    problem_of,
)
from application.commands import (
    CancelInstance,
    CompleteTask,
    DeliverEvent,
    ResumeBookmark,
    StartInstance,
)
from application.errors import InvalidDataError
from domain.errors import InvalidOutcomeError

INSTANCE = str(uuid.uuid4())


def parse(body: object, key: str = "kafka:t:0:7:1") -> object:
    value = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_message(value, tenant="acme", default_key=key, source="kafka")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"command": "start", "definition": "po", "input": {"a": 1}, "correlation_id": "c"},
            StartInstance("acme", "po", input={"a": 1}, idempotency_key="d", correlation_id="c"),
        ),
        (
            {"command": "resume", "instance_id": INSTANCE, "bookmark_id": "b", "payload": 2},
            ResumeBookmark(
                "acme", uuid.UUID(INSTANCE), "b", 2, idempotency_key="d", source="kafka"
            ),
        ),
        (
            {"command": "event", "type": "po.paid", "correlation": "o-1", "payload": [1]},
            DeliverEvent("acme", "po.paid", correlation="o-1", payload=[1], idempotency_key="d"),
        ),
        (
            {"command": "cancel", "instance_id": INSTANCE},
            CancelInstance("acme", uuid.UUID(INSTANCE), "cancelled by kafka", idempotency_key="d"),
        ),
        (
            {"command": "complete_task", "task_id": "t", "outcome": "approved", "user": "ann"},
            CompleteTask("acme", "t", outcome="approved", user="ann", idempotency_key="d"),
        ),
    ],
)
def test_each_kind_becomes_the_api_command_keyed_by_default(body: dict, expected: object) -> None:
    parsed = parse(body, key="d")
    assert parsed.command == expected  # type: ignore[attr-defined]
    assert parsed.kind == body["command"]  # type: ignore[attr-defined]


def test_the_message_key_wins_over_the_derived_one() -> None:
    parsed = parse({"command": "cancel", "instance_id": INSTANCE, "idempotency_key": "mine"})
    assert parsed.command.idempotency_key == "mine"  # type: ignore[attr-defined]


def test_the_reply_correlation_id_is_the_messages() -> None:
    parsed = parse({"command": "event", "type": "x", "correlation_id": "r-1"})
    assert parsed.correlation_id == "r-1"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("value", "code", "path"),
    [
        (b"{nope", "invalid-json", None),
        (b"[]", "invalid-request", "$"),
        ({"command": "launch"}, "invalid-request", "$"),
        ({"definition": "po"}, "invalid-request", "$"),
        ({"command": "start"}, "invalid-request", "$.definition"),
        (
            {"command": "start", "definition": "po", "tenant": "globex"},
            "invalid-request",
            "$.tenant",
        ),
        ({"command": "start", "definition": "po", "version": 0}, "invalid-request", "$.version"),
        (
            {"command": "resume", "instance_id": "x", "bookmark_id": "b"},
            "invalid-request",
            "$.instance_id",
        ),
        (
            {"command": "start", "definition": "po", "idempotency_key": ""},
            "invalid-request",
            "$.idempotency_key",
        ),
    ],
)
def test_malformed_messages_are_refused_with_the_paths(
    value: object, code: str, path: str | None
) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        parse(value)
    body = problem_of(caught.value)
    assert body is not None and body["code"] == code
    assert body["type"] == PROBLEM_TYPE_BASE + code
    if path is not None:
        assert path in [e["path"] for e in body["errors"]]


def test_a_body_cannot_name_its_tenant() -> None:
    # The tenant comes from the transport (a header), never from the body.
    with pytest.raises(InvalidMessageError):
        parse({"command": "cancel", "instance_id": INSTANCE, "tenant": "globex"})


def test_problems_carry_the_api_types_and_extras() -> None:
    from api.problems import KINDS, TYPE_BASE

    assert PROBLEM_TYPE_BASE == TYPE_BASE
    invalid = problem_of(InvalidDataError("input", [("$.amount", "must be a number")]))
    assert invalid is not None and invalid["errors"][0]["path"] == "$.amount"
    outcome = problem_of(InvalidOutcomeError("t", "maybe", ["approved", "rejected"]))
    assert outcome is not None and outcome["allowed"] == ["approved", "rejected"]
    assert invalid["code"] in KINDS and outcome["code"] in KINDS
    assert problem_of(RuntimeError("a bug")) is None  # uncoded: the caller says internal-error


def test_the_correlation_id_of_an_invalid_message_is_read_when_it_can_be() -> None:
    assert correlation_of(b'{"correlation_id": "c-9", "command": "zap"}') == "c-9"
    assert correlation_of(b"{nope") is None
    assert correlation_of(b"[1]") is None
    assert correlation_of(None) is None
