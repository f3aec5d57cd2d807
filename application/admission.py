"""What every start must pass, whoever asks for it: an API call, an event trigger or a
`sub_workflow` node. The definition exists and is enabled, and the input fits its schema.

Admission answers from the DefinitionCache, so a start reads nothing on the usual path; the
answer is checked where it matters, in the start's commit. `CommandAttempt.start` records
an `AdmittedStart` (tenant, name, version, and `latest` when no version was asked), and the
transaction that stores the start checks, in one statement for all of the commit's starts
(sent after the commit's projection statements and read with their answers, before the
events lock is taken), that each version is still enabled and, for `latest`, still the
newest, before its COMMIT
(infrastructure/postgres/admission_check.py). If not, nothing is stored, the commit raises
`DefinitionChangedError` (only the members that made the claim fail a group commit), the
cache forgets the claim and the runner decides the command again: admitted this time on the
store's word, the start answers what a read before the decision would have (404 / 409
disabled, or the new version). A disabled answer is never taken from the cache.
"""

from __future__ import annotations

from typing import Any

from application.definitions import DefinitionCache
from application.errors import DefinitionDisabledError, InvalidDataError
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
        """The definition to start, once it may start with `data`.

        `enabled` and the newest version come from the cache (read from the store on a
        miss, or when the cached copy was disabled): the caller's start records an
        `AdmittedStart` that its commit checks in the same transaction, so a definition
        disabled, or a newer version published, by any replica refuses the commit; the
        cache then forgets it and the command is decided again on the store's word
        (CommandRunner). A disabled answer always comes from the store.
        """
        published = self.cache.admissible(tenant, name, version)
        if not published.enabled:
            raise DefinitionDisabledError(name)
        model = published.definition
        self.check_input(model, data)
        return model

    def check_input(self, model: Definition, data: dict[str, Any]) -> None:
        if model.input_schema:
            errors = self.schemas.validate(model.input_schema, data)
            if errors:
                raise InvalidDataError("input", errors)
