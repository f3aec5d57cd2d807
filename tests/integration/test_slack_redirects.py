"""The `slack` action follows no redirect: a local server answering the Slack API or webhook
POST with `302 Location: http://10.0.0.1/...` fails the attempt (not retryable, naming the
Location) and no connection goes to the redirect target. Production-mode egress policy, the
local server allow-listed as in tests/integration/test_breakers_and_egress.py."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from slack_sdk.webhook import WebhookClient

from application.connections import Connection
from infrastructure.actions import outbound
from infrastructure.actions.slack import SlackAction

INTERNAL = "http://10.0.0.1/latest/meta-data/"


@dataclass
class Redirector:
    base_url: str = ""
    location: str = INTERNAL
    seen: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture
def redirector() -> Iterator[Redirector]:
    state = Redirector()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            state.seen.append((self.command, self.path))
            if self.path.startswith("/landed"):
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                return
            self.send_response(302)
            self.send_header("Location", state.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every address a socket connects to in this test (http.client uses create_connection)."""
    seen: list[Any] = []
    real = socket.create_connection

    def recording(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        seen.append(address)
        if address[0] == "10.0.0.1":
            raise AssertionError("a connection to the redirect target was attempted")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", recording)
    return seen


PRODUCTION = outbound.EgressPolicy.parse("127.0.0.1", production=True)


def bot(base_url: str) -> Connection:
    return Connection("ops", "slack", {"token": "xoxb-1", "base_url": base_url + "/api"})


def hook(base_url: str) -> Connection:
    return Connection("h", "slack", {"webhook_url": base_url + "/hook/secret-123"})


@pytest.mark.parametrize("variant", ["bot", "webhook"])
def test_a_redirect_to_an_internal_address_fails_without_reaching_it(
    redirector: Redirector, connections: list[Any], variant: str
) -> None:
    connection = bot(redirector.base_url) if variant == "bot" else hook(redirector.base_url)
    with outbound.egress_scope(PRODUCTION):
        result = SlackAction()({"text": "hi", "channel": "#c"}, "k", 5, connection)
    assert not result.ok and not result.retryable
    assert "HTTP 302 redirect to 'http://10.0.0.1/latest/meta-data/' not followed" in (
        result.error or ""
    ), result.error
    assert "secret-123" not in (result.error or "")
    assert len(redirector.seen) == 1 and redirector.seen[0][0] == "POST"
    assert connections and all(address[0] != "10.0.0.1" for address in connections)


def test_a_redirect_to_the_same_allowed_server_is_not_followed_either(
    redirector: Redirector,
) -> None:
    # Even a hop the guard would allow is not followed: the rule is "no redirects".
    redirector.location = redirector.base_url + "/landed"
    with outbound.egress_scope(PRODUCTION):
        result = SlackAction()({"text": "hi"}, "k", 5, hook(redirector.base_url))
    assert not result.ok and not result.retryable
    assert "/landed" in (result.error or "")
    assert [path for _, path in redirector.seen] == ["/hook/secret-123"]


def test_negative_control_the_stock_sdk_client_follows_the_redirect(
    redirector: Redirector,
) -> None:
    # Without the override slack-sdk's urllib follows the 302 (as a GET) past any check.
    redirector.location = redirector.base_url + "/landed"
    response = WebhookClient(redirector.base_url + "/hook/x", retry_handlers=[]).send(text="hi")
    assert response.status_code == 200
    assert redirector.seen == [("POST", "/hook/x"), ("GET", "/landed")]
