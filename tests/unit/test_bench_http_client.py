"""bench/http_client.py (the load generators' HTTP client) against a stub HTTP/1.1 server:
keep-alive reuse within the connection limit, a server that closes, and a dropped answer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.http_client import ConnectionClosedError, Pool, build


class _Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless told otherwise
    peers: set[int] = set()

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        _Stub.peers.add(self.client_address[1])
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/drop":
            self.close_connection = True  # no answer at all
            return
        self.send_response(201)
        self.send_header("Content-Length", str(len(body)))
        if self.path == "/close":
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[tuple[str, int]]:
    _Stub.peers = set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1", server.server_address[1]
    server.shutdown()
    server.server_close()


def _post(host: str, port: int, path: str, body: bytes) -> bytes:
    return build("POST", path, f"{host}:{port}", {"Content-Type": "application/json"}, body)


def test_requests_reuse_at_most_limit_connections(stub: tuple[str, int]) -> None:
    host, port = stub

    async def run() -> list[tuple[int, bytes]]:
        pool = Pool(host, port, limit=2)
        try:
            return await asyncio.gather(
                *(pool.request(_post(host, port, "/echo", b'{"n":%d}' % i)) for i in range(20))
            )
        finally:
            pool.close()

    answers = asyncio.run(run())
    assert answers == [(201, b'{"n":%d}' % i) for i in range(20)]
    assert 1 <= len(_Stub.peers) <= 2  # twenty requests, at most two connections


def test_a_closing_server_and_a_dropped_answer(stub: tuple[str, int]) -> None:
    host, port = stub

    async def run() -> None:
        pool = Pool(host, port, limit=1)
        try:
            assert await pool.request(_post(host, port, "/close", b"a")) == (201, b"a")
            # The server closed that connection: the next request gets a new one.
            assert await pool.request(_post(host, port, "/echo", b"b")) == (201, b"b")
            with pytest.raises(ConnectionClosedError):
                await pool.request(_post(host, port, "/drop", b"c"))
            assert await pool.request(_post(host, port, "/echo", b"d")) == (201, b"d")
            assert pool.open == 1
        finally:
            pool.close()

    asyncio.run(run())
    assert len(_Stub.peers) == 3  # /close's, then the one /drop lost, then a fresh one
