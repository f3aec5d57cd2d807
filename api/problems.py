"""RFC 9457 problem details: the one place where errors become HTTP responses.

Every error leaving the API is `application/problem+json` with a stable `type` URI
(`https://waymark.dev/problems/<slug>`), a `title`, the `status`, a human `detail` and the
request path as `instance`, plus per-type extras (`errors`, `allowed`, `bookmark`, ...).
Domain and application errors never know about HTTP: they are mapped here, by their `code`.
An unexpected exception is logged with its traceback and answered with a bare 500: the
client never sees a stack trace.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from application.errors import WaymarkError
from application.views import bookmark_view, jsonable
from domain.errors import WorkflowError

logger = logging.getLogger(__name__)

TYPE_BASE = "https://waymark.dev/problems/"
MEDIA_TYPE = "application/problem+json"
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_TITLES = {"invalid-json": "Invalid JSON"}  # otherwise the slug, capitalised


def title_of(slug: str) -> str:
    return _TITLES.get(slug) or slug.replace("-", " ").capitalize()


class ProblemError(HTTPException):
    """A problem raised by the API layer itself (authentication, limits, malformed ids).

    It is an HTTPException so that FastAPI re-raises it untouched when it happens while the
    request body is being read (the body-size limit).
    """

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extras: Any,
    ):
        super().__init__(status_code=status, detail=detail, headers=dict(headers or {}))
        self.slug = slug
        self.extras = extras


def problem_response(
    path: str,
    status: int,
    slug: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extras: Any,
) -> JSONResponse:
    """The problem+json response; `path` (the request's) becomes the `instance` member."""
    body = {
        "type": TYPE_BASE + slug,
        "title": title_of(slug),
        "status": status,
        "detail": detail,
        "instance": path,
        **jsonable(extras),
    }
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=MEDIA_TYPE
    )


# --- application and domain errors ----------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    status: int
    extras: Callable[[Any], dict[str, Any]] = lambda exc: {}
    headers: Mapping[str, str] | None = None


# The one table: an error's stable `code` (application.errors, domain.errors) is the problem
# type's slug; the row gives its status and the extra members read from the error.
KINDS: dict[str, _Kind] = {
    "not-found": _Kind(404),
    "invalid-definition": _Kind(422, lambda exc: {"errors": [p.as_dict() for p in exc.problems]}),
    "definition-disabled": _Kind(409, lambda e: {"definition": e.name}),
    "definition-exists": _Kind(409, lambda e: {"definition": e.name, "version": e.version}),
    "invalid-data": _Kind(
        422,
        lambda e: {
            "errors": [{"path": p, "code": "schema_violation", "message": m} for p, m in e.errors]
        },
    ),
    "bookmark-not-open": _Kind(409, lambda e: {"bookmark": bookmark_view(e.bookmark)}),
    "instance-not-active": _Kind(
        409, lambda e: {"instance_id": str(e.instance_id), "instance_status": e.status}
    ),
    "not-recoverable": _Kind(
        409, lambda e: {"instance_id": str(e.instance_id), "instance_status": e.status}
    ),
    "wrong-bookmark-kind": _Kind(409, lambda e: {"bookmark_id": e.bookmark_id, "kind": e.kind}),
    "invalid-outcome": _Kind(422, lambda e: {"allowed": list(e.allowed)}),
    # A for_each over WAYMARK_FOR_EACH_MAX_ITEMS reached by the request: refused, not stored.
    "for-each-too-large": _Kind(
        422,
        lambda e: {
            "node_id": e.node_id,
            "items": e.items,
            "limit": e.limit,
            "errors": [{"path": e.path, "code": "too_many_items", "message": str(e)}],
        },
    ),
    # Transient (nothing was decided; repeat the request as it is): never the 409 of a
    # consumed bookmark, which a sender may rightly read as "already done".
    "concurrency-conflict": _Kind(
        503,
        lambda e: {"instance_ids": [str(i) for i in e.instance_ids], "retryable": True},
        headers={"Retry-After": "1"},
    ),
    "invalid-signature": _Kind(401),
    "signature-replayed": _Kind(409),
    "task-already-claimed": _Kind(409, lambda e: {"claimed_by": e.claimed_by}),
    # task authorization and separation of duties (domain.engine.task_access)
    "task-forbidden": _Kind(403),
    "task-claimed-by-another": _Kind(409, lambda e: {"claimed_by": e.claimed_by}),
    "separation-of-duties": _Kind(403, lambda e: {"conflicts": e.conflicts}),
    "invalid-cursor": _Kind(400),
    "idempotency-key-reused": _Kind(422),
    "unstorable-value": _Kind(422, lambda e: {"what": e.what}),
    "invalid-json": _Kind(400),
    "instance-not-ended": _Kind(
        409, lambda e: {"instance_id": str(e.instance_id), "instance_status": e.status}
    ),
    # Raised by the API as a RequestValidationError; InvalidMessageError (a Kafka command
    # message) carries the same code and `errors`.
    "invalid-request": _Kind(422, lambda e: {"errors": e.errors}),
    # Operator recovery: instance modification and version migration (docs/operations-recovery.md)
    "invalid-modification": _Kind(422, lambda e: {"errors": e.errors}),
    "node-not-active": _Kind(409, lambda e: {"node_id": e.node_id, "pointer": e.path}),
    # WCP-18: a task or wait with a `milestone` acted on away from it (domain.engine.milestones)
    "milestone-not-reached": _Kind(
        409, lambda e: {"node_id": e.node_id, "milestone": e.milestone, "milestone_state": e.where}
    ),
    "migration-refused": _Kind(
        409, lambda e: {"instance_id": str(e.instance_id), "reasons": list(e.reasons)}
    ),
    # Signed task links (application/task_links.py): the token is the credential.
    "invalid-task-link": _Kind(401),
    "task-link-used": _Kind(409),
    "task-link-superseded": _Kind(409),
    "task-link-expired": _Kind(410),
}

