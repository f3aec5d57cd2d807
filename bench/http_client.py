"""A lean HTTP/1.1 keep-alive client for the load generators: asyncio protocols and the
`httptools` response parser (the C parser uvicorn uses), nothing else.

Why not aiohttp: on this 2-core machine the generator's CPU is taken from the server it
measures. With aiohttp the open-loop generator took 17-19 % of a core at 500 req/s
(~0.38 ms a request: the connector, the request and response objects, the cookie jar, the
URL handling); with this client, where a request is one `bytes` written and one parser fed,
9-11 % (~0.2 ms, the rest being the generator's own scheduling, signing and JSON;
docs/performance.md). The
generators send only requests they build themselves to a server they started, so what a
general client adds (redirects, cookies, proxies, TLS, compression) is not needed.

`Pool(host, port, limit)`: up to `limit` keep-alive connections; `await pool.request(raw)`
sends the whole request (`build()` makes one) on an idle connection, or a new one while
under the limit, or waits for one, and returns `(status, body)`. A connection idle for
IDLE_SECONDS is dropped before it is reused: uvicorn closes idle keep-alive connections
after 5 s, and a request sent on a connection the server is just closing would fail.
"""

from __future__ import annotations

import asyncio
import collections
import time

import httptools

IDLE_SECONDS = 3.0


class ConnectionClosedError(ConnectionError):
    """The server closed the connection before the response was complete."""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []
        self.closed = False
        self.idle_since = time.monotonic()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionClosedError("the server closed the connection"))

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        body, self.body = b"".join(self.body), []
        if not self.parser.should_keep_alive():
            self.close()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((status, body))

    def _fail(self, exc: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def send(self, raw: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None and self.waiter is None  # noqa: S101
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Keep-alive connections to one server, at most `limit` at a time."""

    def __init__(self, host: str, port: int, limit: int) -> None:
        self.host, self.port, self.limit = host, port, limit
        self.idle: collections.deque[_Connection] = collections.deque()
        self.open = 0  # connections in use or idle
        self.waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        conn = await self._acquire()
        try:
            result = await conn.send(raw)
        except BaseException:
            conn.close()  # a cancelled or failed request leaves the connection unusable
            raise
        finally:
            self._release(conn)
        return result

    async def _acquire(self) -> _Connection:
        while True:
            now = time.monotonic()
            while self.idle:
                conn = self.idle.pop()  # the most recently used first
                if conn.closed or now - conn.idle_since > IDLE_SECONDS:
                    conn.close()
                    self.open -= 1
                    continue
                return conn
            if self.open < self.limit:
                self.open += 1
                try:
                    _, conn = await asyncio.get_running_loop().create_connection(
                        _Connection, self.host, self.port
                    )
                except BaseException:
                    self.open -= 1
                    raise
                return conn
            waiter = asyncio.get_running_loop().create_future()
            self.waiting.append(waiter)
            await waiter

    def _release(self, conn: _Connection) -> None:
        if conn.closed:
            self.open -= 1
        else:
            conn.idle_since = time.monotonic()
            self.idle.append(conn)
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


def build(method: str, path: str, host: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """The bytes of one HTTP/1.1 request (keep-alive, `Content-Length` set)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
