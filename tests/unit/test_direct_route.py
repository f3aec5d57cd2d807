"""`DirectRoute` (api/direct_route.py) answers every request exactly as FastAPI's own handler
for the same route does, takes the direct path for a well-formed request (FastAPI's
dependency resolution is not called), and refuses, when the route is built, a parameter of
a kind it does not read."""

from __future__ import annotations

import contextvars
import threading
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Query
from fastapi import routing as fastapi_routing
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from api.auth import PUBLIC, ContainerDep, Operator
from api.direct_route import DirectRoute
from tests.api_stub import AsgiClient, stub_app

KeyHeader = Annotated[str | None, Header(alias="Idempotency-Key")]
SignatureHeader = Annotated[str | None, Header(alias="Waymark-Signature")]


class Order(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    count: int = 0


def start_like(
    body: Order, principal: Operator, container: ContainerDep, key: KeyHeader = None
) -> JSONResponse:
    """A plain `def` with a body model, a role, the container and a header (the start)."""
    return JSONResponse(
        {
            "order": body.model_dump(),
            "tenant": principal.tenant,
            "key": key,
            "container": type(container).__name__,
        },
        status_code=201,
    )


async def callback_like(
    token: str, request: Request, container: ContainerDep, signature: SignatureHeader = None
) -> JSONResponse:
    """An `async def` with a path parameter, the Request and a header (the callback)."""
    return JSONResponse(
        {"token": token, "signature": signature, "body": (await request.body()).decode()}
    )


def _app(route_class: type | None) -> FastAPI:
    router = APIRouter(prefix="/t")
    extra: dict[str, Any] = {} if route_class is None else {"route_class_override": route_class}
    router.add_api_route("/orders", start_like, methods=["POST"], **extra)
    router.add_api_route(
        "/callbacks/{token}", callback_like, methods=["POST"], dependencies=[PUBLIC], **extra
    )
    app = stub_app()
    app.include_router(router)
    return app


OPERATOR = {"Authorization": "Bearer k-operator"}
JSON = {"Content-Type": "application/json"}
REQUESTS: list[tuple[str, str, dict[str, str], bytes]] = [
    ("POST", "/t/orders", {**OPERATOR, **JSON}, b'{"name": "a", "count": 2}'),
    ("POST", "/t/orders", {**OPERATOR, **JSON, "Idempotency-Key": "k1"}, b'{"name": "a"}'),
    (
        "POST",
        "/t/orders",
        {**OPERATOR, "Content-Type": "application/json; charset=utf-8"},
        b'{"name": "a"}',
    ),
    ("POST", "/t/orders", JSON, b'{"name": "a"}'),  # no key: 401
    ("POST", "/t/orders", {"Authorization": "Bearer nope", **JSON}, b'{"name": "a"}'),
    ("POST", "/t/orders", {"Authorization": "Bearer k-viewer", **JSON}, b'{"name": "a"}'),
    ("POST", "/t/orders", {**OPERATOR, **JSON}, b'{"name": "a"'),  # not JSON
    ("POST", "/t/orders", {**OPERATOR, **JSON}, b"[1, 2]"),
    ("POST", "/t/orders", {**OPERATOR, **JSON}, b"{}"),  # a required field missing
    ("POST", "/t/orders", {**OPERATOR, **JSON}, b'{"name": ""}'),
    ("POST", "/t/orders", {**OPERATOR, **JSON}, b'{"name": "a", "count": "x"}'),
    ("POST", "/t/orders", {**OPERATOR, **JSON}, b'{"name": "a", "extra": 1}'),
    ("POST", "/t/orders", {**OPERATOR, **JSON}, b""),  # no body
    ("POST", "/t/orders", {**OPERATOR, "Content-Type": "text/plain"}, b'{"name": "a"}'),
    ("POST", "/t/orders", OPERATOR, b'{"name": "a"}'),  # no content type
    (
        "POST",
        "/t/orders",
        {**OPERATOR, "Content-Type": "application/merge-patch+json"},
        b'{"name": "a"}',
    ),
    ("GET", "/t/orders", OPERATOR, b""),  # 405
    ("POST", "/t/callbacks/tok-1", {**JSON, "Waymark-Signature": "t=1,v1=ab"}, b'{"ok":1}'),
    ("POST", "/t/callbacks/tok%2F2", {}, b""),
    ("POST", "/t/callbacks/a b", {"waymark-signature": "lower"}, b"raw"),
]


def _answer(client: AsgiClient, method: str, path: str, headers: dict[str, str], body: bytes):
    response = client.request(method, path, headers=headers, content=body)
    return response.status_code, response.headers.get("content-type"), response.content


def test_a_direct_route_answers_every_request_as_fastapi_does() -> None:
    standard, direct = AsgiClient(_app(None)), AsgiClient(_app(DirectRoute))
    statuses = set()
    for method, path, headers, body in REQUESTS:
        expected = _answer(standard, method, path, headers, body)
        assert _answer(direct, method, path, headers, body) == expected, (method, path, body)
        statuses.add(expected[0])
    # The battery reaches the success and every error answer it means to compare.
    assert {200, 201, 400, 401, 403, 405, 422} <= statuses


@pytest.mark.parametrize(
    ("headers", "body", "resolved"),
    [
        ({**OPERATOR, **JSON}, b'{"name": "a"}', 0),  # well-formed: the direct path
        ({**OPERATOR, **JSON}, b"{}", 1),  # does not validate: FastAPI's handler
        ({**OPERATOR, "Content-Type": "text/plain"}, b'{"name": "a"}', 1),
    ],
)
def test_a_well_formed_request_skips_fastapis_dependency_resolution(
    monkeypatch: pytest.MonkeyPatch, headers: dict[str, str], body: bytes, resolved: int
) -> None:
    calls = []
    solve = fastapi_routing.solve_dependencies

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return await solve(*args, **kwargs)

    monkeypatch.setattr(fastapi_routing, "solve_dependencies", counting)
    direct, standard = AsgiClient(_app(DirectRoute)), AsgiClient(_app(None))
    direct.request("POST", "/t/orders", headers=headers, content=body)
    assert len(calls) == resolved
    # Negative control: the same request through FastAPI's handler resolves once.
    standard.request("POST", "/t/orders", headers=headers, content=body)
    assert len(calls) == resolved + 1


REQUEST_VALUE: contextvars.ContextVar[str] = contextvars.ContextVar("request_value")


def where_it_runs(principal: Operator) -> JSONResponse:
    return JSONResponse(
        {"value": REQUEST_VALUE.get("unset"), "thread": threading.current_thread().name}
    )


def test_a_plain_def_endpoint_runs_on_an_endpoint_thread_in_the_requests_context() -> None:
    router = APIRouter()
    router.add_api_route("/where", where_it_runs, route_class_override=DirectRoute)
    app = stub_app()
    app.include_router(router)

    async def setting_a_context_variable(scope: Any, receive: Any, send: Any) -> None:
        token = REQUEST_VALUE.set("set by the request")  # as TenantScope, tracing do
        try:
            await app(scope, receive, send)
        finally:
            REQUEST_VALUE.reset(token)

    answer = AsgiClient(setting_a_context_variable).request(  # type: ignore[arg-type]
        "GET", "/where", headers=OPERATOR
    )
    assert answer.status_code == 200
    assert answer.json()["value"] == "set by the request"
    assert answer.json()["thread"].startswith("waymark-endpoint")


def _query(limit: int = Query(5)) -> JSONResponse:
    return JSONResponse({})


def _int_path(number: int) -> JSONResponse:
    return JSONResponse({})


def _custom_dependency(value: Annotated[str, Depends(lambda: "x")]) -> JSONResponse:
    return JSONResponse({})


class Left(BaseModel):
    a: int


class Right(BaseModel):
    b: int


def _two_bodies(left: Left, right: Right) -> JSONResponse:
    return JSONResponse({})


@pytest.mark.parametrize(
    ("path", "endpoint", "complaint"),
    [
        ("/q", _query, "only path, header and body parameters"),
        ("/n/{number}", _int_path, "is not a str"),
        ("/d", _custom_dependency, "needs FastAPI to resolve it"),
        ("/b", _two_bodies, "not one pydantic model"),
    ],
)
def test_a_parameter_it_does_not_read_is_refused_when_the_route_is_built(
    path: str, endpoint: Any, complaint: str
) -> None:
    router = APIRouter()
    with pytest.raises(TypeError, match=complaint):
        router.add_api_route(path, endpoint, methods=["POST"], route_class_override=DirectRoute)
