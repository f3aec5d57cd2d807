"""The API's routers are included busiest first (api/app.py), which is safe only because no
route of one router matches a path another router's route serves: then the order of the
routers decides what matching costs, never which route answers."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, FastAPI

from tests.api_stub import stub_app

Leaf = tuple[int, Any]  # (index of the app's route entry it belongs to, the route)


def _leaves(app: FastAPI) -> list[Leaf]:
    """Every route, in matching order, with the app-level entry (an included router, or a
    route of the app's own) that holds it."""
    leaves: list[Leaf] = []

    def walk(owner: int, routes: list[Any]) -> None:
        for entry in routes:
            router = getattr(entry, "original_router", None)  # FastAPI's included router
            if router is None:
                leaves.append((owner, entry))
                continue
            assert not entry.include_context.prefix, "a prefixed router: extend this walk"
            walk(owner, router.routes)

    for index, entry in enumerate(app.router.routes):
        walk(index, [entry])
    return leaves


def _example(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


def cross_router_matches(app: FastAPI) -> list[tuple[str, str, list[str]]]:
    """(method, example path, the route paths matching it) wherever routes of two
    different app-level entries match one route's example path."""
    leaves = _leaves(app)
    found = []
    for _, route in leaves:
        path = _example(route.path)
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            matching = [
                (owner, other.path)
                for owner, other in leaves
                if other.path_regex.match(path)
                and method in (getattr(other, "methods", None) or {"GET"})
            ]
            if len({owner for owner, _ in matching}) > 1:
                found.append((method, path, [p for _, p in matching]))
    return found


def test_no_route_of_one_router_matches_a_path_of_another() -> None:
    app = stub_app()
    assert len(_leaves(app)) > 40  # the walk reached the routers' routes
    assert cross_router_matches(app) == []


def test_the_check_finds_a_route_that_another_router_would_shadow() -> None:
    """Negative control: a router with `/v1/instances/{anything}` (GET) matches the paths
    of `GET /v1/instances/{instance_id}` and its siblings."""
    app = stub_app()
    shadowing = APIRouter()
    shadowing.add_api_route("/v1/instances/{anything}", lambda anything: None)
    app.include_router(shadowing)
    assert any(
        method == "GET" and path == "/v1/instances/x1"
        for method, path, _ in cross_router_matches(app)
    )


def test_the_callback_and_the_start_are_matched_first() -> None:
    paths = [route.path for _, route in _leaves(stub_app())]
    api = [p for p in paths if p.startswith(("/v1/", "/health"))]
    assert api.index("/v1/callbacks/{token}") < 2, api[:5]
    assert api.index("/v1/instances") < api.index("/health/live")
