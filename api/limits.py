"""Request-body size limit, as pure ASGI middleware (no buffering, works for streamed bodies).

A declared `Content-Length` over the limit is refused before the app runs. Bodies without
one (chunked uploads) are counted as they are received: the read that crosses the limit
raises `PayloadTooLargeError`, which the problem handlers (or, if it escapes them, this
middleware) turn into a 413 problem.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import ProblemError, problem_response


class PayloadTooLargeError(ProblemError):
    def __init__(self, limit: int):
        super().__init__(
            413,
            "payload-too-large",
            f"the request body is larger than {limit} bytes",
            max_body_bytes=limit,
        )


class BodySizeLimit:
    """Refuse request bodies over `max_bytes()` bytes with 413."""

    def __init__(self, app: ASGIApp, max_bytes: Callable[[], int]):
        self.app = app
        # A callable: the limit comes from Settings, which exist only once the lifespan ran.
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes()
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(scope, receive, send, limit)
            return

        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLargeError(limit)
            return message

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except PayloadTooLargeError:
            if started:
                raise
            await _too_large(scope, receive, send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    error = PayloadTooLargeError(limit)
    response = problem_response(
        scope.get("path", ""),
        error.status_code,
        error.slug,
        str(error.detail),
        # The rest of the body is not read: the client must not reuse the connection.
        headers={"Connection": "close"},
        **error.extras,
    )
    await response(scope, receive, send)
