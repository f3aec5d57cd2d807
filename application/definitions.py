"""Use cases for workflow definitions: validate, publish, fetch, enable/disable."""

from __future__ import annotations

import builtins
import threading
from collections import OrderedDict
from collections.abc import Iterable
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
from application.read_models import AdmittedStart, Page
from domain.validation import Problem, validate_document


class DefinitionCache:
    """Published versions are immutable, so (tenant, name, version) can be cached forever.

    Their `enabled` flag and which version is the newest are not: `admissible` answers
    them from the cache for admission, and every start so admitted is checked again in its
    commit's transaction (`AdmittedStart`, application/admission.py); a start the check
    refuses makes the runner `forget` what it was admitted on, so it is decided again on
    the store's word.
    """

    def __init__(self, store: DefinitionStore, size: int = 1024):
        self.store = store
        self.size = size
        self._items: OrderedDict[tuple[str, str, int], PublishedDefinition] = OrderedDict()
        # The newest version of (tenant, name) as last read (admission's guess: checked).
        self._latest: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, tenant: str, name: str, version: int | None = None) -> PublishedDefinition:
        if version is not None:
            with self._lock:
                cached = self._items.get((tenant, name, version))
                if cached is not None:
                    self._items.move_to_end((tenant, name, version))
                    return cached
        return self._read(tenant, name, version)

    def admissible(self, tenant: str, name: str, version: int | None = None) -> PublishedDefinition:
        """The version a start would take (the newest when `version` is None), from the
        cache when it was enabled when last read, else read from the store now. A cached
        answer may be stale: the start's commit checks it (`AdmittedStart`)."""
        with self._lock:
            number = self._latest.get((tenant, name)) if version is None else version
            cached = self._items.get((tenant, name, number)) if number is not None else None
            if cached is not None and cached.enabled:
                self._items.move_to_end((tenant, name, cached.version))
                return cached
        # Never seen, or disabled when last read (which another replica may have undone).
        return self._read(tenant, name, version)

    def learn(self, published: PublishedDefinition) -> None:
        """A version this process just published or changed: the cache's newest answer."""
        self._put(published, latest=True)

    def forget(self, admitted: Iterable[AdmittedStart]) -> None:
        """Drop what these starts were admitted on: read from the store next time."""
        with self._lock:
            for a in admitted:
                self._items.pop((a.tenant, a.name, a.version), None)
                self._latest.pop((a.tenant, a.name), None)

    def forget_name(self, tenant: str, name: str) -> None:
        """Drop every version of (tenant, name) (its `enabled` flag changed here)."""
        with self._lock:
            for key in [k for k in self._items if k[:2] == (tenant, name)]:
                del self._items[key]
            self._latest.pop((tenant, name), None)

    def _read(self, tenant: str, name: str, version: int | None) -> PublishedDefinition:
        published = self.store.get(tenant, name, version)
        if published is None:
            raise DefinitionNotFoundError(name, version)
        self._put(published, latest=version is None)
        return published

    def _put(self, published: PublishedDefinition, *, latest: bool = False) -> None:
        key = (published.tenant, published.name, published.version)
        with self._lock:
            known = self._items.get(key)
            if known is not None and "definition" in known.__dict__:
                # The same immutable document: keep its parsed graph (a cached_property).
                published.__dict__.setdefault("definition", known.__dict__["definition"])
            self._items[key] = published
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            if latest:  # the store's newest (a later read may have seen a newer one: checked)
                self._latest[key[:2]] = published.version
                self._latest.move_to_end(key[:2])
                while len(self._latest) > self.size:
                    self._latest.popitem(last=False)


class DefinitionService:
    """Publishing and reading definitions."""

    def __init__(
        self,
        store: DefinitionStore,
        schemas: SchemaValidator,
        connections: ConnectionCatalog | None = None,
        calendar: CronCalendar | None = None,
        cache: DefinitionCache | None = None,
    ):
        self.store = store
        # This process's admission cache, told of its own publishes and enable/disable
        # (other replicas' changes are caught by the starts' commit check).
        self.cache = cache
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
        published = self.store.publish(tenant, name, document, audit=entry)
        if self.cache is not None:
            self.cache.learn(published)
        return published

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
        if self.cache is not None:
            self.cache.forget_name(tenant, name)
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
