"""Publish-time checks of the built-in actions' fields: unknown, missing and mistyped
fields are problems with their JSON path; templates are checked in every string."""

from __future__ import annotations

from typing import Any

import pytest

from domain.validation import validate_document


def problems(action: dict[str, Any]) -> list[tuple[str, str]]:
    document = {
        "name": "n",
        "nodes": [
            {"id": "s", "type": "service_task", "action": action},
            {"id": "done", "type": "end"},
        ],
        "routes": [{"from": "s", "to": "done"}],
    }
    return [(p.path, p.code) for p in validate_document(document)]


VALID = [
    {
        "type": "email",
        "connection": "mail",
        "from": "a@b.c",
        "to": ["{{ input.to }}", "x@y.z"],
        "cc": "c@d.e",
        "bcc": ["f@g.h"],
        "reply_to": "r@s.t",
        "subject": "Order {{ input.id }}",
        "text": "t",
        "html": "<p>h</p>",
        "headers": {"X-A": "1"},
        "timeout": "PT10S",
    },
    {"type": "email", "connection": "mail", "to": "a@b.c", "subject": "s", "html": "<p/>"},
    {"type": "slack", "connection": "ops", "channel": "#c", "text": "t", "thread_ts": "1.2"},
    {"type": "slack", "connection": "ops", "blocks": [{"type": "divider"}]},
    {"type": "teams", "connection": "t", "title": "T", "text": "x", "theme_color": "FF0000"},
    {"type": "teams", "connection": "t", "card": {"type": "AdaptiveCard"}},
    {"type": "sms", "connection": "s", "to": "{{ input.phone }}", "body": "b", "from": "+1"},
    {"type": "emit", "event": "order.paid", "correlation": "{{ input.id }}", "payload": [1]},
    {"type": "emit", "event": "e"},
    {"type": "http", "url": "/orders", "connection": "api"},
]


@pytest.mark.parametrize("action", VALID, ids=lambda a: a["type"])
def test_valid_actions(action: dict[str, Any]) -> None:
    assert problems(action) == []


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (
            {"type": "email", "connection": "m", "to": "a", "text": "t"},
            [("$.nodes[0].action.subject", "missing_field")],
        ),
        (
            {"type": "email", "to": "a", "subject": "s", "text": "t"},
            [("$.nodes[0].action.connection", "missing_field")],
        ),
        (
            {"type": "email", "connection": "m", "to": "a", "subject": "s"},
            [("$.nodes[0].action", "missing_field")],
        ),
        (
            {"type": "email", "connection": "m", "to": [1], "subject": "s", "text": "t"},
            [("$.nodes[0].action.to[0]", "invalid_type")],
        ),
        (
            {
                "type": "email",
                "connection": "m",
                "to": "a",
                "subject": "s",
                "text": "t",
                "attach": 1,
            },
            [("$.nodes[0].action.attach", "unknown_field")],
        ),
        ({"type": "slack", "connection": "o"}, [("$.nodes[0].action", "missing_field")]),
        (
            {"type": "slack", "connection": "o", "text": "t", "blocks": [1]},
            [("$.nodes[0].action.blocks[0]", "invalid_type")],
        ),
        (
            {"type": "slack", "connection": "o", "text": "t", "token": "xoxb"},
            [("$.nodes[0].action.token", "unknown_field")],
        ),
        (
            {"type": "teams", "connection": "t", "card": []},
            [("$.nodes[0].action.card", "invalid_type")],
        ),
        (
            {"type": "teams", "connection": "t", "webhook_url": "u", "text": "t"},
            [("$.nodes[0].action.webhook_url", "unknown_field")],
        ),
        (
            {"type": "sms", "connection": "s", "to": "+1"},
            [("$.nodes[0].action.body", "missing_field")],
        ),
        (
            {"type": "sms", "connection": "s", "to": "+1", "body": "{{ input.( }}"},
            [("$.nodes[0].action.body", "invalid_expression")],
        ),
        ({"type": "emit", "event": 3}, [("$.nodes[0].action.event", "invalid_type")]),
        (
            {"type": "emit", "event": "e", "connection": "x"},
            [("$.nodes[0].action.connection", "unknown_field")],
        ),
        (
            {"type": "http", "url": "u", "connection": "{{ input.c }}"},
            [("$.nodes[0].action.connection", "invalid_value")],
        ),
    ],
)
def test_bad_fields_have_their_path(
    action: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert problems(action) == expected
