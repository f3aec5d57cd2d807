"""Every route of the app declares its role, and each role is allowed or refused (403)
exactly as the table (api/roles.py, docs/security.md "Roles") says."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from api import roles
from api.roles import ROLES, app_routes, markdown_table
from tests.api_stub import AsgiClient, stub_app

DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"


@pytest.fixture(scope="module")
def client() -> AsgiClient:
    return AsgiClient(stub_app())


@pytest.fixture(scope="module")
def routes(client: AsgiClient) -> list[tuple[str, str, str | None]]:
    return app_routes(client.app)


def _url(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_every_route_declares_a_role(routes: list[tuple[str, str, str | None]]) -> None:
    assert len(routes) > 30  # the walk sees the included routers, not only the app's own
    undeclared = [(m, p) for m, p, role in routes if role is None]
    assert undeclared == [], "routes without a declared role (api.auth Reader/Operator/...)"


def test_every_route_times_every_role_is_allowed_or_refused_as_the_table_says(
    client: AsgiClient, routes: list[tuple[str, str, str | None]]
) -> None:
    checked = 0
    for method, path, declared in routes:
        assert declared is not None
        for role in ROLES:
            response = client.request(
                method, _url(path), headers={"Authorization": f"Bearer k-{role}"}, json={}
            )
            where = f"{method} {path} as {role} (route needs {declared})"
            if roles.allows(declared, frozenset({role})):
                assert response.status_code not in (401, 403), where
            else:
                assert response.status_code == 403, where
                assert response.headers["content-type"] == "application/problem+json", where
                assert response.json()["type"].endswith("forbidden"), where
            checked += 1
    assert checked == len(routes) * len(ROLES)


def test_without_credentials_only_public_routes_answer(
    client: AsgiClient, routes: list[tuple[str, str, str | None]]
) -> None:
    for method, path, declared in routes:
        response = client.request(method, _url(path), json={})
        if declared == roles.PUBLIC_ROUTE:
            assert response.status_code != 401, (method, path)
        else:
            assert response.status_code == 401, (method, path)
            assert response.headers["www-authenticate"].startswith("Bearer")


def test_the_table_grants_what_the_docs_say() -> None:
    assert roles.GRANTS["viewer"] == frozenset(ROLES)  # every role reads
    assert "operator" not in roles.GRANTS["designer"]  # operators do not publish
    assert "designer" not in roles.GRANTS["operator"]  # designers do not run instances
    assert all("admin" in allowed for allowed in roles.GRANTS.values())


def test_docs_security_md_has_the_generated_roles_table(
    routes: list[tuple[str, str, str | None]],
) -> None:
    table = markdown_table([(m, p, r or "UNDECLARED") for m, p, r in routes])
    assert table in DOCS.read_text(), "regenerate: python -m api.roles"


def test_a_new_route_without_a_declared_role_is_reported() -> None:
    # The negative control of the walk: a route on the method-based PrincipalDep (or none).
    from api.auth import PrincipalDep

    app = stub_app()

    @app.get("/v1/undeclared")
    def undeclared(principal: PrincipalDep) -> dict[str, str]:
        return {"tenant": principal.tenant}

    assert ("GET", "/v1/undeclared", None) in app_routes(app)


def _threadpool_dependencies(app: object) -> list[tuple[str, str]]:
    """(route path, dependency name) of every dependency FastAPI would run in its threadpool:
    a plain `def` (or a class whose `__call__` is one) costs a thread hop per request."""
    from fastapi.routing import iter_route_contexts

    found = []
    for route in iter_route_contexts(app.routes):  # type: ignore[attr-defined]
        for current in list(roles.dependants(route))[1:]:  # [0] is the endpoint itself
            call = current.call
            target = call if inspect.isroutine(call) else getattr(call, "__call__", call)  # noqa: B004
            if not inspect.iscoroutinefunction(target):
                found.append((str(route.path), getattr(call, "__name__", type(call).__name__)))
    return sorted(set(found))


def test_no_dependency_of_a_route_runs_in_the_threadpool(client: AsgiClient) -> None:
    # A sync `_public` sent every probe and callback through a thread hop: 0.3 ms of CPU a
    # request (GET /health/live 0.45 -> 0.15 ms, measured on the ASGI app in process).
    assert _threadpool_dependencies(client.app) == []


def test_a_sync_dependency_is_reported() -> None:
    # The negative control of the walk above.
    from fastapi import Depends

    app = stub_app()

    def blocking() -> None:
        return None

    @app.get("/v1/sync-dependency", dependencies=[Depends(blocking)])
    async def handler() -> dict[str, str]:
        return {}

    assert ("/v1/sync-dependency", "blocking") in _threadpool_dependencies(app)
