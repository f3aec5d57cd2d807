"""DefinitionStore on PostgreSQL: immutable, numbered versions of each named definition."""

from __future__ import annotations

import builtins
from dataclasses import replace
from typing import Any

from eventsourcing.postgres import PostgresDatastore
from psycopg.types.json import Jsonb

from application.audit import AuditEntry
from application.ports import PublishedDefinition
from application.read_models import Page
from infrastructure.postgres.audit import insert_entry
from infrastructure.postgres.cursors import (
    clamp_limit,
    decode_cursor,
    encode_cursor,
    new_cursor_secret,
    page_of,
)

# Serialises publishes of one (tenant, name) for the rest of the transaction, so that
# max(version) + 1 is computed by one publisher at a time (the primary key would reject a
# second "next" version anyway, but waiting beats failing). Other names are not blocked.
_LOCK_NAME = "SELECT pg_advisory_xact_lock(hashtext(%s), hashtext(%s))"

# A new version inherits the enabled flag of the latest one: an operator's `disable` must
# not be undone by a deployment pipeline publishing again.
_INSERT_NEXT_VERSION = """
    INSERT INTO definitions (tenant, name, version, document, enabled, created_at)
    SELECT %(tenant)s, %(name)s, coalesce(latest.version, 0) + 1, %(document)s,
           coalesce(latest.enabled, true), now()
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
        SELECT version, enabled FROM definitions
        WHERE tenant = %(tenant)s AND name = %(name)s
        ORDER BY version DESC LIMIT 1
    ) AS latest ON true
    RETURNING *
"""

_SELECT_LATEST = """
    SELECT DISTINCT ON (name) * FROM definitions
    WHERE tenant = %s AND name > %s
    ORDER BY name, version DESC
    LIMIT %s
"""

# The trigger must be on the latest version: a trigger removed by a newer version no longer
# starts anything, even though the older version still has it. (A GIN index on
# document->'triggers' would serve this; the per-tenant definitions list is small.)
_SELECT_EVENT_TRIGGERED = """
    SELECT * FROM (
        SELECT DISTINCT ON (name) * FROM definitions
        WHERE tenant = %s
        ORDER BY name, version DESC
    ) AS latest
    WHERE enabled AND document -> 'triggers' @> %s
    ORDER BY name
"""

# Every tenant's: the scheduler serves them all.
_SELECT_SCHEDULE_TRIGGERED = """
    SELECT * FROM (
        SELECT DISTINCT ON (tenant, name) * FROM definitions
        ORDER BY tenant, name, version DESC
    ) AS latest
    WHERE document -> 'triggers' @> '[{"type": "schedule"}]'
    ORDER BY tenant, name
"""


def _published(row: dict[str, Any]) -> PublishedDefinition:
    return PublishedDefinition(
        tenant=row["tenant"],
        name=row["name"],
        version=row["version"],
        document=row["document"],
        enabled=row["enabled"],
        created_at=row["created_at"],
    )


class PostgresDefinitionStore:
    """Publishes versions 1, 2, 3 ... of a definition, also under concurrent publishes."""

    def __init__(self, datastore: PostgresDatastore, *, cursor_secret: bytes | None = None) -> None:
        self.datastore = datastore
        self.cursor_secret = cursor_secret or new_cursor_secret()

    def publish(
        self,
        tenant: str,
        name: str,
        document: dict[str, Any],
        *,
        audit: AuditEntry | None = None,
    ) -> PublishedDefinition:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(_LOCK_NAME, (tenant, name))
            curs.execute(
                _INSERT_NEXT_VERSION,
                {"tenant": tenant, "name": name, "document": Jsonb(document)},
            )
            row = curs.fetchone()
            assert row is not None
            if audit is not None:
                details = {**audit.details, "version": row["version"]}
                insert_entry(curs, replace(audit, details=details))
        return _published(row)

    def get(self, tenant: str, name: str, version: int | None = None) -> PublishedDefinition | None:
        with self.datastore.transaction(commit=False) as curs:
            if version is None:
                curs.execute(
                    "SELECT * FROM definitions WHERE tenant = %s AND name = %s "
                    "ORDER BY version DESC LIMIT 1",
                    (tenant, name),
                )
            else:
                curs.execute(
                    "SELECT * FROM definitions WHERE tenant = %s AND name = %s AND version = %s",
                    (tenant, name, version),
                )
            row = curs.fetchone()
        return _published(row) if row else None

    def list(self, tenant: str, limit: int, cursor: str | None) -> Page:
        after = ""
        if cursor is not None:
            after = str(decode_cursor("definitions", cursor, size=1, secret=self.cursor_secret)[0])
        limit = clamp_limit(limit)
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(_SELECT_LATEST, (tenant, after, limit + 1))
            rows = [_published(row) for row in curs.fetchall()]
        return page_of(
            rows,
            limit,
            lambda last: encode_cursor("definitions", last.name, secret=self.cursor_secret),
        )

    def event_triggered(self, tenant: str, event_type: str) -> builtins.list[PublishedDefinition]:
        trigger = Jsonb([{"type": "event", "event": event_type}])
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(_SELECT_EVENT_TRIGGERED, (tenant, trigger))
            return [_published(row) for row in curs.fetchall()]

    def schedule_triggered(self) -> builtins.list[PublishedDefinition]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(_SELECT_SCHEDULE_TRIGGERED)
            return [_published(row) for row in curs.fetchall()]

    def set_enabled(
        self, tenant: str, name: str, enabled: bool, *, audit: AuditEntry | None = None
    ) -> bool:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "UPDATE definitions SET enabled = %s WHERE tenant = %s AND name = %s",
                (enabled, tenant, name),
            )
            if curs.rowcount == 0:
                return False
            if audit is not None:
                insert_entry(curs, audit)
            return True
