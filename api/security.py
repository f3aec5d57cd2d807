"""Request-level defences, as pure ASGI middleware (docs/security.md):

- `TenantScope`: each request runs in its own tenant scope (application/tenant_scope.py),
  narrowed to the caller's tenant once authenticated: the database's row-level security;
- `RateLimit`: per API key and per client IP (the `limits` library, moving window, in this
  process's memory; or, `WAYMARK_RATE_LIMIT_STORAGE=postgres`, a fixed window in PostgreSQL
  that every replica shares), `429 rate-limited` problem+json with `Retry-After`;
- `RequestTimeout`: a request whose response has not started within the timeout is answered
  `503 request-timeout` (a started stream, the event feed, runs on);
- `Cors`: CORS for the configured origins only (off by default);
- `SecurityHeaders`: `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, a
  no-referrer policy, and `Strict-Transport-Security` when configured.

Settings exist only once the lifespan built the container, so each middleware reads them on
its first request.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import bearer_key
from api.problems import problem_response
from application import audit, tenant_scope
from infrastructure.postgres.rate_limits import Check, PostgresRateLimiter

log = logging.getLogger(__name__)

# Probes are not rate-limited: an orchestrator polling them must never be refused.
_UNLIMITED_PREFIXES = ("/health", "/metrics")


def _settings(scope: Scope) -> Any:
    app = scope.get("app")
    container = getattr(getattr(app, "state", None), "container", None)
    return getattr(container, "settings", None)


def client_ip(scope: Scope, trust_forwarded_for: bool = False) -> str:
    """The client's address: the socket's, or X-Forwarded-For's first when trusted."""
    if trust_forwarded_for:
        forwarded = Headers(scope=scope).get("x-forwarded-for")
        if forwarded and forwarded.split(",")[0].strip():
            return forwarded.split(",")[0].strip()
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class TenantScope:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trust = bool(getattr(_settings(scope), "trust_forwarded_for", False))
        user_agent = Headers(scope=scope).get("user-agent")
        # The actor is filled in by `api.auth.authorize` once the caller is known.
        with (
            tenant_scope.request_scope(),
            audit.acting_as("anonymous", client_ip(scope, trust), user_agent),
        ):
            await self.app(scope, receive, send)


