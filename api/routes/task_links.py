"""`/v1/task-links/{token}`: the signed approve/reject links of task notifications (no API
key: the token is the credential; application/task_links.py).

`GET` shows a small confirmation page with a form and changes nothing (mail scanners and
link previews fetch GETs); `POST` (the form's button) applies the decision. Errors are
problem+json: an unknown or tampered token 401 (like a callback's wrong signature), a used
link 409, an expired one 410. With `Accept: application/json` both answer JSON instead of a
page (the preview, the instance).
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api.auth import PUBLIC, ContainerDep
from api.responses import InstanceView, problems
from api.responses_ops import TaskLinkPreview
from application.errors import TaskLinkInvalidError
from application.task_links import TaskLinkService
from infrastructure.container import Container

# Public: the signed token is the credential (like callbacks), not an API key.
router = APIRouter(prefix="/v1/task-links", tags=["task-links"], dependencies=[PUBLIC])

_ERRORS = problems(401, 404, 409, 410, 422, 500, 503)
_HTML = {"text/html": {"schema": {"type": "string"}}}
# Signed, not authenticated: no security requirement (the token is the credential).
_SIGNED: dict[str, Any] = {"security": []}


def _json(model: type[Any]) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<title>{title}</title></head>
<body><h1>{title}</h1>{body}</body></html>
"""


def _service(container: Container) -> TaskLinkService:
    if container.task_links is None:  # a container built without links signs none either
        raise TaskLinkInvalidError()
    return container.task_links


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        _PAGE.format(title=html.escape(title), body=body),
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


@router.get(
    "/{token}",
    response_class=HTMLResponse,
    responses={
        200: {
            "description": "The confirmation page (the preview as JSON when the request "
            "accepts application/json)",
            "content": {**_json(TaskLinkPreview), **_HTML},
        },
        **_ERRORS,
    },
    openapi_extra=_SIGNED,
)
async def show_task_link(token: str, request: Request, container: ContainerDep) -> Response:
    """A confirmation page for the link's decision, with a form that POSTs it. Reads only:
    a prefetching mail scanner decides nothing."""
    preview: dict[str, Any] = await run_in_threadpool(_service(container).preview, token)
    if _wants_json(request):
        return JSONResponse(preview, headers={"Cache-Control": "no-store"})
    task, decision = preview["task"], preview["decision"]
    name = html.escape(str(task.get("name") or task["id"]))
    body = (
        f"<p>Task <b>{name}</b> ({html.escape(str(task['status']))}).</p>"
        f"<p>This link expires at {html.escape(preview['expires_at'])}.</p>"
        f'<form method="post"><button type="submit">{html.escape(decision.title())}</button>'
        "</form>"
    )
    return _page(f"{decision.title()} this task?", body)


@router.post(
    "/{token}",
    responses={
        200: {
            "description": "Decided: the task's instance as JSON when the request accepts "
            "application/json, else a short page",
            "content": {**_json(InstanceView), **_HTML},
        },
        **_ERRORS,
    },
    openapi_extra=_SIGNED,
)
async def apply_task_link(token: str, request: Request, container: ContainerDep) -> Response:
    """Complete the task with the link's decision (once): `completed_by` is
    "link:<assignee or role>"."""
    view = await run_in_threadpool(_service(container).apply, token)
    if _wants_json(request):
        return JSONResponse(view)
    outcome = html.escape(str(view.get("status", "")))
    return _page("Done", f"<p>Your decision was recorded. The workflow is {outcome}.</p>")
