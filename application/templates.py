"""The built-in template library: ready-made definitions a tenant publishes as its own."""

from __future__ import annotations

import builtins
import copy
from dataclasses import dataclass
from typing import Any, Protocol

from application import audit
from application.definitions import DefinitionService
from application.errors import DefinitionExistsError, TemplateNotFoundError
from application.ports import PublishedDefinition


@dataclass(frozen=True)
class Template:
    """A shipped workflow definition plus what a person needs to choose and start it."""

    id: str
    name: str
    description: str
    category: str
    parameters: list[dict[str, Any]]  # the input fields it expects: name, type, required, ...
    definition: dict[str, Any]  # the definition document (SPEC §2); never mutate it


class TemplateCatalog(Protocol):
    def list(self) -> builtins.list[Template]:
        """Every template, ordered by id."""

    def get(self, template_id: str) -> Template | None:
        """The template, or None when there is none with that id."""


class TemplateService:
    """Browsing the template library and publishing a template for a tenant."""

    def __init__(self, catalog: TemplateCatalog, definitions: DefinitionService):
        self.catalog = catalog
        self.definitions = definitions

    def list(self) -> builtins.list[Template]:
        return self.catalog.list()

    def get(self, template_id: str) -> Template:
        template = self.catalog.get(template_id)
        if template is None:
            raise TemplateNotFoundError(template_id)
        return template

    def instantiate(
        self,
        tenant: str,
        template_id: str,
        name: str | None = None,
        *,
        new_version: bool = False,
    ) -> PublishedDefinition:
        """Publish the template's definition for `tenant`, under `name` if given.

        A tenant's own definition of that name is never published over silently: it is a
        `DefinitionExistsError` unless `new_version` asks for the next version. An invalid
        `name` is refused like any invalid document.
        """
        # A copy: the catalog's document is shared by every request of the process.
        document = copy.deepcopy(self.get(template_id).definition)
        if name is not None:
            document["name"] = name
        target = document.get("name")
        if not new_version and isinstance(target, str):
            existing = self.definitions.store.get(tenant, target, None)
            if existing is not None:
                raise DefinitionExistsError(target, existing.version)
        return self.definitions.publish(
            tenant, document, action=audit.TEMPLATE_INSTANTIATED, template=template_id
        )
