"""`/v1/definitions`: publish, validate, list, fetch, enable and disable definitions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query

from api.auth import authorize, get_container
from application.ports import PublishedDefinition
from application.views import jsonable
from infrastructure.container import Container, Principal

router = APIRouter(prefix="/v1/definitions", tags=["definitions"])


def definition_view(published: PublishedDefinition) -> dict[str, Any]:
    return jsonable(
        {
            "name": published.name,
            "version": published.version,
            "enabled": published.enabled,
            "created_at": published.created_at,
            "document": published.document,
        }
    )


@router.post("", status_code=201)
def publish(
    document: Any = Body(..., description="the definition document (SPEC §2)"),
    principal: Principal = Depends(authorize),
    container: Container = Depends(get_container),
) -> dict[str, Any]:
    """Publish a definition; the same name again becomes its next version."""
    return definition_view(container.definitions.publish(principal.tenant, document))


@router.post("/validate")
def validate(
    document: Any = Body(..., description="the definition document (SPEC §2)"),
    principal: Principal = Depends(authorize),
    container: Container = Depends(get_container),
) -> dict[str, Any]:
    """Validate without publishing: every problem, each with its JSON path."""
    problems = container.definitions.validate(document)
    return {"valid": not problems, "errors": [p.as_dict() for p in problems]}


@router.get("")
def list_definitions(
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = None,
    principal: Principal = Depends(authorize),
    container: Container = Depends(get_container),
) -> dict[str, Any]:
    """The latest version of every definition, by name."""
    page = container.definitions.list(principal.tenant, limit, cursor)
    return {"items": [definition_view(p) for p in page.items], "next_cursor": page.next_cursor}


@router.get("/{name}")
def get_definition(
    name: str,
    version: int | None = Query(None, ge=1),
    principal: Principal = Depends(authorize),
    container: Container = Depends(get_container),
) -> dict[str, Any]:
    """One version (the latest by default)."""
    return definition_view(container.definitions.get(principal.tenant, name, version))


def _set_enabled(enabled: bool, doc: str) -> Any:
    """The enable/disable endpoints: one body, two paths."""

    def endpoint(
        name: str,
        principal: Principal = Depends(authorize),
        container: Container = Depends(get_container),
    ) -> dict[str, Any]:
        return definition_view(container.definitions.set_enabled(principal.tenant, name, enabled))

    endpoint.__doc__ = doc
    endpoint.__name__ = "enable" if enabled else "disable"
    return endpoint


router.post("/{name}/enable")(_set_enabled(True, "Let the definition start new instances again."))
router.post("/{name}/disable")(
    _set_enabled(False, "Disabled definitions start no new instances; running ones carry on.")
)
