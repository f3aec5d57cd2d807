"""The database-derived gauges of `/metrics` (infrastructure/metrics.py `SystemGauges`).

One read-only transaction of index-backed aggregate queries per scrape (cached by the
collector): active instances by definition and status, due timers, the outbox position,
stuck and long-running instances, overdue tasks, the last day's SLA compliance and the
events' insert-order lock (its waiters, the longest wait).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from infrastructure.postgres.cleanup import CONDITION_SQL
from infrastructure.postgres.due_timers import _DUE_KINDS

if TYPE_CHECKING:
    from infrastructure.container import Core

_DAY = timedelta(days=1)

Values = dict[str, list[tuple[dict[str, str], float]]]

_ACTIVE = (
    "SELECT definition, status, count(*) AS n FROM instances "
    "WHERE ended_at IS NULL GROUP BY definition, status"
)
_TIMERS_DUE = (
    f"SELECT count(*) AS n FROM bookmarks WHERE status = 'open' AND {_DUE_KINDS} "  # noqa: S608
    "AND due_at <= %(now)s AND timer_error IS NULL"
)
_OVERDUE = (
    "SELECT count(*) AS n FROM tasks WHERE status IN ('open', 'claimed') AND due_at < %(now)s"
)
# The events' insert-order lock (migration 0024): the writers queued for it, and how long
# the first of them has waited. Commands hold it for milliseconds; a wait of seconds means a
# holder that does not let go (a manual transaction that inserted an event and did not
# commit), and every writer waits behind it. From `pg_locks` alone (its `waitstart`), which
# every role may read: `pg_stat_activity` hides another user's session times.
_EVENT_LOCK = (
    "SELECT count(*) FILTER (WHERE NOT l.granted) AS waiting, "
    "greatest(coalesce(extract(epoch FROM now() - min(l.waitstart)), 0), 0) AS wait_seconds "
    "FROM waymark_events_insert_order_locks() l"
)
_SLA = (
    "SELECT count(*) FILTER (WHERE completed_at <= due_at) AS met, count(*) AS judged "
    "FROM tasks WHERE completed_at >= %(since)s AND due_at IS NOT NULL"
)


def system_gauges_reader(core: Core) -> Callable[[], Values]:
    from infrastructure.policies import cleanup_policy

    long_running_after = cleanup_policy(core.settings).long_running_after
    outbox_configured = bool(core.settings.kafka_bootstrap_servers)

    def read() -> Values:
        now = datetime.now(UTC)
        values: Values = {}
        with core.datastore.transaction(commit=False) as curs:
            curs.execute(_ACTIVE)
            values["workflow_instances_active"] = [
                ({"definition": r["definition"], "status": r["status"]}, float(r["n"]))
                for r in curs.fetchall()
            ]
            curs.execute(_TIMERS_DUE, {"now": now})
            values["workflow_timers_due"] = [({}, float(curs.fetchone()["n"]))]  # type: ignore[index]
            for condition, where in CONDITION_SQL.items():
                curs.execute(
                    f"SELECT count(*) AS n FROM instances WHERE {where}",  # noqa: S608
                    {"before": now - long_running_after},
                )
                values[f"workflow_instances_{condition}"] = [({}, float(curs.fetchone()["n"]))]  # type: ignore[index]
            curs.execute(_OVERDUE, {"now": now})
            values["workflow_tasks_overdue"] = [({}, float(curs.fetchone()["n"]))]  # type: ignore[index]
            curs.execute(_EVENT_LOCK)
            row = curs.fetchone()
            assert row is not None
            values["workflow_event_writers_waiting"] = [({}, float(row["waiting"]))]
            values["workflow_event_lock_wait_seconds"] = [({}, float(row["wait_seconds"]))]
            curs.execute(_SLA, {"since": now.replace(microsecond=0) - _DAY})
            row = curs.fetchone()
            assert row is not None
            if row["judged"]:
                values["workflow_task_sla_compliance_ratio"] = [
                    ({}, float(row["met"]) / float(row["judged"]))
                ]
        if outbox_configured:
            from infrastructure.bootstrap import outbox_tables

            status = outbox_tables(core).status()
            values["workflow_outbox_events_pending"] = [({}, float(status.pending))]
            values["workflow_outbox_processing_lag_seconds"] = [({}, status.lag_seconds)]
            values["workflow_outbox_dead_letters"] = [({}, float(status.dead_letters))]
        return values

    return read
