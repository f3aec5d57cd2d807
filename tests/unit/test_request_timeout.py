"""`RequestTimeout` (api/security.py): 503 when no response started in time; a started
stream runs on; a fast answer passes untouched; behind a real server (uvicorn), the 503 of a
plain `def` endpoint, whose thread cannot be cancelled, is sent at the timeout, not when the
thread ends."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from api.security import RequestTimeout

TIMEOUT = 0.2


async def slow(request: Request) -> Response:
    await asyncio.sleep(TIMEOUT * 10)
    return JSONResponse({"late": True})


async def fast(request: Request) -> Response:
    return JSONResponse({"fast": True})


async def stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for n in range(3):
            yield f"{n}\n".encode()
            await asyncio.sleep(TIMEOUT)

    return StreamingResponse(chunks(), media_type="text/plain")


THREAD_SECONDS = TIMEOUT * 10
finished: list[float] = []  # when each blocking endpoint's thread ended (monotonic)


def blocking(request: Request) -> Response:
    """A plain `def`: Starlette runs it in the threadpool, where it cannot be cancelled."""
    time.sleep(THREAD_SECONDS)
    finished.append(time.monotonic())
    return JSONResponse({"late": True})


def app(timeout: float) -> Starlette:
    built = Starlette(
        routes=[
            Route("/slow", slow),
            Route("/fast", fast),
            Route("/stream", stream),
            Route("/blocking", blocking),
        ]
    )
    built.add_middleware(RequestTimeout)
    built.state.container = SimpleNamespace(settings=SimpleNamespace(request_timeout=timeout))
    return built


async def get(timeout: float, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app(timeout))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


def test_a_request_without_a_response_in_time_is_answered_503_request_timeout() -> None:
    began = time.monotonic()
    response = asyncio.run(get(TIMEOUT, "/slow"))
    # The async endpoint was stopped at the timeout, not left to sleep its 2 s out (the
    # ASGI call, which this transport waits for, ended then).
    assert time.monotonic() - began < TIMEOUT * 5
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/request-timeout")
    assert response.headers["retry-after"] == "1"


def test_no_timeout_configured_lets_it_finish_and_fast_answers_pass() -> None:
    assert asyncio.run(get(0, "/slow")).json() == {"late": True}
    assert asyncio.run(get(TIMEOUT, "/fast")).json() == {"fast": True}


def test_a_started_stream_outlives_the_timeout() -> None:
    response = asyncio.run(get(TIMEOUT, "/stream"))
    assert response.status_code == 200
    assert response.text == "0\n1\n2\n"


@pytest.fixture
def served() -> Iterator[str]:
    """The app behind a real uvicorn server on a free port, in a thread."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app(TIMEOUT), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=THREAD_SECONDS + 5)


def test_the_503_of_a_blocking_endpoint_is_sent_at_the_timeout_not_when_its_thread_ends(
    served: str,
) -> None:
    finished.clear()
    started = time.monotonic()
    response = httpx.get(f"{served}/blocking", timeout=THREAD_SECONDS * 2)
    answered = time.monotonic()
    assert response.status_code == 503
    assert response.json()["type"].endswith("/request-timeout")
    assert answered - started < THREAD_SECONDS / 2  # at the timeout, well before the thread
    assert finished == []  # the thread was still sleeping when the client had its answer
