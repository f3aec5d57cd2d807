"""`DirectRoute`: an APIRoute whose requests skip FastAPI's per-request dependency resolution.

FastAPI resolves a route's parameters on every request: it walks the dependency tree,
validates each path and header parameter through pydantic, opens exit stacks. For the two
busiest routes, the signed callback and the start of an instance, that was about 0.3 ms
of the 1.5-2 ms of CPU each costs the API process (measured in process; 0.1-0.25 ms over
HTTP on a noisy VM: docs/performance.md "The API's own CPU per request"), CPU that bounds
how many requests one GIL-bound process can serve.

A `DirectRoute` keeps everything FastAPI knows about the route — its OpenAPI operation, its
declared role (api/roles.py reads the dependencies), its place in the router — and replaces
only the request handler. The endpoint is called with its arguments read straight from the
request when every one of them is of a kind read here exactly as FastAPI reads it:

- `str` path parameters (any text, as FastAPI's `str` accepts any);
- optional `str` headers (`Header(alias=...)`; absent: the default);
- the `Request`, and the process's container (`api.auth.get_container`);
- the role a route declares (`Reader`, `Operator`, ... from `api.auth.requires`, called as
  FastAPI calls it; `PUBLIC` needs nothing);
- one JSON body model, when the request is `application/json` and its body validates.

Any other request (no or another content type, a body that is not JSON or does not
validate) is handed to FastAPI's own handler for the route, so every error answer is
FastAPI's, unchanged. A parameter of any other kind is refused when the route is built (a
`TypeError` at import), never served differently. A plain `def` endpoint runs on a
thread, as FastAPI runs it, in the context of the request (its context variables), but on
this module's own thread pool through the event loop's `run_in_executor`: anyio's
`to_thread.run_sync`, which FastAPI uses, cost 70 µs of CPU per call under uvloop where
this costs 37 (measured with 8 concurrent callers, docs/performance.md). The endpoint must
return a Response.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from api.auth import BEARER_SCHEME, PUBLIC, get_container

_JSON = "application/json"
# As many threads as anyio lends FastAPI's endpoints by default (its limiter's 40 tokens).
THREADS = 40
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _threads() -> ThreadPoolExecutor:
    """The process's endpoint threads, started on first use (the lock only then)."""
    global _executor
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(THREADS, thread_name_prefix="waymark-endpoint")
    return _executor


async def run_on_thread(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`call(*args, **kwargs)` on an endpoint thread, in a copy of the caller's context
    (starlette's `run_in_threadpool`, cheaper). Cancelled, the caller stops waiting and the
    thread runs the call to its end (as with anyio)."""
    context = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        _threads(), functools.partial(context.run, call, *args, **kwargs)
    )


@dataclass(frozen=True)
class _Plan:
    path: tuple[str, ...]  # parameter names
    headers: tuple[tuple[str, str, Any], ...]  # (parameter, header name, default)
    request: str | None  # the parameter that takes the Request
    container: tuple[str, ...]  # parameters that take the container
    roles: tuple[tuple[str, Callable[..., Any]], ...]  # (parameter, `requires(role)`)
    body: tuple[str, type[BaseModel]] | None  # (parameter, model)


def _plan(route: APIRoute) -> _Plan:
    dependant = route.dependant
    where = f"DirectRoute {route.path}"
    if dependant.query_params or dependant.cookie_params:
        raise TypeError(f"{where}: only path, header and body parameters are read directly")
    path = []
    for field in dependant.path_params:
        if field.field_info.annotation is not str:
            raise TypeError(f"{where}: path parameter {field.name} is not a str")
        path.append(field.name)
    headers = []
    for field in dependant.header_params:
        if field.field_info.annotation != str | None or field.field_info.is_required():
            raise TypeError(f"{where}: header {field.name} is not an optional str")
        headers.append((field.name, field.alias, field.field_info.get_default()))
    body = None
    if dependant.body_params:
        field = dependant.body_params[0]
        model = field.field_info.annotation
        # One model, not embedded in an object by its name: FastAPI's plain body.
        if (
            len(dependant.body_params) > 1
            or route._embed_body_fields
            or not (isinstance(model, type) and issubclass(model, BaseModel))
        ):
            raise TypeError(f"{where}: the body is not one pydantic model")
        body = (field.name, model)
    container: list[str] = []
    roles: list[tuple[str, Callable[..., Any]]] = []
    for sub in dependant.dependencies:
        if sub.call is PUBLIC.dependency:
            continue
        if sub.call is get_container and sub.name:
            container.append(sub.name)
        elif sub.name and sub.call is not None and _is_role(sub):
            roles.append((sub.name, sub.call))
        else:
            raise TypeError(f"{where}: dependency {sub.call!r} needs FastAPI to resolve it")
    others = (
        dependant.websocket_param_name,
        dependant.http_connection_param_name,
        dependant.response_param_name,
        dependant.background_tasks_param_name,
        dependant.security_scopes_param_name,
    )
    if any(others):
        raise TypeError(f"{where}: only the Request is passed directly")
    return _Plan(
        tuple(path),
        tuple(headers),
        dependant.request_param_name,
        tuple(container),
        tuple(roles),
        body,
    )


def _is_role(sub: Any) -> bool:
    """`api.auth.requires(role)`'s dependency: (request, container, bearer credentials)."""
    below = [d.call for d in sub.dependencies]
    return (
        getattr(sub.call, "waymark_role", None) is not None
        and inspect.iscoroutinefunction(sub.call)
        and sub.request_param_name == "request"
        and below == [get_container, BEARER_SCHEME]
    )


async def _json_body(request: Request, model: type[BaseModel]) -> BaseModel | None:
    """The body as `model`, or None when FastAPI's handler should answer the request."""
    content_type = request.headers.get("content-type", "")
    if content_type.partition(";")[0].strip().lower() != _JSON:
        return None
    raw = await request.body()  # kept on the request: a fallback reads it again for free
    try:
        return model.model_validate(json.loads(raw))
    except (ValueError, ValidationError):  # JSONDecodeError is a ValueError
        return None


class DirectRoute(APIRoute):
    """An APIRoute whose endpoint is called with its arguments read from the request."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        standard = super().get_route_handler()
        plan = _plan(self)
        endpoint = self.endpoint
        is_async = inspect.iscoroutinefunction(endpoint)

        async def handler(request: Request) -> Response:
            kwargs: dict[str, Any] = {}
            if plan.body is not None:
                name, model = plan.body
                value = await _json_body(request, model)
                if value is None:
                    return await standard(request)
                kwargs[name] = value
            path_params = request.path_params
            for name in plan.path:
                kwargs[name] = path_params[name]
            if plan.headers:
                headers = request.headers
                for name, header, default in plan.headers:
                    kwargs[name] = headers.get(header, default)
            if plan.request is not None:
                kwargs[plan.request] = request
            container = await get_container(request)
            for name in plan.container:
                kwargs[name] = container
            for name, role in plan.roles:
                # As FastAPI calls it; the credentials argument is for the OpenAPI document.
                kwargs[name] = await role(request, container, None)
            if is_async:
                response: Response = await endpoint(**kwargs)
            else:
                response = await run_on_thread(endpoint, **kwargs)
            return response

        return handler
