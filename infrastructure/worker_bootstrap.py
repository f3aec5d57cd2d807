"""The worker processes' composition roots: `build_task_worker`, `build_timer_worker`,
`build_cleanup_worker`, `build_outbox_worker` and `build_command_worker` each build, on a
core (`infrastructure.bootstrap.build_core`), only what that worker runs: no API keys, no
tenant secrets, no web framework.
"""

from __future__ import annotations

from datetime import timedelta

from application.command_messages import CommandDispatcher
from application.schedules import CatchUp, ScheduleService
from application.tasks import ActivityService, TaskService
from application.timers import TimerService
from infrastructure.actions import ActionRegistry, HttpAction
from infrastructure.bootstrap import (
    build_core,
    cleanup_service,
    cursor_secret,
    instance_service,
    outbox_tables,
)
from infrastructure.container import (
    CleanupWorkerContainer,
    CommandWorkerContainer,
    Core,
    OutboxWorkerContainer,
    TaskWorkerContainer,
    TimerWorkerContainer,
)
from infrastructure.cron import CroniterCalendar
from infrastructure.policies import action_retry_policy, egress_policy
from infrastructure.postgres.activity_queue import PostgresActivityQueue
from infrastructure.postgres.due_timers import PostgresDueTimers
from infrastructure.postgres.queries import PostgresReadModelQueries
from infrastructure.postgres.schedule_cursors import PostgresScheduleCursors
from infrastructure.schemas import JsonSchemaValidator
from infrastructure.settings import Settings
from infrastructure.tracing import enabled as tracing_enabled
from infrastructure.tracing import timer_span


def build_task_worker(settings: Settings, *, core: Core | None = None) -> TaskWorkerContainer:
    """`waymark worker tasks` (or the in-process task worker, on the API's core): the
    activity queue, the action registry and the use case that records results."""
    owns_core = core is None
    core = core or build_core(settings)
    egress = egress_policy(settings)
    http = HttpAction(egress=egress, retry=action_retry_policy(settings))
    actions = ActionRegistry(
        http=http, connections=core.connections, breakers=core.breakers, egress=egress
    )
    return TaskWorkerContainer(
        core=core,
        owns_core=owns_core,
        activity_queue=PostgresActivityQueue(core.datastore),
        actions=actions,
        activities=ActivityService(core.runner),
        _closers=[actions.close],
    )


def build_timer_worker(settings: Settings, *, core: Core | None = None) -> TimerWorkerContainer:
    """`waymark worker timers` (or the in-process timer worker, on the API's core)."""
    owns_core = core is None
    core = core or build_core(settings)
    timers = TimerService(
        core.runner,
        PostgresDueTimers(core.datastore, settings.timer_lease_seconds),
        core.clock,
        sla_escalation=settings.sla_escalation,
        # Traced, each firing is a command of its own in the trace that set its timer.
        group_size=1 if tracing_enabled() else settings.timer_commit_group,
    )
    timers.row_scope = timer_span  # each firing continues the trace that set the timer
    return TimerWorkerContainer(
        core=core, owns_core=owns_core, timers=timers, schedules=build_scheduler(core)
    )


def build_scheduler(core: Core) -> ScheduleService:
    """The cron scheduler of `schedule` triggers, on a core (the timer worker's)."""
    settings = core.settings
    signing = cursor_secret(settings, core.server_key)
    instances = instance_service(
        core, PostgresReadModelQueries(core.datastore, cursor_secret=signing)
    )
    return ScheduleService(
        instances,
        core.definition_store,
        PostgresScheduleCursors(core.datastore),
        CroniterCalendar(),
        core.clock,
        catchup=CatchUp(settings.schedule_catchup),
        grace=timedelta(seconds=settings.schedule_poll_interval + 60),
    )


def build_cleanup_worker(settings: Settings, *, core: Core | None = None) -> CleanupWorkerContainer:
    """`waymark worker cleanup` and `waymark cleanup --once` / `waymark erase`."""
    owns_core = core is None
    core = core or build_core(settings)
    try:
        return CleanupWorkerContainer(core=core, owns_core=owns_core, cleanup=cleanup_service(core))
    except BaseException:
        if owns_core:
            core.close()
        raise


def build_outbox_worker(settings: Settings, *, core: Core | None = None) -> OutboxWorkerContainer:
    """`waymark worker outbox` (or the in-process publisher, on the API's core): the stored
    events to Kafka, behind retries and a circuit breaker. Needs KAFKA_BOOTSTRAP_SERVERS."""
    from infrastructure.kafka import BreakerRule, KafkaConfig, KafkaSink, build_breaker
    from infrastructure.kafka_options import kafka_client_options
    from infrastructure.outbox import OutboxPublisher, RetryPolicy

    if not settings.kafka_bootstrap_servers:
        raise ValueError("KAFKA_BOOTSTRAP_SERVERS is not set: the outbox publisher is off")
    owns_core = core is None
    core = core or build_core(settings)
    outbox = outbox_tables(core)
    breaker = build_breaker(
        BreakerRule(
            failure_ratio=settings.outbox_breaker_failure_ratio,
            min_calls=settings.outbox_breaker_min_calls,
            window=settings.outbox_breaker_window,
            reset_timeout=settings.outbox_breaker_reset_timeout,
        ),
        name=f"kafka:{settings.kafka_topic}",
        on_state=outbox.set_breaker_state,
    )
    sink = KafkaSink(
        KafkaConfig(
            client=kafka_client_options(settings),
            topic=settings.kafka_topic,
            client_id=settings.kafka_client_id,
            idempotent=settings.kafka_idempotent,
            request_timeout=settings.kafka_request_timeout,
            max_request_bytes=settings.kafka_max_request_bytes,
        ),
        breaker,
    )
    publisher = OutboxPublisher(
        outbox,
        sink,
        batch_size=settings.outbox_batch_size,
        retry=RetryPolicy(
            attempts=settings.outbox_retry_attempts,
            initial=settings.outbox_retry_initial_delay,
            multiplier=settings.outbox_retry_multiplier,
            max_delay=settings.outbox_retry_max_delay,
        ),
        breaker=breaker,
    )
    return OutboxWorkerContainer(
        core=core,
        owns_core=owns_core,
        publisher=publisher,
        leadership_name=f"outbox:{outbox.name}",
        _closers=[publisher.close],
    )


# --- the Kafka command consumer (issue 7) -------------------------------------------------


def build_command_worker(settings: Settings, *, core: Core | None = None) -> CommandWorkerContainer:
    """`waymark worker commands`: the Kafka command consumer runs the HTTP API's use cases
    (start, resume, event, cancel, complete task), so validation, admission and error codes
    are the same; it reads no API keys or tenant secrets."""
    from infrastructure.kafka_options import kafka_client_options

    kafka_options = kafka_client_options(settings)  # refuse before starting anything
    owns_core = core is None
    core = core or build_core(settings)
    queries = PostgresReadModelQueries(
        core.datastore, cursor_secret=cursor_secret(settings, core.server_key)
    )
    schemas = JsonSchemaValidator()
    instances = instance_service(core, queries)
    return CommandWorkerContainer(
        core=core,
        owns_core=owns_core,
        commands=CommandDispatcher(instances, TaskService(core.runner, queries, schemas)),
        kafka_options=kafka_options,
    )
