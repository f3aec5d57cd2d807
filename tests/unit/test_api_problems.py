"""The API's pure pieces: problem mapping, JSON paths, bearer-key auth, the body limit.

A tiny FastAPI app with routes that raise each error stands in for the real routes: no
database is involved, and nothing is mocked. Requests go through httpx's ASGI transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from uuid import UUID

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from api import problems
from api.auth import authorize, bearer_key, find_principal, may
from api.limits import BodySizeLimit
from api.schemas import StartInstanceRequest
from application.errors import (
    CallbackNotFoundError,
    CommandConflictError,
    DefinitionDisabledError,
    DefinitionNotFoundError,
    InstanceNotFoundError,
    InvalidDataError,
    InvalidDefinitionError,
    SignatureError,
    TaskNotFoundError,
)
from domain.errors import (
    BookmarkNotFoundError,
    BookmarkNotOpenError,
    InstanceNotActiveError,
    InvalidOutcomeError,
    WrongBookmarkKindError,
)
from domain.state import Bookmark, BookmarkKind, BookmarkStatus
from domain.validation import Problem
from infrastructure.container import Principal

INSTANCE = UUID("00000000-0000-4000-8000-000000000001")
BOOKMARK = Bookmark(
    id="b1",
    node_id="wait",
    node_type="wait",
    kind=BookmarkKind.WAIT,
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
    status=BookmarkStatus.CONSUMED,
    token="t",
)

ERRORS = [
    (
        InvalidDefinitionError([Problem("$.nodes[0].type", "unknown_node_type", "bad")]),
        422,
        "invalid-definition",
    ),
    (DefinitionNotFoundError("po", 2), 404, "not-found"),
    (InstanceNotFoundError(INSTANCE), 404, "not-found"),
    (TaskNotFoundError("t1"), 404, "not-found"),
    (BookmarkNotFoundError(INSTANCE, "b1"), 404, "not-found"),
    (CallbackNotFoundError(), 404, "not-found"),
    (DefinitionDisabledError("po"), 409, "definition-disabled"),
    (InvalidDataError("input", [("$.amount", "'x' is not a number")]), 422, "invalid-data"),
    (BookmarkNotOpenError(BOOKMARK), 409, "bookmark-not-open"),
    (InstanceNotActiveError(INSTANCE, "completed"), 409, "instance-not-active"),
    (WrongBookmarkKindError("b1", "timer", "task"), 409, "wrong-bookmark-kind"),
    (InvalidOutcomeError("b1", "maybe", ["approved", "rejected"]), 422, "invalid-outcome"),
    (CommandConflictError([INSTANCE]), 503, "concurrency-conflict"),
    (SignatureError("the signature does not match"), 401, "invalid-signature"),
]


class AsgiClient:
    """A synchronous face on httpx.AsyncClient + ASGITransport (no lifespan, no server)."""

    def __init__(self, app: FastAPI):
        self.app = app

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(send())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def app_raising(error: BaseException | None = None) -> FastAPI:
    app = FastAPI()
    problems.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=lambda: 100)
    app.add_middleware(problems.UnhandledErrors)
    app.state.container = SimpleNamespace(
        api_keys={
            "k-admin": Principal("admin-key", "acme", frozenset({"admin"})),
            "k-viewer": Principal("viewer-key", "acme", frozenset({"viewer"})),
        }
    )

    @app.get("/boom")
    def boom() -> None:
        assert error is not None
        raise error

    @app.post("/start")
    def start_instance(body: StartInstanceRequest) -> dict:
        return body.model_dump()

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        return {"size": len(await request.body())}

    @app.api_route("/private", methods=["GET", "POST"])
    def private(principal: Principal = Depends(authorize)) -> dict:
        return {"tenant": principal.tenant}

    return app


@pytest.mark.parametrize(("error", "status", "slug"), ERRORS, ids=lambda v: str(v)[:30])
def test_every_error_maps_to_a_stable_problem(error: Exception, status: int, slug: str) -> None:
    response = AsgiClient(app_raising(error)).get("/boom")

    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == f"https://waymark.dev/problems/{slug}"
    assert (body["status"], body["instance"], body["detail"]) == (status, "/boom", str(error))
    assert body["title"]


def _subclasses(base: type) -> list[type]:
    found = []
    for cls in base.__subclasses__():
        found += [cls, *_subclasses(cls)]
    return found


def test_every_coded_error_has_a_row_in_the_one_table() -> None:
    import application.errors
    import domain.errors
    import domain.values

    errors = _subclasses(application.errors.WaymarkError) + _subclasses(domain.errors.WorkflowError)
    assert domain.values.UnstorableValueError in errors
    missing = {cls.__name__: cls.code for cls in errors if cls.code not in problems.KINDS}
    assert missing == {}


def test_problem_extras() -> None:
    def extras(error: Exception) -> dict:
        body = AsgiClient(app_raising(error)).get("/boom").json()
        return {k: v for k, v in body.items() if k not in problems_core}

    problems_core = {"type", "title", "status", "detail", "instance"}
    assert extras(ERRORS[0][0]) == {
        "errors": [{"path": "$.nodes[0].type", "code": "unknown_node_type", "message": "bad"}]
    }
    assert extras(ERRORS[7][0]) == {
        "errors": [
            {"path": "$.amount", "code": "schema_violation", "message": "'x' is not a number"}
        ]
    }
    assert extras(ERRORS[8][0])["bookmark"]["status"] == "consumed"
    assert extras(ERRORS[11][0]) == {"allowed": ["approved", "rejected"]}
    assert extras(ERRORS[12][0]) == {"instance_ids": [str(INSTANCE)], "retryable": True}


def test_a_lost_race_is_a_retryable_503_not_the_409_of_a_consumed_bookmark() -> None:
    response = AsgiClient(app_raising(CommandConflictError([INSTANCE]))).get("/boom")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["type"].endswith("/concurrency-conflict")


def test_an_unexpected_error_is_a_bare_500(caplog: pytest.LogCaptureFixture) -> None:
    client = AsgiClient(app_raising(RuntimeError("secret connection string")))

    response = client.get("/boom")

    assert response.status_code == 500
    body = response.json()
    assert body["type"] == "https://waymark.dev/problems/internal-error"
    assert "secret" not in response.text and "Traceback" not in response.text
    assert any(r.exc_info and "secret" in str(r.exc_info[1]) for r in caplog.records)


def test_request_validation_paths() -> None:
    client = AsgiClient(app_raising())

    response = client.post("/start", json={"definition": "po", "input": [], "tenant": "x"})

    assert response.status_code == 422
    body = response.json()
    assert body["type"] == "https://waymark.dev/problems/invalid-request"
    assert {(e["path"], e["code"]) for e in body["errors"]} == {
        ("$.input", "dict_type"),
        ("$.tenant", "extra_forbidden"),
    }
    broken = client.post("/start", content=b"{", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400
    assert broken.json()["type"].endswith("/invalid-json")
    assert client.get("/nowhere").json()["type"].endswith("/not-found")


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        (("body", "input", "amount"), "$.input.amount"),
        (("body", "items", 0, "name"), "$.items[0].name"),
        (("body",), "$"),
        (("body", "odd key"), '$["odd key"]'),
        (("query", "limit"), "query.limit"),
        ((), "$"),
    ],
)
def test_json_path(loc: tuple, path: str) -> None:
    assert problems.json_path(loc) == path


def test_bearer_key_parsing() -> None:
    assert bearer_key("Bearer k-1") == "k-1"
    assert bearer_key("bearer   k-1 ") == "k-1"
    assert bearer_key("Basic dXNlcg==") is None
    assert bearer_key("Bearer") is None
    assert bearer_key(None) is None


def test_roles() -> None:
    keys = {"a": Principal("a", "acme", frozenset({"admin"}))}
    assert find_principal(keys, "a") is keys["a"]
    assert find_principal(keys, "b") is None
    viewer = Principal("v", "acme", frozenset({"viewer"}))
    operator = Principal("o", "acme", frozenset({"operator"}))
    assert may(viewer, "GET") and not may(viewer, "POST")
    assert may(operator, "GET") and may(operator, "DELETE")
    assert not may(Principal("n", "acme", frozenset({"auditor"})), "GET")


def test_auth_dependency() -> None:
    client = AsgiClient(app_raising())

    missing = client.get("/private")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json()["type"].endswith("/unauthorized")
    assert client.get("/private", headers={"Authorization": "Bearer nope"}).status_code == 401
    admin = {"Authorization": "Bearer k-admin"}
    assert client.post("/private", headers=admin).json() == {"tenant": "acme"}
    viewer = {"Authorization": "Bearer k-viewer"}
    assert client.get("/private", headers=viewer).status_code == 200
    refused = client.post("/private", headers=viewer)
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("/forbidden")


def test_body_limit_by_declared_length_and_by_counting() -> None:
    client = AsgiClient(app_raising())

    assert client.post("/echo", content=b"x" * 100).json() == {"size": 100}
    declared = client.post("/echo", content=b"x" * 101)
    assert declared.status_code == 413
    assert declared.json()["type"].endswith("/payload-too-large")
    streamed = client.post("/echo", content=chunks(b"x" * 60, b"x" * 60))
    assert streamed.status_code == 413
    assert streamed.json()["instance"] == "/echo"


def test_access_log_redacts_callback_tokens() -> None:
    import logging

    from infrastructure.telemetry import RedactCallbackTokens

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "POST", "/v1/callbacks/s3cr3t-token?x=1", "1.1", 200),
        None,
    )
    assert RedactCallbackTokens().filter(record)
    assert record.getMessage() == '127.0.0.1:1 - "POST /v1/callbacks/<redacted>?x=1 HTTP/1.1" 200'


def test_a_failing_worker_degrades_health_but_not_readiness() -> None:
    from api.routes.health import worker_status

    class Runner:
        def __init__(self, name: str, failures: int) -> None:
            self.name, self.consecutive_failures = name, failures

        def seconds_since_tick(self) -> float | None:
            return 1.5 if not self.consecutive_failures else None

    status = worker_status([Runner("task-worker", 0), Runner("timer-worker", 3)])
    assert status["task-worker"] == {
        "status": "up",
        "consecutive_failures": 0,
        "seconds_since_tick": 1.5,
    }
    assert status["timer-worker"]["status"] == "failing"
