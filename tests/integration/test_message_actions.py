"""The slack, teams and sms actions against a local recording HTTP server: how provider
answers become retryable or permanent failures, secrets kept out of errors, and every
outbound URL passing `outbound.check_url`."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from application.connections import Connection
from infrastructure.actions import ActionRegistry, outbound
from infrastructure.actions.slack import SlackAction
from infrastructure.actions.sms import SmsAction
from infrastructure.actions.teams import TeamsAction
from tests.e2e.conftest import Target, _handler_for


@pytest.fixture
def target() -> Iterator[Target]:
    recorder = Target()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(recorder))
    recorder.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield recorder
    server.shutdown()
    server.server_close()
    thread.join(5)


def bot(target: Target) -> Connection:
    return Connection("ops", "slack", {"token": "xoxb-1", "base_url": target.base_url + "/api"})


def test_slack_api_errors_are_permanent_unless_slack_says_try_again(target: Target) -> None:
    action = {"text": "hi", "channel": "#c"}
    target.reply("/api/", {"ok": False, "error": "channel_not_found"})
    result = SlackAction()(action, "k", 5, bot(target))
    assert not result.ok and not result.retryable and "channel_not_found" in (result.error or "")

    target.reply("/api/", {"ok": False, "error": "ratelimited"})
    assert SlackAction()(action, "k", 5, bot(target)).retryable

    target.reply("/api/", {"ok": True, "channel": "C1", "ts": "1.2"})
    ok = SlackAction()(action, "k", 5, bot(target))
    assert ok.ok and ok.output == {"ok": True, "channel": "C1", "ts": "1.2"}
    # "/api" without a trailing slash still reaches /api/chat.postMessage
    assert target.requests[-1].path == "/api/chat.postMessage"


def test_slack_bot_needs_a_channel_and_a_message(target: Target) -> None:
    no_channel = SlackAction()({"text": "hi"}, "k", 5, bot(target))
    assert not no_channel.ok and not no_channel.retryable and "channel" in (no_channel.error or "")
    default = Connection("ops", "slack", {**bot(target).settings, "channel": "#default"})
    target.reply("/api/", {"ok": True, "channel": "C9", "ts": "1"})
    assert SlackAction()({"text": "hi"}, "k", 5, default).ok
    assert target.requests[-1].json()["channel"] == "#default"
    assert not SlackAction()({"channel": "#c"}, "k", 5, bot(target)).ok


@pytest.mark.parametrize(("status", "retryable"), [(503, True), (429, True), (404, False)])
def test_webhook_failures(target: Target, status: int, retryable: bool) -> None:
    target.fail("/hook", status)
    target.reply("/hook", {"error": "no"})  # (the default reply echoes the path)
    slack = Connection("h", "slack", {"webhook_url": target.base_url + "/hook/secret-123"})
    teams = Connection("t", "teams", {"webhook_url": target.base_url + "/hook/secret-456"})
    for result in (
        SlackAction()({"text": "x"}, "k", 5, slack),
        TeamsAction()({"text": "x"}, "k", 5, teams),
    ):
        assert not result.ok and result.retryable is retryable
        assert "secret" not in (result.error or "")  # webhook URLs are credentials


def test_sms_provider_errors(target: Target) -> None:
    connection = Connection(
        "sms",
        "twilio",
        {
            "account_sid": "AC1",
            "auth_token": "tok-secret",
            "from": "+1",
            "base_url": target.base_url,
        },
    )
    target.fail("/2010-04-01/", 400)
    target.reply("/2010-04-01/", {"code": 21211, "message": "The 'To' number is not valid."})
    bad = SmsAction()({"to": "nope", "body": "b"}, "k", 5, connection)
    assert not bad.ok and not bad.retryable and "'To' number is not valid" in (bad.error or "")
    assert "tok-secret" not in (bad.error or "")
    target.fail("/2010-04-01/", 500)
    assert SmsAction()({"to": "+2", "body": "b"}, "k", 5, connection).retryable


def test_every_outbound_url_passes_check_url(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []

    def refuse(url: str, policy: object = None) -> None:
        checked.append(url)
        raise outbound.EgressRefusedError(url, "address not allowed")

    monkeypatch.setattr(outbound, "check_url", refuse)
    base = target.base_url
    from infrastructure.connections import FileConnections

    registry = ActionRegistry(
        connections=FileConnections(
            {
                "acme": {
                    "bot": {"type": "slack", "token": "x", "base_url": base + "/api/"},
                    "hook": {"type": "slack", "webhook_url": base + "/slack-hook"},
                    "teams": {"type": "teams", "webhook_url": base + "/teams"},
                    "sms": {
                        "type": "twilio",
                        "account_sid": "AC1",
                        "auth_token": "t",
                        "from": "+1",
                        "base_url": base,
                    },
                }
            },
            {},
        )
    )
    actions: list[dict[str, Any]] = [
        {"type": "http", "url": base + "/http"},
        {"type": "slack", "connection": "bot", "channel": "#c", "text": "t"},
        {"type": "slack", "connection": "hook", "text": "t"},
        {"type": "teams", "connection": "teams", "text": "t"},
        {"type": "sms", "connection": "sms", "to": "+2", "body": "b"},
    ]
    for action in actions:
        result = registry.run(action, idempotency_key="k", timeout=5, tenant="acme")
        assert not result.ok and not result.retryable
        assert "address not allowed" in (result.error or "")
    assert checked == [
        base + "/http",
        base + "/api/chat.postMessage",
        base + "/slack-hook",
        base + "/teams",
        base + "/2010-04-01/Accounts/AC1/Messages.json",
    ]
    assert target.requests == []  # nothing was sent
    registry.close()
