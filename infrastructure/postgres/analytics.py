"""AnalyticsQueries on PostgreSQL: one aggregate query over `instances` (with each
instance's definition version for its SLA) and one over `tasks`, in one snapshot."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from eventsourcing.postgres import PostgresDatastore
from psycopg import sql

from application.analytics import AnalyticsFilter, DefinitionStats

# Durations are clamped at zero: an instance that ends in the command that started it
# records its end at the command's clock reading, a few microseconds before the timestamp
# of its Started event (its created_at).
INSTANCE_STATS = """
WITH runs AS (
    SELECT i.definition,
           i.version,
           i.status,
           CASE WHEN i.ended_at IS NOT NULL
                THEN greatest(extract(epoch FROM i.ended_at - i.created_at), 0)::float8
           END AS duration,
           extract(epoch FROM %(now)s - i.created_at)::float8 AS age,
           CASE WHEN jsonb_typeof(d.document -> 'sla_hours') = 'number'
                THEN (d.document ->> 'sla_hours')::float8 * 3600
           END AS sla_seconds
    FROM instances i
    LEFT JOIN definitions d
           ON d.tenant = i.tenant AND d.name = i.definition AND d.version = i.version
    WHERE {where}
), stats AS (
    SELECT definition,
           count(*) AS started,
           count(*) FILTER (WHERE status = 'completed') AS completed,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE status IN ('running', 'suspended', 'incident')) AS running,
           count(*) FILTER (WHERE status = 'suspended') AS suspended,
           avg(duration) AS avg_duration_seconds,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY duration) AS p95_duration_seconds,
           max(version) FILTER (WHERE sla_seconds IS NOT NULL) AS sla_version,
           count(*) FILTER (
               WHERE status = 'completed' AND duration <= sla_seconds
           ) AS sla_met,
           count(*) FILTER (
               WHERE duration > sla_seconds OR (duration IS NULL AND age > sla_seconds)
           ) AS sla_breached
    FROM runs
    GROUP BY definition
)
SELECT s.definition, s.started, s.completed, s.failed, s.cancelled, s.running, s.suspended,
       s.avg_duration_seconds, s.p95_duration_seconds, s.sla_met, s.sla_breached,
       d.document -> 'sla_hours' AS sla_hours
FROM stats s
LEFT JOIN definitions d
       ON d.tenant = %(tenant)s AND d.name = s.definition AND d.version = s.sla_version
ORDER BY s.definition
"""

# Open = not completed or cancelled (a claimed task is still open).
TASK_STATS = """
SELECT t.definition,
       count(*) AS open_tasks,
       count(*) FILTER (WHERE t.due_at <= %(now)s) AS overdue_tasks
FROM tasks t
WHERE {where}
GROUP BY t.definition
"""


class PostgresAnalyticsQueries:
    """Aggregates in PostgreSQL; Python only pairs each definition's task counts with it."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore

    def definition_stats(self, where: AnalyticsFilter, now: datetime) -> list[DefinitionStats]:
        params = {
            "tenant": where.tenant,
            "definition": where.definition,
            "created_after": where.created_after,
            "created_before": where.created_before,
            "now": now,
        }
        with self.datastore.transaction(commit=False) as curs:
            # One snapshot for both queries: a task counted belongs to an instance counted.
            curs.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            curs.execute(_instance_stats(where), params)
            instances = curs.fetchall()
            curs.execute(_task_stats(where), params)
            tasks = {row["definition"]: row for row in curs.fetchall()}
        return [_stats(row, tasks.get(row["definition"])) for row in instances]


def _window(where: AnalyticsFilter) -> list[sql.Composable]:
    """Conditions on the creation time of instances `i`; only for the bounds given."""
    conditions: list[sql.Composable] = []
    if where.created_after is not None:
        conditions.append(sql.SQL("i.created_at >= %(created_after)s"))
    if where.created_before is not None:
        conditions.append(sql.SQL("i.created_at < %(created_before)s"))
    return conditions


def _instance_stats(where: AnalyticsFilter) -> sql.Composed:
    conditions = [sql.SQL("i.tenant = %(tenant)s"), *_window(where)]
    if where.definition is not None:
        conditions.append(sql.SQL("i.definition = %(definition)s"))
    return sql.SQL(INSTANCE_STATS).format(where=sql.SQL(" AND ").join(conditions))


def _task_stats(where: AnalyticsFilter) -> sql.Composed:
    conditions: list[sql.Composable] = [
        sql.SQL("t.tenant = %(tenant)s"),
        sql.SQL("t.status IN ('open', 'claimed')"),
    ]
    if where.definition is not None:
        conditions.append(sql.SQL("t.definition = %(definition)s"))
    window = _window(where)
    if window:
        # Only the tasks of the instances the report covers.
        conditions.append(
            sql.SQL("EXISTS (SELECT 1 FROM instances i WHERE i.id = t.instance_id AND {})").format(
                sql.SQL(" AND ").join(window)
            )
        )
    return sql.SQL(TASK_STATS).format(where=sql.SQL(" AND ").join(conditions))


def _stats(row: dict[str, Any], tasks: dict[str, Any] | None) -> DefinitionStats:
    stats = DefinitionStats(**row)
    if tasks is None:
        return stats
    return replace(stats, open_tasks=tasks["open_tasks"], overdue_tasks=tasks["overdue_tasks"])
