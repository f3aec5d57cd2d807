"""DefinitionStore in memory: numbered versions of each named definition."""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import Any

from application.audit import AuditEntry
from application.ports import PublishedDefinition
from application.read_models import Page
from infrastructure.memory.tables import MemoryTables
from infrastructure.postgres.cursors import (
    clamp_limit,
    decode_cursor,
    encode_cursor,
    new_cursor_secret,
    page_of,
)


class MemoryDefinitionStore:
    """Publishes versions 1, 2, 3 ... of a definition (one publisher at a time)."""

    def __init__(self, tables: MemoryTables, *, cursor_secret: bytes | None = None) -> None:
        self.tables = tables
        self.cursor_secret = cursor_secret or new_cursor_secret()

    def publish(
        self,
        tenant: str,
        name: str,
        document: dict[str, Any],
        *,
        audit: AuditEntry | None = None,
    ) -> PublishedDefinition:
        with self.tables.lock:
            versions = self.tables.definitions.setdefault((tenant, name), [])
            latest = versions[-1] if versions else None
            published = PublishedDefinition(
                tenant=tenant,
                name=name,
                version=latest.version + 1 if latest else 1,
                document=document,
                # A new version inherits the enabled flag of the latest one.
                enabled=latest.enabled if latest else True,
                created_at=datetime.now(UTC),
            )
            versions.append(published)
            return published

    def get(self, tenant: str, name: str, version: int | None = None) -> PublishedDefinition | None:
        with self.tables.lock:
            versions = self.tables.definitions.get((tenant, name), [])
            if version is None:
                return versions[-1] if versions else None
            return next((v for v in versions if v.version == version), None)

    def _latest(self, tenant: str) -> builtins.list[PublishedDefinition]:
        with self.tables.lock:
            return sorted(
                (
                    versions[-1]
                    for (t, _), versions in self.tables.definitions.items()
                    if t == tenant
                ),
                key=lambda d: d.name,
            )

    def list(self, tenant: str, limit: int, cursor: str | None) -> Page:
        after = ""
        if cursor is not None:
            after = str(decode_cursor("definitions", cursor, size=1, secret=self.cursor_secret)[0])
        limit = clamp_limit(limit)
        rows = [d for d in self._latest(tenant) if d.name > after][: limit + 1]
        return page_of(
            rows,
            limit,
            lambda last: encode_cursor("definitions", last.name, secret=self.cursor_secret),
        )

    def set_enabled(
        self, tenant: str, name: str, enabled: bool, *, audit: AuditEntry | None = None
    ) -> bool:
        with self.tables.lock:
            versions = self.tables.definitions.get((tenant, name))
            if not versions:
                return False
            self.tables.definitions[(tenant, name)] = [
                PublishedDefinition(v.tenant, v.name, v.version, v.document, enabled, v.created_at)
                for v in versions
            ]
            return True

    def event_triggered(self, tenant: str, event_type: str) -> builtins.list[PublishedDefinition]:
        """Latest version of each definition, when enabled and triggered by the type."""

        def triggered(d: PublishedDefinition) -> bool:
            triggers = d.document.get("triggers") or []
            return any(
                isinstance(t, dict) and t.get("type") == "event" and t.get("event") == event_type
                for t in triggers
            )

        return [d for d in self._latest(tenant) if d.enabled and triggered(d)]

    def schedule_triggered(self) -> builtins.list[PublishedDefinition]:
        """Latest version of every tenant's definitions with a `schedule` trigger."""
        with self.tables.lock:
            latest = [versions[-1] for versions in self.tables.definitions.values() if versions]
        return sorted(
            (
                d
                for d in latest
                if any(
                    isinstance(t, dict) and t.get("type") == "schedule"
                    for t in d.document.get("triggers") or []
                )
            ),
            key=lambda d: (d.tenant, d.name),
        )
