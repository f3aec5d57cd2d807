"""Use cases for workflow definitions: validate, publish, fetch, enable/disable."""

from __future__ import annotations

import builtins
import threading
from collections import OrderedDict
from typing import Any

from application import audit
from application.connections import ConnectionCatalog, NoConnections, missing_connections
from application.errors import DefinitionNotFoundError, InvalidDefinitionError
from application.ports import (
    CronCalendar,
    DefinitionStore,
    PublishedDefinition,
    SchemaValidator,
)
from application.read_models import Page
from domain.validation import Problem, validate_document


class DefinitionCache:
    """Published versions are immutable, so (tenant, name, version) can be cached forever."""

    def __init__(self, store: DefinitionStore, size: int = 1024):
        self.store = store
        self.size = size
        self._items: OrderedDict[tuple[str, str, int], PublishedDefinition] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, tenant: str, name: str, version: int | None = None) -> PublishedDefinition:
        if version is not None:
            with self._lock:
                cached = self._items.get((tenant, name, version))
                if cached is not None:
                    self._items.move_to_end((tenant, name, version))
                    return cached
        published = self.store.get(tenant, name, version)
        if published is None:
            raise DefinitionNotFoundError(name, version)
        self._put(published)
        return published

    def _put(self, published: PublishedDefinition) -> None:
        # Only the document is immutable: admission re-reads `enabled` from the store.
        with self._lock:
            self._items[(published.tenant, published.name, published.version)] = published
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class DefinitionService:
    """Publishing and reading definitions."""

    def __init__(
        self,
        store: DefinitionStore,
        schemas: SchemaValidator,
        connections: ConnectionCatalog | None = None,
        calendar: CronCalendar | None = None,
    ):
        self.store = store
        self.schemas = schemas
        self.connections = connections or NoConnections()
        self.calendar = calendar  # checks that a schedule's cron can be scheduled

    def validate(self, document: Any) -> list[Problem]:
        problems = validate_document(document)
        if isinstance(document, dict):
            problems.extend(self._schema_problems(document))
            if self.calendar is not None:
                problems.extend(self._schedule_problems(document, {p.path for p in problems}))
        return problems

    def publish(
        self,
        tenant: str,
        document: Any,
        *,
        action: str = audit.DEFINITION_PUBLISHED,
        **details: Any,
    ) -> PublishedDefinition:
        """Validate and publish; the audit entry (`action`, `details`) in the same write."""
        problems = self.validate(document)
        if problems:
            raise InvalidDefinitionError(problems)
        # The tenant's connections: a definition naming one it lacks would fail at run time.
        problems = missing_connections(self.connections, tenant, document)
        if problems:
            raise InvalidDefinitionError(problems)
        name = document["name"]
        entry = audit.entry(tenant, action, f"definition:{name}", **details)
        return self.store.publish(tenant, name, document, audit=entry)

    def get(self, tenant: str, name: str, version: int | None = None) -> PublishedDefinition:
        published = self.store.get(tenant, name, version)
        if published is None:
            raise DefinitionNotFoundError(name, version)
        return published

    def list(self, tenant: str, limit: int, cursor: str | None) -> Page:
        return self.store.list(tenant, limit, cursor)

    def set_enabled(self, tenant: str, name: str, enabled: bool) -> PublishedDefinition:
        action = audit.DEFINITION_ENABLED if enabled else audit.DEFINITION_DISABLED
        entry = audit.entry(tenant, action, f"definition:{name}")
        if not self.store.set_enabled(tenant, name, enabled, audit=entry):
            raise DefinitionNotFoundError(name)
        return self.get(tenant, name)

    def _schedule_problems(
        self, document: dict[str, Any], reported: set[str]
    ) -> builtins.list[Problem]:
        """A `schedule` trigger's cron must parse and match some time (`0 0 31 2 *` never
        does); the document check has already checked its shape and the time zone."""
        assert self.calendar is not None
        triggers = document.get("triggers")
        found = []
        for i, trigger in enumerate(triggers if isinstance(triggers, list) else []):
            if not isinstance(trigger, dict) or trigger.get("type") != "schedule":
                continue
            path = f"$.triggers[{i}].cron"
            cron, timezone = trigger.get("cron"), trigger.get("timezone", "UTC")
            if path in reported or f"$.triggers[{i}].timezone" in reported:
                continue
            if not isinstance(cron, str) or not isinstance(timezone, str):
                continue
            problem = self.calendar.problem(cron, timezone)
            if problem:
                found.append(Problem(path, "invalid_value", f"trigger #{i} cron: {problem}"))
        return found

    def _schema_problems(self, document: dict[str, Any]) -> builtins.list[Problem]:
        """JSON Schemas inside the document (input_schema, forms) must be valid schemas."""
        found: list[tuple[str, Any]] = []
        if isinstance(document.get("input_schema"), dict):
            found.append(("$.input_schema", document["input_schema"]))
        nodes = document.get("nodes")
        for i, node in enumerate(nodes if isinstance(nodes, list) else []):
            if isinstance(node, dict) and isinstance(node.get("form"), dict):
                found.append((f"$.nodes[{i}].form", node["form"]))
        return [
            Problem(path, "invalid_schema", message)
            for path, schema in found
            for message in self.schemas.check_schema(schema)
        ]
