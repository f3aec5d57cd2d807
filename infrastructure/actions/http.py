"""The `http` action: one HTTP request carrying the activity's idempotency key."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from application.ports import ActionResult
from domain.durations import parse_duration
from infrastructure.actions.outbound import (
    EgressPolicy,
    EgressRefusedError,
    RetryPolicy,
    guarded_client,
    send_with_retries,
)

DEFAULT_METHOD = "POST"
DEFAULT_TIMEOUT_SECONDS = 120.0  # SPEC §6: external calls time out after 2 min
_ALLOWED_SCHEMES = ("http", "https")
_RETRYABLE_CLIENT_ERRORS = (408, 429)  # request timeout, too many requests: try again later
_ERROR_BODY_CHARS = 200


class HttpAction:
    """Performs `{"type": "http", "url", "method", "headers", "body", "timeout"}` actions."""

    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        *,
        egress: EgressPolicy | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._transport = transport
        # None: the process's installed policy (outbound.install_policy); read per request.
        self.egress = egress
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def __call__(
        self, action: dict[str, Any], idempotency_key: str, timeout: float
    ) -> ActionResult:
        method = str(action.get("method") or DEFAULT_METHOD).upper()
        url = action.get("url")
        if not isinstance(url, str) or urlsplit(url).scheme.lower() not in _ALLOWED_SCHEMES:
            return _failure(f"http action needs an http(s) 'url', got {url!r}", retryable=False)
        try:
            seconds = _timeout_seconds(action.get("timeout"), timeout)
        except ValueError as exc:
            return _failure(f"http action 'timeout': {exc}", retryable=False)
        headers = {str(k): str(v) for k, v in (action.get("headers") or {}).items()}
        # Ours wins over any header of the same name: the receiver deduplicates on it when a
        # crash makes the task worker run this step again (at-least-once).
        headers = {k: v for k, v in headers.items() if k.lower() != "idempotency-key"}
        headers["Idempotency-Key"] = idempotency_key
        body = action.get("body")
        content: dict[str, Any] = {}
        if isinstance(body, dict | list):
            content["json"] = body
        elif body is not None:
            content["content"] = str(body).encode()
        where = f"{method} {_redacted(url)}"
        client = self._http()

        def send(seconds_left: float) -> httpx.Response:
            return client.request(
                method, url, headers=headers, timeout=httpx.Timeout(seconds_left), **content
            )

        try:
            # Transient errors are tried again inside this attempt, within its timeout; what
            # still fails is the attempt's result, and the node's retry policy takes over.
            response = send_with_retries(
                send, timeout=seconds, policy=self._retry, sleep=self._sleep
            )
        except EgressRefusedError as exc:  # raised by the client's request hook
            return _failure(f"{exc}: calling {where} is not allowed", retryable=False)
        except httpx.TimeoutException as exc:
            return _failure(f"timed out after {seconds:g} s calling {where} ({_name(exc)})")
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            return _failure(f"cannot call {where}: {exc}", retryable=False)
        except httpx.TransportError as exc:  # refused, reset, DNS, protocol errors: transient
            return _failure(f"cannot reach {where}: {_name(exc)}: {exc}")
        return _result(response, where)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _http(self) -> httpx.Client:
        # One pooled client for every worker thread (httpx.Client is thread-safe), made on
        # first use so processes that never call out never open one.
        with self._lock:
            if self._client is None:
                # Every request it sends passes the egress guard (redirects too, should a
                # caller follow them).
                self._client = guarded_client(
                    lambda: self.egress, follow_redirects=False, transport=self._transport
                )
            return self._client


def _timeout_seconds(value: Any, default: float) -> float:
    if value is not None:
        seconds = parse_duration(value).total_seconds()
        if seconds <= 0:
            raise ValueError("must be longer than zero")
        return seconds
    return float(default) if default and default > 0 else DEFAULT_TIMEOUT_SECONDS


def _result(response: httpx.Response, where: str) -> ActionResult:
    status = response.status_code
    if 200 <= status < 300:
        return ActionResult(ok=True, output={"status": status, "body": _body(response)})
    message = f"HTTP {status} from {where}: {response.text[:_ERROR_BODY_CHARS]}"
    if 300 <= status < 400:
        return _failure(f"{message} (redirects are not followed)", retryable=False)
    retryable = status >= 500 or status in _RETRYABLE_CLIENT_ERRORS
    return _failure(message, retryable=retryable)


def _body(response: httpx.Response) -> Any:
    text = response.text
    if "json" in response.headers.get("content-type", "").lower() and text.strip():
        try:
            return json.loads(text)
        except ValueError:
            pass  # a server lying about its content type: keep the text
    return text


def _redacted(url: str) -> str:
    """The URL without `user:password@`: error messages end up in the instance's history."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


def _failure(message: str, *, retryable: bool = True) -> ActionResult:
    return ActionResult(ok=False, error=message, retryable=retryable)


def _name(exc: Exception) -> str:
    return type(exc).__name__
