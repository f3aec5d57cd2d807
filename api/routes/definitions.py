"""`/v1/definitions`: publish, validate, list, fetch, enable and disable definitions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from api.auth import ContainerDep, Designer, Reader
from api.responses import (
    AUTHENTICATED,
    WITH_BODY,
    DefinitionPage,
    DefinitionView,
    ValidationResult,
    ok,
)
from application.ports import PublishedDefinition
from application.views import jsonable

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


# The definition document is free-form JSON here: the validator, not the schema, checks it
# (every problem at once, each with its path); SPEC §2 and docs/definitions.md describe it.
DocumentBody = Annotated[Any, Body(description="the definition document (SPEC §2)")]


@router.post(
    "",
    status_code=201,
    responses=ok(DefinitionView, *WITH_BODY, status=201, description="The published version"),
)
def publish_definition(
    document: DocumentBody, principal: Designer, container: ContainerDep
) -> dict[str, Any]:
    """Publish a definition; the same name again becomes its next version."""
    return definition_view(container.definitions.publish(principal.tenant, document))


@router.post("/validate", responses=ok(ValidationResult, *WITH_BODY))
def validate_definition(
    document: DocumentBody, principal: Designer, container: ContainerDep
) -> dict[str, Any]:
    """Validate without publishing: every problem, each with its JSON path."""
    problems = container.definitions.validate(document)
    return {"valid": not problems, "errors": [p.as_dict() for p in problems]}


@router.get("", responses=ok(DefinitionPage, *AUTHENTICATED, 400))
def list_definitions(
    principal: Reader,
    container: ContainerDep,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = None,
) -> dict[str, Any]:
    """The latest version of every definition, by name."""
    page = container.definitions.list(principal.tenant, limit, cursor)
    return {"items": [definition_view(p) for p in page.items], "next_cursor": page.next_cursor}


@router.get("/{name}", responses=ok(DefinitionView, *AUTHENTICATED, 404))
def get_definition(
    name: str,
    principal: Reader,
    container: ContainerDep,
    version: int | None = Query(None, ge=1),
) -> dict[str, Any]:
    """One version (the latest by default)."""
    return definition_view(container.definitions.get(principal.tenant, name, version))


def _set_enabled(enabled: bool, doc: str) -> Any:
    """The enable/disable endpoints: one body, two paths."""

    def endpoint(name: str, principal: Designer, container: ContainerDep) -> dict[str, Any]:
        return definition_view(container.definitions.set_enabled(principal.tenant, name, enabled))

    endpoint.__doc__ = doc
    endpoint.__name__ = "enable_definition" if enabled else "disable_definition"
    return endpoint


_TOGGLED = ok(DefinitionView, *AUTHENTICATED, 404)
router.post("/{name}/enable", responses=_TOGGLED)(
    _set_enabled(True, "Let the definition start new instances again.")
)
router.post("/{name}/disable", responses=_TOGGLED)(
    _set_enabled(False, "Disabled definitions start no new instances; running ones carry on.")
)
