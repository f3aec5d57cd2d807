"""`RequestTimeout` (api/security.py): 503 when no response started in time; a started
stream runs on; a fast answer passes untouched."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace

import httpx
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


def app(timeout: float) -> Starlette:
    built = Starlette(routes=[Route("/slow", slow), Route("/fast", fast), Route("/stream", stream)])
    built.add_middleware(RequestTimeout)
    built.state.container = SimpleNamespace(settings=SimpleNamespace(request_timeout=timeout))
    return built


async def get(timeout: float, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app(timeout))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


def test_a_request_without_a_response_in_time_is_answered_503_request_timeout() -> None:
    response = asyncio.run(get(TIMEOUT, "/slow"))
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
