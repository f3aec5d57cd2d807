"""One check of every request's input, before any route sees it (pure ASGI middleware).

Whatever a request carries may end up in a SQL parameter or a jsonb column, and PostgreSQL
cannot hold every string Python can: a NUL character is a `DataError`, a lone surrogate
cannot be encoded, `NaN` and `Infinity` are not JSON. Deeply nested JSON is accepted by
PostgreSQL but not by the serializers that render it back (and each level costs recursion
everywhere it is walked). So instead of a patch per field, this middleware refuses, with a
`422 invalid-request` naming each offending field:

- a path parameter or query parameter (name or value) containing NUL;
- a JSON body with a string or key containing NUL or a lone surrogate, a non-finite number
  (`NaN`, `Infinity`, `1e400`), an integer too long to parse, or nesting deeper than
  `MAX_JSON_DEPTH` containers.

It covers every route, including those that read the raw body (signed callbacks and
webhooks), because it reads the body itself and hands the same bytes on. A body that is not
JSON at all (or not UTF-8) is passed on untouched: the route answers it as before
(`400 invalid-json`, or `422` for a body of the wrong content type).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import json_path, problem_response

# A JSON document may nest at most this many objects/arrays (`{}` is depth 1, so a start
# request's `input` may nest 63 levels). Deeper payloads are refused with 422: no
# workflow needs them, and they are what made instances unreadable (issue 5, item 4).
MAX_JSON_DEPTH = 64
# At most this many problems are listed in `errors[]`; the first ones are enough to fix.
MAX_REPORTED_ERRORS = 20

_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class InputProblem(Exception):
    """Raised while parsing, when the document itself cannot be represented."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def string_problem(value: str) -> tuple[str, str] | None:
    """(code, message) when `value` cannot be stored in PostgreSQL text or jsonb."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "nul_character", "contains a NUL character (\\u0000), which cannot be stored"
    return "lone_surrogate", "contains an unpaired UTF-16 surrogate, which cannot be stored"


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InputProblem("number_out_of_range", f"the number {text[:40]} is out of range")
    return value


def _no_constants(text: str) -> Any:
    raise InputProblem("invalid_number", f"{text} is not a JSON number")


def parse_json(body: bytes) -> Any:
    """The document, as the routes will see it; InputProblem for what JSON cannot be;
    ValueError (incl. JSONDecodeError, UnicodeDecodeError) when it is not JSON at all."""
    try:
        return json.loads(body, parse_float=_finite_float, parse_constant=_no_constants)
    except RecursionError:
        raise InputProblem(
            "too_deep", f"nests deeper than {MAX_JSON_DEPTH} levels (at most {MAX_JSON_DEPTH})"
        ) from None
    except ValueError as error:
        if isinstance(error, json.JSONDecodeError | UnicodeDecodeError):
            raise
        # int() refuses integers of more than 4300 digits (sys.int_info.str_digits_check...)
        raise InputProblem("number_out_of_range", "an integer is too long") from None


def document_problems(document: Any, *, limit: int = MAX_REPORTED_ERRORS) -> list[dict[str, str]]:
    """Every string/key that cannot be stored and every container deeper than the bound,
    each with its JSON path. Walked with an explicit stack: the input is untrusted."""
    found: list[dict[str, str]] = []
    stack: list[tuple[Any, tuple[str | int, ...], int]] = [(document, ("body",), 1)]
    while stack and len(found) < limit:
        value, loc, depth = stack.pop()
        if isinstance(value, str):
            problem = string_problem(value)
            if problem:
                found.append(_error(loc, *problem))
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            found.append(
                _error(loc, "too_deep", f"nests deeper than {MAX_JSON_DEPTH} levels of JSON")
            )
            continue  # one error for the whole subtree
        items = value.items() if isinstance(value, dict) else enumerate(value)
        children = []
        for key, child in items:
            if isinstance(key, str) and (problem := string_problem(key)):
                found.append(_error((*loc, key), problem[0], "the key " + problem[1]))
            children.append((child, (*loc, key), depth + 1))
        stack.extend(reversed(children))  # report in document order
    return found[:limit]


def _error(loc: tuple[str | int, ...], code: str, message: str) -> dict[str, str]:
    return {"path": json_path(loc), "code": code, "message": message}


def parameter_problems(scope: Scope) -> list[dict[str, str]]:
    """NUL (or a lone surrogate) in a path parameter, or in a query parameter name or value."""
    found = []
    params = _path_params(scope)
    if params is None:  # no route matches: the 404 will not touch the database
        params = {}
    for name, value in params.items():
        if isinstance(value, str) and (problem := string_problem(value)):
            found.append(_error(("path", name), *problem))
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if problem := string_problem(name):
            found.append(_error(("query", name), problem[0], "the name " + problem[1]))
        elif problem := string_problem(value):
            found.append(_error(("query", name), *problem))
    return found


def _path_params(scope: Scope) -> dict[str, Any] | None:
    """The path parameters of the operation this request will reach (routing has not run
    yet): matched against the templates of the OpenAPI document, the API's contract."""
    path = scope.get("path", "")
    for pattern in _path_patterns(scope.get("app")):
        found = pattern.match(path)
        if found:
            return found.groupdict()
    if "\x00" in path:  # no route; still never let NUL near a query
        return {"path": path}
    return None


def _path_patterns(app: Any) -> list[re.Pattern[str]]:
    patterns = getattr(app.state, "path_patterns", None) if app is not None else None
    if patterns is None:
        templates = app.openapi().get("paths", {}) if hasattr(app, "openapi") else {}
        patterns = [compile_path(t)[0] for t in templates if "{" in t]
        if app is not None:
            app.state.path_patterns = patterns
    return patterns


class RequestGuard:
    """Refuse requests whose parameters or JSON body cannot be stored (see module docstring)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        errors = parameter_problems(scope)
        if errors:
            await _refuse(scope, receive, send, errors)
            return
        if scope.get("method", "GET").upper() not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        # Read the whole body (BodySizeLimit, outside us, bounds it) and replay it.
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay(b"", receive, message), send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        errors = body_problems(body)
        if errors:
            await _refuse(scope, receive, send, errors)
            return
        await self.app(scope, _replay(body, receive), send)


def body_problems(body: bytes) -> list[dict[str, str]]:
    if not body.strip():
        return []
    try:
        document = parse_json(body)
    except InputProblem as problem:
        return [_error(("body",), problem.code, problem.message)]
    except ValueError:
        return []  # not JSON: the route answers it (400 invalid-json / 422)
    return document_problems(document)


def _replay(body: bytes, receive: Receive, first: Message | None = None) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return first or {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(scope: Scope, receive: Receive, send: Send, errors: list[dict[str, str]]) -> None:
    response = problem_response(
        scope.get("path", ""),
        422,
        "invalid-request",
        f"the request has {len(errors)} problem(s)",
        errors=errors,
    )
    await response(scope, receive, send)
