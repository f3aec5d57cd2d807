"""The built-in notification actions end to end: `waymark serve` with a connections file,
a real local SMTP server, and a local HTTP server standing in for Slack, Teams and Twilio.
Publish-time checks of fields and connections; GET /v1/connections shows no secret."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    Server,
    Target,
    is_problem,
    publish,
    server_env,
    serving,
    start,
    unique,
    wait_for_status,
)
from tests.smtp_server import SmtpServer, smtp_server

pytestmark = pytest.mark.e2e

SLACK_TOKEN = "xoxb-test-0123456789"  # noqa: S105 - a test value
TWILIO_TOKEN = "twilio-secret-token"  # noqa: S105
SMTP_PASSWORD = "smtp-secret-pw"  # noqa: S105
TEAMS_HOOK_PATH = "/teams/hook/secret-path-abc"
SLACK_HOOK_PATH = "/slack-hook/T000/B000/secret-hook-xyz"


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as running:
        yield running


@pytest.fixture(scope="module")
def server(
    module_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    target: Target,
    smtp: SmtpServer,
) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("waymark-actions")
    connections = {
        "acme": {
            "mail": {
                "type": "smtp",
                "host": smtp.host,
                "port": smtp.port,
                "security": "none",
                "from": "Acme <noreply@acme.example>",
                "password": "${WAYMARK_TEST_SMTP_PASSWORD}",
            },
            "slack-bot": {
                "type": "slack",
                "token": "${WAYMARK_TEST_SLACK_TOKEN}",
                "base_url": target.base_url + "/slack/api/",
            },
            "slack-hook": {"type": "slack", "webhook_url": target.base_url + SLACK_HOOK_PATH},
            "teams-ops": {"type": "teams", "webhook_url": target.base_url + TEAMS_HOOK_PATH},
            "sms": {
                "type": "twilio",
                "account_sid": "AC123",
                "auth_token": "${WAYMARK_TEST_TWILIO_TOKEN}",
                "from": "+15550001",
                "base_url": target.base_url + "/twilio",
            },
        },
        "globex": {"globex-mail": {"type": "smtp", "host": "mail.globex.example"}},
    }
    path = workdir / "connections.json"
    path.write_text(json.dumps(connections))
    env = server_env(
        module_database_url,
        workdir,
        WAYMARK_CONNECTIONS_FILE=str(path),
        WAYMARK_TEST_SLACK_TOKEN=SLACK_TOKEN,
        WAYMARK_TEST_TWILIO_TOKEN=TWILIO_TOKEN,
        WAYMARK_TEST_SMTP_PASSWORD=SMTP_PASSWORD,
    )
    target.reply("/slack/api/", {"ok": True, "channel": "C0OPS", "ts": "1700000000.000100"})
    target.reply("/twilio/", {"sid": "SM0001", "status": "queued", "to": "+15557654321"})
    with serving(env, workdir) as running:
        yield running


def notify_everyone(name: str) -> dict[str, Any]:
    order = "{{ input.order }}"
    nodes: list[dict[str, Any]] = [
        {
            "id": "mail",
            "type": "service_task",
            "action": {
                "type": "email",
                "connection": "mail",
                "to": ["{{ input.email }}"],
                "bcc": "audit@acme.example",
                "reply_to": "help@acme.example",
                "subject": f"Order {order} shipped",
                "text": "Hello {{ input.customer }}, order " + order + " is on its way.",
                "html": "<p>Hello <b>{{ input.customer }}</b></p>",
            },
        },
        {
            "id": "post",
            "type": "service_task",
            "action": {
                "type": "slack",
                "connection": "slack-bot",
                "channel": "#ops",
                "text": f"Order {order} mailed as " + "{{ nodes.mail.result.message_id }}",
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": f"*Order {order}*"}}
                ],
            },
        },
        {
            "id": "hook",
            "type": "service_task",
            "action": {
                "type": "slack",
                "connection": "slack-hook",
                "text": "Posted at {{ nodes.post.result.ts }}",
            },
        },
        {
            "id": "card",
            "type": "service_task",
            "action": {
                "type": "teams",
                "connection": "teams-ops",
                "title": f"Order {order}",
                "text": "Shipped to {{ input.customer }}",
                "theme_color": "0076D7",
            },
        },
        {
            "id": "adaptive",
            "type": "service_task",
            "action": {
                "type": "teams",
                "connection": "teams-ops",
                "card": {
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [{"type": "TextBlock", "text": f"Order {order}"}],
                },
            },
        },
        {
            "id": "text",
            "type": "service_task",
            "action": {
                "type": "sms",
                "connection": "sms",
                "to": "{{ input.phone }}",
                "body": f"Order {order} shipped",
            },
        },
        {
            "id": "done",
            "type": "end",
            "output": {
                "mail": "nodes.mail.result",
                "slack": "nodes.post.result",
                "sms": "nodes.text.result",
            },
        },
    ]
    ids = [n["id"] for n in nodes]
    return {
        "name": name,
        "nodes": nodes,
        "routes": [{"from": a, "to": b} for a, b in zip(ids, ids[1:], strict=False)],
    }


def test_every_notification_action_sends_its_rendered_message_and_returns_a_result(
    acme: httpx.Client, target: Target, smtp: SmtpServer
) -> None:
    name = unique("notify")
    publish(acme, notify_everyone(name))
    order = unique("o")

    started = start(
        acme,
        name,
        input={
            "order": order,
            "email": "ann@example.com",
            "customer": "Ann",
            "phone": "+15557654321",
        },
    )
    done = wait_for_status(acme, started["id"], "completed", "failed", timeout=30)

    assert done["status"] == "completed", done
    # email: the real SMTP server got the rendered message
    (mail,) = [m for m in smtp.received() if order in str(m.message["Subject"])]
    assert mail.message["Subject"] == f"Order {order} shipped"
    assert mail.message.get_body(("plain",)).get_content().strip() == (
        f"Hello Ann, order {order} is on its way."
    )
    assert mail.message.get_body(("html",)).get_content().strip() == "<p>Hello <b>Ann</b></p>"
    assert mail.recipients == ["ann@example.com", "audit@acme.example"]
    assert mail.message["X-Idempotency-Key"] == f"{started['id']}:mail:1"
    output = done["output"]
    assert output["mail"]["message_id"] == mail.message["Message-ID"]
    assert output["mail"]["accepted"] == ["ann@example.com", "audit@acme.example"]
    # slack, bot token: chat.postMessage with the bearer token, text using the mail's result
    (post,) = [
        r for r in target.received("/slack/api/chat.postMessage") if order in r.body.decode()
    ]
    assert post.headers["authorization"] == f"Bearer {SLACK_TOKEN}"
    body = post.json()
    assert body["channel"] == "#ops"
    assert body["text"] == f"Order {order} mailed as {mail.message['Message-ID']}"
    assert body["blocks"][0]["text"]["text"] == f"*Order {order}*"
    assert post.headers["x-idempotency-key"] == f"{started['id']}:post:1"
    assert output["slack"] == {"ok": True, "channel": "C0OPS", "ts": "1700000000.000100"}
    # slack, incoming webhook: the previous node's result templated in
    hooks = [
        r
        for r in target.received(SLACK_HOOK_PATH)
        if r.headers.get("x-idempotency-key", "").startswith(started["id"])
    ]
    assert [r.json() for r in hooks] == [{"text": "Posted at 1700000000.000100"}]
    # teams: a MessageCard, then an Adaptive Card in its message envelope
    cards = [
        r
        for r in target.received(TEAMS_HOOK_PATH)
        if r.headers["idempotency-key"].startswith(started["id"])
    ]
    assert [r.headers["idempotency-key"] for r in cards] == [
        f"{started['id']}:card:1",
        f"{started['id']}:adaptive:1",
    ]
    message_card, adaptive = (r.json() for r in cards)
    assert message_card["@type"] == "MessageCard"
    assert message_card["title"] == f"Order {order}"
    assert message_card["text"] == "Shipped to Ann"
    assert message_card["themeColor"] == "0076D7"
    assert adaptive["type"] == "message"
    attachment = adaptive["attachments"][0]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["content"]["body"][0]["text"] == f"Order {order}"
    # sms: Twilio's Messages API, basic auth, idempotency token
    (sms,) = [
        r
        for r in target.received("/twilio/")
        if order in urllib.parse.unquote_plus(r.body.decode())
    ]
    assert sms.method == "POST" and sms.path == "/twilio/2010-04-01/Accounts/AC123/Messages.json"
    form = dict(urllib.parse.parse_qsl(sms.body.decode()))
    assert form == {"To": "+15557654321", "From": "+15550001", "Body": f"Order {order} shipped"}
    assert sms.headers["authorization"] == httpx.BasicAuth("AC123", TWILIO_TOKEN)._auth_header
    assert sms.headers["i-twilio-idempotency-token"] == f"{started['id']}:text:1"
    assert output["sms"] == {"sid": "SM0001", "status": "queued", "to": "+15557654321"}


def test_publish_refuses_unknown_or_mistyped_connections_and_bad_fields(
    acme: httpx.Client, globex: httpx.Client
) -> None:
    def document(action: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": unique("bad"),
            "nodes": [
                {"id": "send", "type": "service_task", "action": action},
                {"id": "done", "type": "end"},
            ],
            "routes": [{"from": "send", "to": "done"}],
        }

    def problems(client: httpx.Client, action: dict[str, Any]) -> list[tuple[str, str]]:
        response = client.post("/v1/definitions", json=document(action))
        body = is_problem(response, 422, "invalid-definition")
        return [(e["path"], e["code"]) for e in body["errors"]]

    mail = {"type": "email", "to": "a@b.example", "subject": "s", "text": "t"}
    assert problems(acme, {**mail, "connection": "nope"}) == [
        ("$.nodes[0].action.connection", "unknown_connection")
    ]
    assert problems(acme, {**mail, "connection": "slack-bot"}) == [
        ("$.nodes[0].action.connection", "invalid_connection")
    ]
    # another tenant's connection is not this tenant's
    assert problems(acme, {**mail, "connection": "globex-mail"}) == [
        ("$.nodes[0].action.connection", "unknown_connection")
    ]
    publish(globex, document({**mail, "connection": "globex-mail"}))
    # fields: unknown, missing, wrong type, templated connection names
    assert problems(acme, {**mail, "connection": "mail", "subjekt": "x"}) == [
        ("$.nodes[0].action.subjekt", "unknown_field")
    ]
    assert problems(acme, {"type": "sms", "connection": "sms", "body": "b"}) == [
        ("$.nodes[0].action.to", "missing_field")
    ]
    assert problems(acme, {"type": "slack", "connection": "slack-bot", "blocks": "x"}) == [
        ("$.nodes[0].action.blocks", "invalid_type")
    ]
    assert problems(acme, {"type": "teams", "connection": "{{ input.c }}", "text": "t"}) == [
        ("$.nodes[0].action.connection", "invalid_value")
    ]
    assert problems(acme, {"type": "emit", "payload": {}}) == [
        ("$.nodes[0].action.event", "missing_field")
    ]


def test_connections_are_listed_by_name_and_type_without_secrets(
    server: Server, acme: httpx.Client, globex: httpx.Client
) -> None:
    response = acme.get("/v1/connections")

    assert response.status_code == 200, response.text
    assert response.json() == {
        "items": [
            {"name": "mail", "type": "smtp"},
            {"name": "slack-bot", "type": "slack"},
            {"name": "slack-hook", "type": "slack"},
            {"name": "sms", "type": "twilio"},
            {"name": "teams-ops", "type": "teams"},
        ],
        "next_cursor": None,
    }
    for secret in (SLACK_TOKEN, TWILIO_TOKEN, SMTP_PASSWORD, "secret-path", "secret-hook"):
        assert secret not in response.text
    assert globex.get("/v1/connections").json()["items"] == [
        {"name": "globex-mail", "type": "smtp"}
    ]
    with server.client("k-acme-viewer") as viewer:
        is_problem(viewer.get("/v1/connections"), 403, "forbidden")
