"""The action registry and the HTTP action, against a real local HTTP server."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from application.ports import ActionResult
from infrastructure.actions import ActionRegistry


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format, *args):  # keep pytest output quiet
        pass

    def _reply(self, status, body, content_type="application/json"):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (the timeout tests)

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        self.server.requests.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        if self.path == "/ok":
            is_json = self.headers.get("Content-Type") == "application/json"
            self._reply(200, {"received": json.loads(body) if is_json else body})
        elif self.path == "/text":
            self._reply(200, "plain words", "text/plain")
        elif self.path == "/boom":
            self._reply(500, "database exploded " + "x" * 500, "text/plain")
        elif self.path == "/throttled":
            self._reply(429, "slow down", "text/plain")
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/ok")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/slow":
            self.server.release.wait(5)  # far longer than the client's timeout
            self._reply(200, {"late": True})
        else:
            self._reply(404, {"error": "no such thing"})

    do_GET = do_POST = do_PUT = _handle


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.requests = []
    httpd.release = threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield httpd
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def registry():
    registry = ActionRegistry()
    yield registry
    registry.close()


def _url(server, path):
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def _run(registry, action, key="inst:node:1", timeout=5.0):
    return registry.run(action, idempotency_key=key, timeout=timeout)


def test_http_200_json_is_ok_with_status_and_parsed_body(server, registry):
    result = _run(registry, {"type": "http", "url": _url(server, "/ok"), "body": {"amount": 5}})

    expected = {"status": 200, "body": {"received": {"amount": 5}}}
    assert result == ActionResult(ok=True, output=expected)
    request = server.requests[0]
    assert request["method"] == "POST"
    assert request["headers"]["Content-Type"] == "application/json"


def test_http_sends_the_idempotency_key_and_custom_headers(server, registry):
    action = {
        "type": "http",
        "method": "put",
        "url": _url(server, "/ok"),
        "body": "hello",
        "headers": {"X-Trace": "abc", "idempotency-key": "overridden"},
    }

    result = _run(registry, action, key="i-1:charge:3")

    assert result.ok
    request = server.requests[0]
    assert request["method"] == "PUT"
    assert request["body"] == "hello"
    assert request["headers"]["Idempotency-Key"] == "i-1:charge:3"
    assert "idempotency-key" not in request["headers"]
    assert request["headers"]["X-Trace"] == "abc"


def test_http_text_body_is_returned_as_text(server, registry):
    result = _run(registry, {"type": "http", "method": "GET", "url": _url(server, "/text")})

    assert result.output == {"status": 200, "body": "plain words"}


def test_http_500_is_a_retryable_failure_with_a_truncated_body(server, registry):
    url = _url(server, "/boom")

    result = _run(registry, {"type": "http", "url": url})

    assert not result.ok and result.retryable
    assert result.error.startswith(f"HTTP 500 from POST {url}: database exploded x")
    assert len(result.error) == len(f"HTTP 500 from POST {url}: ") + 200


def test_http_429_is_retryable(server, registry):
    result = _run(registry, {"type": "http", "url": _url(server, "/throttled")})

    assert not result.ok and result.retryable


def test_http_404_is_not_retryable(server, registry):
    result = _run(registry, {"type": "http", "method": "GET", "url": _url(server, "/missing")})

    assert not result.ok and not result.retryable
    assert result.error.startswith("HTTP 404 from GET ")


def test_http_redirects_are_not_followed(server, registry):
    result = _run(registry, {"type": "http", "method": "GET", "url": _url(server, "/redirect")})

    assert not result.ok and not result.retryable
    assert [r["path"] for r in server.requests] == ["/redirect"]


def test_http_timeout_is_retryable(server, registry):
    started = time.monotonic()

    result = _run(registry, {"type": "http", "url": _url(server, "/slow"), "timeout": "PT0.2S"})

    assert not result.ok and result.retryable
    assert "timed out" in result.error
    assert time.monotonic() - started < 0.9


def test_http_timeout_argument_is_used_without_a_per_action_timeout(server, registry):
    result = _run(registry, {"type": "http", "url": _url(server, "/slow")}, timeout=0.2)

    assert not result.ok and result.retryable and "timed out" in result.error


def test_http_connection_refused_is_retryable(registry):
    with socket.socket() as sock:  # a port nobody listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    result = _run(registry, {"type": "http", "url": f"http://127.0.0.1:{port}/x"})

    assert not result.ok and result.retryable
    assert "cannot reach" in result.error


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", None, "not a url"])
def test_http_only_allows_http_and_https(registry, url):
    result = _run(registry, {"type": "http", "url": url})

    assert not result.ok and not result.retryable


def test_http_invalid_timeout_is_not_retryable(server, registry):
    result = _run(registry, {"type": "http", "url": _url(server, "/ok"), "timeout": "soon"})

    assert not result.ok and not result.retryable
    assert server.requests == []


def test_noop_returns_its_input(registry):
    assert _run(registry, {"type": "noop", "input": {"a": 1}}) == ActionResult(
        ok=True, output={"a": 1}
    )
    assert _run(registry, {"type": "noop", "b": 2}).output == {"b": 2}


def test_unknown_type_is_a_permanent_failure(registry):
    result = _run(registry, {"type": "carrier-pigeon"})

    assert result == ActionResult(
        ok=False, error="unknown action type 'carrier-pigeon'", retryable=False
    )


def test_custom_registered_action_receives_action_key_and_timeout(registry):
    calls = []

    def send_sms(action, idempotency_key, timeout):
        calls.append((action, idempotency_key, timeout))
        return ActionResult(ok=True, output={"sent_to": action["to"]})

    registry.register("sms", send_sms)
    result = _run(registry, {"type": "sms", "to": "+123"}, key="k", timeout=7.5)

    assert result == ActionResult(ok=True, output={"sent_to": "+123"})
    assert calls == [({"type": "sms", "to": "+123"}, "k", 7.5)]


def test_exception_inside_an_action_becomes_a_failure(registry):
    def broken(action, idempotency_key, timeout):
        raise RuntimeError("printer on fire")

    registry.register("print", broken)
    result = _run(registry, {"type": "print"})

    assert not result.ok
    assert "RuntimeError: printer on fire" in result.error


def test_an_action_returning_something_else_is_a_failure(registry):
    registry.register("sloppy", lambda action, key, timeout: {"ok": True})

    result = _run(registry, {"type": "sloppy"})

    assert not result.ok and not result.retryable
