"""Where `waymark replay-check` reads stored instances: the events and the read model."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.postgres import PostgresDatastore

from application.ports import InstanceStore
from application.read_models import (
    ActivityRow,
    BookmarkRow,
    IncidentRow,
    InstanceRow,
    Projection,
    TaskRow,
)
from domain.instance import WorkflowInstance
from infrastructure.postgres.queries import to_row

_ROWS = (
    ("instances", InstanceRow, "SELECT * FROM instances WHERE id = %s"),
    ("bookmarks", BookmarkRow, "SELECT * FROM bookmarks WHERE instance_id = %s"),
    ("tasks", TaskRow, "SELECT * FROM tasks WHERE instance_id = %s"),
    ("activities", ActivityRow, "SELECT * FROM activities WHERE instance_id = %s"),
    ("incidents", IncidentRow, "SELECT * FROM incidents WHERE instance_id = %s"),
)


class PostgresReplaySource:
    def __init__(self, datastore: PostgresDatastore, store: InstanceStore) -> None:
        self.datastore = datastore
        self.store = store

    def instance_ids(self, definition: str | None) -> list[UUID]:
        with self.datastore.transaction(commit=False) as curs:
            if definition is None:
                curs.execute("SELECT id FROM instances ORDER BY created_at, id")
            else:
                curs.execute(
                    "SELECT id FROM instances WHERE definition = %s ORDER BY created_at, id",
                    (definition,),
                )
            return [row["id"] for row in curs.fetchall()]

    def rebuild(self, instance_id: UUID) -> WorkflowInstance:
        instance = self.store.get(instance_id)
        if instance is None:
            raise LookupError(f"no events stored for instance {instance_id}")
        return instance

    def stored_rows(self, instance_id: UUID) -> Projection:
        projection = Projection()
        with self.datastore.transaction(commit=False) as curs:
            for table, row_type, query in _ROWS:
                curs.execute(query, (instance_id,))
                rows = [to_row(row_type, r) for r in curs.fetchall()]
                getattr(projection, table).extend(rows)
        return projection
