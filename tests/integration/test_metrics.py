"""/metrics against real PostgreSQL: the system gauges come from the database (a process
that started nothing reports what another started), cached; the per-process figures count
what this process did (timers fired, actions run, instances ended, breakers, the pool)."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

import pytest
from prometheus_client.parser import text_string_to_metric_families

from application.commands import StartInstance
from infrastructure import metrics

pytestmark = pytest.mark.integration

TENANT = "acme"
WAIT = {
    "name": "metered-wait",
    "nodes": [
        {"id": "hold", "type": "wait", "event": "go"},
        {"id": "done", "type": "end"},
    ],
    "routes": [{"from": "hold", "to": "done"}],
}
TIMER = {
    "name": "metered-timer",
    "nodes": [
        {"id": "pause", "type": "timer", "duration": "PT1S"},
        {"id": "done", "type": "end"},
    ],
    "routes": [{"from": "pause", "to": "done"}],
}
CALL = {
    "name": "metered-call",
    "nodes": [
        {"id": "call", "type": "service_task", "action": {"type": "noop"}},
        {"id": "done", "type": "end"},
    ],
    "routes": [{"from": "call", "to": "done"}],
}


def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = metrics.exposition()
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return found


def value(name: str, **labels: str) -> float:
    return samples().get((name, tuple(sorted(labels.items()))), 0.0)


def settings_for(database_url: str, **extra: Any) -> Any:
    from infrastructure.settings import Settings

    options: dict[str, Any] = {"metrics_cache_seconds": 0, **extra}
    return Settings(database_url=database_url, api_keys="k=acme:admin", db_pool_size=2, **options)


def test_system_gauges_come_from_the_database_not_from_the_process(database_url: str) -> None:
    from infrastructure.bootstrap import build_api
    from infrastructure.worker_bootstrap import build_task_worker

    api = build_api(settings_for(database_url))
    try:
        api.definitions.publish(TENANT, WAIT)
        for _ in range(3):
            api.instances.start(StartInstance(TENANT, "metered-wait"))
        # Another process's core (a task worker that started nothing) binds last: it serves.
        other = build_task_worker(settings_for(database_url))
        try:
            assert (
                value("workflow_instances_active", definition="metered-wait", status="suspended")
                == 3
            )
            assert value("workflow_system_gauges_up") == 1
            assert value("workflow_instances_stuck") == 0
        finally:
            other.close()
    finally:
        api.close()


def test_the_system_gauges_are_cached_for_the_configured_time(database_url: str) -> None:
    from infrastructure.bootstrap import build_api

    api = build_api(settings_for(database_url, metrics_cache_seconds=60))
    try:
        api.definitions.publish(TENANT, WAIT)
        api.instances.start(StartInstance(TENANT, "metered-wait"))
        first = value("workflow_instances_active", definition="metered-wait", status="suspended")
        api.instances.start(StartInstance(TENANT, "metered-wait"))
        cached = value("workflow_instances_active", definition="metered-wait", status="suspended")
        assert (first, cached) == (1, 1)  # the second start is not seen for a minute
    finally:
        api.close()
    # Negative control: without the cache the second start shows at once.
    api = build_api(settings_for(database_url))
    try:
        assert (
            value("workflow_instances_active", definition="metered-wait", status="suspended") == 2
        )
    finally:
        api.close()


def test_timers_due_fired_completed_and_durations(database_url: str) -> None:
    from infrastructure.bootstrap import build_api
    from infrastructure.worker_bootstrap import build_timer_worker
    from workers.timer_worker import TimerWorker

    api = build_api(settings_for(database_url))
    timers = TimerWorker(build_timer_worker(api.settings, core=api.core))
    try:
        api.definitions.publish(TENANT, TIMER)
        view, _ = api.instances.start(StartInstance(TENANT, "metered-timer"))
        assert value("workflow_timers_due") == 0  # set for a second from now
        deadline = time.monotonic() + 10
        while value("workflow_timers_due") < 1:
            assert time.monotonic() < deadline, "the timer never fell due"
            time.sleep(0.1)
        before = {
            "fired": value("workflow_timers_fired_total"),
            "completed": value(
                "workflow_instances_completed_total", definition="metered-timer", tenant=""
            ),
            "durations": value(
                "workflow_execution_duration_seconds_count",
                definition="metered-timer",
                outcome="completed",
            ),
        }
        assert timers.tick() == 1
        assert api.instances.get(TENANT, UUID(str(view["id"])))["status"] == "completed"
        assert value("workflow_timers_due") == 0
        assert value("workflow_timers_fired_total") == before["fired"] + 1
        assert (
            value("workflow_instances_completed_total", definition="metered-timer", tenant="")
            == before["completed"] + 1
        )
        assert (
            value(
                "workflow_execution_duration_seconds_count",
                definition="metered-timer",
                outcome="completed",
            )
            == before["durations"] + 1
        )
    finally:
        api.close()


def test_actions_breakers_and_the_pool_of_this_process(database_url: str) -> None:
    from infrastructure.bootstrap import build_api
    from infrastructure.worker_bootstrap import build_task_worker
    from workers.task_worker import TaskWorker

    api = build_api(settings_for(database_url, breaker_min_calls=2))
    worker = TaskWorker(build_task_worker(api.settings, core=api.core))
    try:
        api.definitions.publish(TENANT, CALL)
        before = value("workflow_activities_executed_total", action_type="noop", outcome="success")
        api.instances.start(StartInstance(TENANT, "metered-call"))
        assert worker.tick() == 1
        assert (
            value("workflow_activities_executed_total", action_type="noop", outcome="success")
            == before + 1
        )
        assert value("workflow_activity_execution_duration_seconds_count", action_type="noop") > 0
        # A target failing opens its breaker: the gauge says 2 (open).
        for _ in range(3):
            api.core.breakers.record("host:payments.example:443", failed=True)
        assert value("workflow_circuit_breaker_state", target="host:payments.example:443") == 2
        assert value("workflow_db_pool_max") >= 2
        assert value("workflow_db_pool_size") >= 1
    finally:
        worker.close()
        api.close()
    # The core closed: its breakers and pool are no longer reported.
    assert ("workflow_circuit_breaker_state", (("target", "host:payments.example:443"),)) not in (
        samples()
    )


def test_the_event_lock_gauges_show_a_holder_and_the_writers_behind_it(
    database_url: str,
) -> None:
    import threading

    import psycopg

    from infrastructure.bootstrap import build_api

    api = build_api(settings_for(database_url))
    try:
        api.definitions.publish(TENANT, WAIT)
        assert value("workflow_event_writers_waiting") == 0
        assert value("workflow_event_lock_wait_seconds") == 0  # none waits
        with psycopg.connect(database_url) as holder:
            # A session that took the lock and sat on it (what a manual INSERT does).
            holder.execute("SELECT pg_advisory_xact_lock(waymark_events_insert_order_key())")
            writer = threading.Thread(
                target=api.instances.start, args=(StartInstance(TENANT, "metered-wait"),)
            )
            writer.start()
            deadline = time.monotonic() + 10
            while value("workflow_event_writers_waiting") < 1:
                assert time.monotonic() < deadline, "the writer was never seen waiting"
                time.sleep(0.1)
            time.sleep(1.1)
            assert value("workflow_event_lock_wait_seconds") >= 1
            holder.rollback()
        writer.join(10)
        assert not writer.is_alive()
        assert value("workflow_event_writers_waiting") == 0
        assert value("workflow_event_lock_wait_seconds") == 0
        assert (
            value("workflow_instances_active", definition="metered-wait", status="suspended") == 1
        )
    finally:
        api.close()
