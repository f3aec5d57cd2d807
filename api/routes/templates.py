"""`/v1/templates`: the built-in template library; instantiating one publishes a definition."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body

from api.auth import ContainerDep, Designer, Reader
from api.responses import AUTHENTICATED, WITH_BODY, DefinitionView, ok
from api.responses_ops import TemplatePage, TemplateView
from api.routes.definitions import definition_view
from api.schemas import InstantiateTemplateRequest
from application.templates import Template
from application.views import jsonable

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


@router.get("", responses=ok(TemplatePage, *AUTHENTICATED))
def list_templates(principal: Reader, container: ContainerDep) -> dict[str, Any]:
    """Every built-in template, by id (a short, fixed list: never more than one page)."""
    items = [template_summary(t) for t in container.templates.list()]
    return {"items": items, "next_cursor": None}


@router.get("/{template_id}", responses=ok(TemplateView, *AUTHENTICATED, 404))
def get_template(template_id: str, principal: Reader, container: ContainerDep) -> dict[str, Any]:
    """One template with its definition document."""
    template = container.templates.get(template_id)
    return {**template_summary(template), "definition": jsonable(template.definition)}


@router.post(
    "/{template_id}/instantiate",
    status_code=201,
    responses=ok(
        DefinitionView, *WITH_BODY, 404, 409, status=201, description="The published version"
    ),
)
def instantiate_template(
    template_id: str,
    principal: Designer,
    container: ContainerDep,
    request: InstantiateTemplateRequest | None = Body(None),
) -> dict[str, Any]:
    """Publish the template's definition for the caller's tenant; 409 when the tenant has a
    definition of that name already, unless `new_version` asks for its next version."""
    name = request.name if request is not None else None
    new_version = request.new_version if request is not None else False
    published = container.templates.instantiate(
        principal.tenant, template_id, name, new_version=new_version
    )
    return definition_view(published)
