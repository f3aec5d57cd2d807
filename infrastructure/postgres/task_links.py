"""Used task links in PostgreSQL (table `task_link_uses`, migration 0015)."""

from __future__ import annotations

from datetime import datetime

from eventsourcing.postgres import PostgresDatastore

from application.task_links import LinkClaims, UsedLink


class PostgresUsedTaskLinks:
    """One row per used link, keyed by the link's MAC (primary key: recorded once)."""

    def __init__(self, datastore: PostgresDatastore):
        self.datastore = datastore

    def find(self, link_id: str) -> UsedLink | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                "SELECT link_id, used_at, used_by FROM task_link_uses WHERE link_id = %s",
                (link_id,),
            )
            row = curs.fetchone()
        if row is None:
            return None
        return UsedLink(row["link_id"], row["used_at"], row["used_by"])

    def record(self, claims: LinkClaims, used_by: str, at: datetime) -> bool:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "INSERT INTO task_link_uses "
                "(link_id, tenant, task_id, decision, expires_at, used_at, used_by) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (link_id) DO NOTHING",
                (
                    claims.link_id,
                    claims.tenant,
                    claims.task_id,
                    claims.decision,
                    claims.expires_at,
                    at,
                    used_by,
                ),
            )
            return bool(curs.rowcount)