class RateLimit:
    """Refuse a client over its per-key or per-IP budget with 429 and Retry-After."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.shared: PostgresRateLimiter | None = None
        self._configured: tuple[Any, Any, bool] | None = None

    def _limits(self, scope: Scope) -> tuple[Any, Any, bool]:
        if self._configured is None:
            settings = _settings(scope)
            per_key = getattr(settings, "rate_limit_per_key", "")
            per_ip = getattr(settings, "rate_limit_per_ip", "")
            if getattr(settings, "rate_limit_storage", "memory") == "postgres":
                container = scope["app"].state.container
                self.shared = PostgresRateLimiter(container.core.datastore)
            self._configured = (
                parse(per_key) if per_key else None,
                parse(per_ip) if per_ip else None,
                bool(getattr(settings, "trust_forwarded_for", False)),
            )
        return self._configured

    async def _refused(self, checks: list[tuple[Any, str, str]]) -> tuple[Any, str, int] | None:
        """The first limit the request is over, its kind and seconds to wait; or None."""
        if self.shared is None:
            for limit, kind, identity in checks:
                if not self.limiter.hit(limit, kind, identity):
                    reset_at, _ = self.limiter.get_window_stats(limit, kind, identity)
                    return limit, kind, max(1, math.ceil(reset_at - time.time()))
            return None
        counted = [
            Check(
                f"{kind}:{identity}:{limit.amount}/{limit.get_expiry()}",
                limit.amount,
                limit.get_expiry(),
            )
            for limit, kind, identity in checks
        ]
        try:
            verdicts = await run_in_threadpool(self.shared.hit, counted)
        except Exception:  # the database is unreachable: the request fails there anyway
            log.warning("rate limit counters unavailable: request let through", exc_info=True)
            return None
        for (limit, kind, _), verdict in zip(checks, verdicts, strict=True):
            if not verdict.allowed:
                return limit, kind, max(1, math.ceil(verdict.retry_after))
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(_UNLIMITED_PREFIXES):
            await self.app(scope, receive, send)
            return
        per_key, per_ip, trust = self._limits(scope)
        checks: list[tuple[Any, str, str]] = []
        key = bearer_key(Headers(scope=scope).get("authorization"))
        if per_key is not None and key is not None:
            # A digest, not the key itself, is what the limiter's memory holds.
            digest = hashlib.sha256(key.encode()).hexdigest()[:32]
            checks.append((per_key, "key", digest))
        if per_ip is not None:
            checks.append((per_ip, "ip", client_ip(scope, trust)))
        refused = await self._refused(checks)
        if refused is not None:
            limit, kind, retry_after = refused
            response = problem_response(
                path,
                429,
                "rate-limited",
                f"too many requests for this {'API key' if kind == 'key' else 'client'}"
                f" (at most {limit}); retry after {retry_after} s",
                headers={"Retry-After": str(retry_after)},
                limit=str(limit),
                retry_after=retry_after,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class RequestTimeout:
    """503 when no response has started within `request_timeout` seconds."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        timeout = float(getattr(_settings(scope), "request_timeout", 0) or 0)
        if scope["type"] != "http" or timeout <= 0:
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        request = asyncio.current_task()
        started = False
        # Set at the timeout: the task that answers 503. The request runs in this task (no
        # task of its own per request: that was ~0.1 ms of CPU on every request), so the
        # answer goes out from another one, at once, whether or not the app lets the
        # cancellation through: a sync endpoint's thread cannot be cancelled (anyio stops
        # waiting for it and it runs on), and code under a shielded await would hold the
        # cancellation until it is done. The 503 waits for neither.
        answering: asyncio.Task[None] | None = None

        def expire() -> None:
            nonlocal answering
            if started:
                return  # a response (a stream) is under way: let it run
            answering = loop.create_task(_timed_out(scope, receive, send, timeout))
            if request is not None:
                request.cancel()  # an async endpoint stops here; a thread runs to its end

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if answering is not None:
                return  # the client has (or is being sent) its 503
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        timer = loop.call_later(timeout, expire)
        try:
            await self.app(scope, receive, tracking_send)
        except asyncio.CancelledError:
            if answering is None:
                raise  # cancelled from outside (the client went away, shutdown)
        finally:
            timer.cancel()
        if answering is not None:
            # Ours, whether the app let the CancelledError through or swallowed it.
            if request is not None and request.cancelling():
                request.uncancel()
            await answering


async def _timed_out(scope: Scope, receive: Receive, send: Send, timeout: float) -> None:
    response = problem_response(
        scope.get("path", ""),
        503,
        "request-timeout",
        f"no response within {timeout:g} s; the outcome of a write is unknown: retry it "
        "with the same Idempotency-Key",
        headers={"Retry-After": "1", "Connection": "close"},
    )
    await response(scope, receive, send)


class Cors:
    """Starlette's CORS middleware for `cors_origins`, or nothing when that is empty."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._inner: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            # The lifespan passes here before the settings exist: decide on a request.
            await self.app(scope, receive, send)
            return
        if self._inner is None:
            origins = [
                o.strip()
                for o in str(getattr(_settings(scope), "cors_origins", "") or "").split(",")
                if o.strip()
            ]
            self._inner = (
                CORSMiddleware(
                    self.app,
                    allow_origins=origins,
                    allow_methods=["GET", "POST", "HEAD", "OPTIONS"],
                    allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
                    expose_headers=["Retry-After", "Location"],
                )
                if origins
                else self.app
            )
        await self._inner(scope, receive, send)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hsts = int(getattr(_settings(scope), "hsts_max_age", 0) or 0)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in _headers(hsts):
                    if name not in present:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _headers(hsts: int) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
    ]
    if hsts > 0:
        headers.append((b"strict-transport-security", f"max-age={hsts}".encode()))
    return headers


def install(app: FastAPI) -> None:
    """Add the middleware, innermost first (the last added runs first)."""
    layers: list[Callable[..., Any]] = [TenantScope, RequestTimeout, RateLimit, Cors]
    for layer in layers:
        app.add_middleware(layer)
    app.add_middleware(SecurityHeaders)
