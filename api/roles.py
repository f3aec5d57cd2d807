"""The four roles and what each route needs: one table (docs/security.md, "Roles").

Every route declares the role it needs with a dependency (`Reader`, `Operator`, `Designer`,
`Admin` from `api.auth`, or `PUBLIC` for the probes and the signed, keyless routes); a unit
test walks every route of the app and every role against `GRANTS`, so a route that declares
nothing fails it. `python -m api.roles` prints the docs table.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

VIEWER, OPERATOR, DESIGNER, ADMIN = "viewer", "operator", "designer", "admin"
ROLES = (VIEWER, OPERATOR, DESIGNER, ADMIN)
PUBLIC_ROUTE = "public"

# The role a route declares -> the caller roles that satisfy it. Every role reads; operators
# run instances and tasks, designers publish definitions, admins do everything.
GRANTS: dict[str, frozenset[str]] = {
    VIEWER: frozenset(ROLES),
    OPERATOR: frozenset({OPERATOR, ADMIN}),
    DESIGNER: frozenset({DESIGNER, ADMIN}),
    ADMIN: frozenset({ADMIN}),
}

# A capability a key may carry beside its roles: act for a person (`Waymark-On-Behalf-Of`).
IMPERSONATE = "impersonate"

SUMMARY = {
    VIEWER: "reads everything of its tenant",
    OPERATOR: "starts, cancels and resumes instances, claims, delegates and completes tasks",
    DESIGNER: "validates, publishes, enables and disables definitions; instantiates templates",
    ADMIN: "everything, plus connections and erasure; may override task assignment (recorded)",
}


def allows(declared: str, roles: frozenset[str]) -> bool:
    """Whether a caller with `roles` may use a route that declares `declared`."""
    if declared == PUBLIC_ROUTE:
        return True
    return bool(GRANTS[declared] & roles)


def route_role(route: Any) -> str | None:
    """The role a FastAPI route declares (a `waymark_role` dependency), or None."""
    for depends in getattr(route, "dependencies", None) or []:
        role = getattr(depends.dependency, "waymark_role", None)
        if role is not None:
            return str(role)
    for current in dependants(route):
        role = getattr(current.call, "waymark_role", None)
        if role is not None:
            return str(role)
    return None


def dependants(route: Any) -> Iterator[Any]:
    """The route's FastAPI `Dependant` and every dependency below it, depth first."""
    dependant = getattr(route, "dependant", None)
    stack = [dependant] if dependant is not None else []
    while stack:
        current = stack.pop()
        yield current
        stack.extend(current.dependencies)


def markdown_table(routes: list[tuple[str, str, str]]) -> str:
    """The docs table: per route role, which caller roles may, and the routes that need it.
    `routes`: (method, path, declared role)."""
    lines = [
        "| a route that needs | " + " | ".join(ROLES) + " | what it is | routes |",
        "|---|" + "---|" * len(ROLES) + "---|---|",
    ]
    for declared in (*ROLES, PUBLIC_ROUTE):
        marks = " | ".join(
            "yes" if declared == PUBLIC_ROUTE or role in GRANTS[declared] else "403"
            for role in ROLES
        )
        listed = sorted(f"`{m} {p}`" for m, p, r in routes if r == declared)
        what = SUMMARY.get(
            declared, "no key: probes, the console's static files, signed callbacks/webhooks"
        )
        lines.append(f"| `{declared}` | {marks} | {what} | {', '.join(listed)} |")
    return "\n".join(lines) + "\n"


def app_routes(app: Any) -> list[tuple[str, str, str | None]]:
    """(method, path, declared role) of every API route of `app` (HEAD twins omitted;
    FastAPI's own docs routes, which have no dependencies, are not API routes)."""
    from fastapi.routing import iter_route_contexts

    found = []
    for route in iter_route_contexts(app.routes):
        methods = route.methods
        if not methods or getattr(route, "dependant", None) is None:
            continue
        for method in sorted(methods - {"HEAD"} or methods):
            found.append((method, str(route.path), route_role(route)))
    return found


def main() -> None:  # pragma: no cover - a docs helper
    from api.app import create_app

    app = create_app(lambda: None)  # type: ignore[arg-type,return-value]
    routes = [(m, p, r or "UNDECLARED") for m, p, r in app_routes(app)]
    sys.stdout.write(markdown_table(routes))


if __name__ == "__main__":  # pragma: no cover
    main()
