"""`/v1/templates`: the built-in template library; instantiating one publishes a definition."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends

from api.auth import authorize, get_container
from api.routes.definitions import definition_view
from api.schemas import InstantiateTemplateRequest
from application.templates import Template
from application.views import jsonable
from infrastructure.container import Container, Principal

router = APIRouter(prefix="/v1/templates", tags=["templates"])


def template_summary(template: Template) -> dict[str, Any]:
    return jsonable(
        {
            "id": template.id,
            "name": template.name,
            "description": template.description,
            "category": template.category,
            "parameters": template.parameters,
        }
    )


@router.get("")
def list_templates(
    principal: Principal = Depends(authorize),
    container: Container = Depends(get_container),
) -> dict[str, Any]:
    """Every built-in template, by id (a short, fixed list: never more than one page)."""
    items = [template_summary(t) for t in container.templates.list()]
    return {"items": items, "next_cursor": None}


@router.get("/{template_id}")
def get_template(
    template_id: str,
    principal: Principal = Depends(authorize),
    container: Container = Depends(get_container),
) -> dict[str, Any]:
    """One template with its definition document."""
    template = container.templates.get(template_id)
    return {**template_summary(template), "definition": jsonable(template.definition)}


@router.post("/{template_id}/instantiate", status_code=201)
def instantiate(
    template_id: str,
    request: InstantiateTemplateRequest | None = Body(None),
    principal: Principal = Depends(authorize),
    container: Container = Depends(get_container),
) -> dict[str, Any]:
    """Publish the template's definition for the caller's tenant (next version if it exists)."""
    name = request.name if request is not None else None
    published = container.templates.instantiate(principal.tenant, template_id, name)
    return definition_view(published)
