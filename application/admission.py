"""What every start must pass, whoever asks for it: an API call, an event trigger or a
`sub_workflow` node. The definition exists and is enabled, and the input fits its schema."""

from __future__ import annotations

from typing import Any

from application.definitions import DefinitionCache
from application.errors import DefinitionDisabledError, DefinitionNotFoundError, InvalidDataError
from application.ports import DefinitionStore, SchemaValidator
from domain.definition import Definition


class StartAdmission:
    """Admits starts: raises DefinitionNotFoundError, DefinitionDisabledError, InvalidDataError."""

    def __init__(self, store: DefinitionStore, cache: DefinitionCache, schemas: SchemaValidator):
        self.store = store
        self.cache = cache
        self.schemas = schemas

    def admit(
        self, tenant: str, name: str, version: int | None, data: dict[str, Any]
    ) -> Definition:
        """The definition to start, once it may start with `data`."""
        # Read from the store, not the cache: `enabled` changes, versions do not.
        published = self.store.get(tenant, name, version)
        if published is None:
            raise DefinitionNotFoundError(name, version)
        if not published.enabled:
            raise DefinitionDisabledError(name)
        # The parsed graph of an immutable version comes from the cache.
        model = self.cache.get(tenant, name, published.version).definition
        self.check_input(model, data)
        return model

    def check_input(self, model: Definition, data: dict[str, Any]) -> None:
        if model.input_schema:
            errors = self.schemas.validate(model.input_schema, data)
            if errors:
                raise InvalidDataError("input", errors)