# Errors of other libraries that carry no code of ours.
_FOREIGN_CODES: dict[type[Exception], str] = {json.JSONDecodeError: "invalid-json"}
_CODED: tuple[type[Exception], ...] = (WaymarkError, WorkflowError)


def code_of(exc: BaseException) -> str | None:
    if isinstance(exc, _CODED):
        return getattr(exc, "code", None)
    for cls in type(exc).__mro__:
        if cls in _FOREIGN_CODES:
            return _FOREIGN_CODES[cls]
    return None


async def _known_error(request: Request, exc: Exception) -> Response:
    code = code_of(exc)
    kind = KINDS.get(code) if code else None
    if code is None or kind is None:  # an error without a row: never leak its details
        return _internal_error(request.url.path, exc)
    return problem_response(
        request.url.path,
        kind.status,
        code,
        str(exc),
        headers=kind.headers,
        **kind.extras(exc),
    )


# --- infrastructure faults -----------------------------------------------------------------


def _database_unavailable_errors() -> tuple[type[Exception], ...]:
    import psycopg
    from eventsourcing.persistence import InterfaceError, OperationalError

    from infrastructure.postgres.datastore import DatabaseUnavailableError

    return (DatabaseUnavailableError, OperationalError, InterfaceError, psycopg.OperationalError)


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    # A restart or failover. Commands are atomic, and a retry with the same idempotency key
    # cannot apply one twice, so telling the client to retry is safe; the detail never
    # carries connection strings or server messages.
    logger.warning("database unavailable during %s: %s", request.url.path, exc)
    return problem_response(
        request.url.path,
        503,
        "database-unavailable",
        "the database is unavailable; retry the request shortly",
        headers={"Retry-After": "1"},
    )


def _database_timeout_error() -> type[Exception]:
    from infrastructure.postgres.datastore import DatabaseTimeoutError

    return DatabaseTimeoutError


async def _database_timeout(request: Request, exc: Exception) -> Response:
    # statement_timeout or lock_timeout (WAYMARK_DB_STATEMENT_TIMEOUT/_LOCK_TIMEOUT): the
    # transaction was rolled back, so the retry Retry-After invites is safe.
    logger.warning("database timeout during %s: %s", request.url.path, exc)
    return problem_response(
        request.url.path,
        503,
        "database-timeout",
        "the database did not answer within its statement or lock timeout; retry shortly",
        headers={"Retry-After": "1"},
    )


def _too_large_error() -> type[Exception]:
    from infrastructure.postgres.recorder import StoredEventTooLargeError

    return StoredEventTooLargeError


async def _command_too_large(request: Request, exc: Exception) -> Response:
    extras = {name: getattr(exc, name) for name in ("limit", "size", "maximum")}
    return problem_response(request.url.path, 413, "command-too-large", str(exc), **extras)


# --- framework errors -----------------------------------------------------------------------


