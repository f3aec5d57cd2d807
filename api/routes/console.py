"""`/console`: the web console, static files from `api/console/static/` (no build step).

The files are public (the page asks for a key or token and sends it to the API as
`Authorization: Bearer ...`); only the names present in the directory are served, each with
a Content-Security-Policy that allows this origin's scripts, styles and API calls and
nothing inline (every value the console shows goes through `textContent`).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response

from api.auth import PUBLIC
from api.problems import ProblemError

STATIC = Path(__file__).resolve().parents[1] / "console" / "static"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False, dependencies=[PUBLIC])


def _assets() -> dict[str, Path]:
    """The servable files by name (read at import: the package's files do not change)."""
    if not STATIC.is_dir():  # pragma: no cover - an install without package data
        return {}
    return {p.name: p for p in STATIC.iterdir() if p.is_file() and p.suffix in MEDIA_TYPES}


ASSETS = _assets()


def _file(name: str) -> Response:
    path = ASSETS.get(name)
    if path is None:
        raise ProblemError(404, "not-found", f"the console has no file {name!r}")
    return Response(
        path.read_bytes(),
        media_type=MEDIA_TYPES[path.suffix],
        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"},
    )


@router.api_route("/console", methods=["GET", "HEAD"])
@router.api_route("/console/", methods=["GET", "HEAD"])
async def console_index() -> Response:
    """The console's page, at `/console` and `/console/` (its script and style paths are
    absolute: /console/...)."""
    return _file("index.html")


@router.api_route("/console/{name}", methods=["GET", "HEAD"])
async def console_file(name: str) -> Response:
    """One of the console's files (only those in the directory: no path reaches further)."""
    return _file(name)