def json_path(loc: Iterable[str | int]) -> str:
    """`("body", "input", "amount")` -> `$.input.amount`; other locations keep their name."""
    parts = list(loc)
    if not parts:
        return "$"
    out = "$" if parts[0] == "body" else str(parts[0])
    for part in parts[1:]:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(str(part)):
            out += f".{part}"
        else:
            out += f"[{json.dumps(str(part))}]"
    return out


def validation_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    return [
        {"path": json_path(e.get("loc", ())), "code": str(e.get("type", "")), "message": e["msg"]}
        for e in errors
    ]


async def _request_validation_error(request: Request, exc: RequestValidationError) -> Response:
    errors = list(exc.errors())
    broken = [e for e in errors if e.get("type") == "json_invalid"]
    if broken:
        reason = (broken[0].get("ctx") or {}).get("error", "malformed JSON")
        detail = f"the request body is not valid JSON: {reason}"
        return problem_response(request.url.path, 400, "invalid-json", detail)
    return problem_response(
        request.url.path,
        422,
        "invalid-request",
        f"the request has {len(errors)} problem(s)",
        errors=validation_errors(errors),
    )


_HTTP_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
}


async def _http_error(request: Request, exc: HTTPException) -> Response:
    path, headers = request.url.path, exc.headers or {}
    if isinstance(exc, ProblemError):
        return problem_response(
            path, exc.status_code, exc.slug, str(exc.detail), headers=headers, **exc.extras
        )
    slug = _HTTP_SLUGS.get(exc.status_code, "http-error")
    detail = str(exc.detail)
    if exc.status_code == 405:
        headers = {**headers, "Allow": _allowed_methods(request) or headers.get("Allow", "")}
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no resource at {path}"
    return problem_response(path, exc.status_code, slug, detail, headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves on this path: Starlette's 405 names only the first
    route's (GET and POST on one path are two routes). Asked of the public `matches`."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    ]
    return ", ".join(allowed)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _internal_error(path: str, exc: BaseException) -> Response:
    logger.error("unhandled error on %s", path, exc_info=exc)
    return problem_response(path, 500, "internal-error", "an unexpected error occurred")


class UnhandledErrors:
    """Pure ASGI middleware: any exception no handler took becomes a logged 500 problem."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # too late for a problem response: let the server close it
                raise
            await _internal_error(scope.get("path", ""), exc)(scope, receive, send)


def install(app: FastAPI) -> None:
    """Register every mapping on `app` (the middleware is added by `create_app`)."""
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    for cls in (*_CODED, *_FOREIGN_CODES):
        app.add_exception_handler(cls, _known_error)
    for cls in _database_unavailable_errors():
        app.add_exception_handler(cls, _database_unavailable)
    app.add_exception_handler(_database_timeout_error(), _database_timeout)
    app.add_exception_handler(_too_large_error(), _command_too_large)
    app.add_exception_handler(RequestValidationError, _request_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]


# --- the OpenAPI side -----------------------------------------------------------------------


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, plus the Problem schema the routes' error responses refer to
    (`api/responses.py`), and optional bodies declared as their model alone: FastAPI writes
    `anyOf: [model, null]`, which generated clients cannot omit.

    Routes returning `dict[str, Any]` keep it as their response model (pydantic serializes
    it, fast, exactly as before) and declare their named model in `responses=`; FastAPI
    merges the two schemas, and the named one is what the route sends."""
    if app.openapi_schema is None:
        from api.responses import Problem  # api.responses imports this module

        document = FastAPI.openapi(app)  # builds and caches app.openapi_schema
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(problem.pop("$defs", {}))
        schemas["Problem"] = problem
        for path in document.get("paths", {}).values():
            for operation in path.values():
                _unwrap_optional_body(operation.get("requestBody"))
                for response in operation.get("responses", {}).values():
                    for media in response.get("content", {}).values():
                        if "$ref" in media.get("schema", {}):
                            media["schema"] = {"$ref": media["schema"]["$ref"]}
    return app.openapi_schema or {}


def _unwrap_optional_body(body: dict[str, Any] | None) -> None:
    if body is None or body.get("required"):
        return
    for media in body.get("content", {}).values():
        options = media.get("schema", {}).get("anyOf", [])
        refs = [o for o in options if "$ref" in o]
        if len(options) == 2 and len(refs) == 1 and {"type": "null"} in options:
            media["schema"] = refs[0]
