"""The composition roots: `build_core` builds what every process shares; `build_api`
builds, on a core, only what the API process runs (the workers' roots, which read no API
keys or tenant secrets and import no web framework, are in `worker_bootstrap.py`).

With no DATABASE_URL (development), `build_core` starts the embedded PostgreSQL in the data
directory and applies the migrations; in production the migrations are a separate `waymark
migrate` (or, with WAYMARK_AUTO_MIGRATE=true, applied here), and a database whose schema is
not at the expected revision is refused (`SchemaNotCurrentError`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

from eventsourcing.persistence import Mapper
from eventsourcing.postgres import PostgresDatastore

from application.admission import StartAdmission
from application.analytics import AnalyticsService
from application.bulk import ACTIONS as BULK_ACTIONS
from application.bulk import BulkService
from application.callbacks import CallbackService
from application.cleanup import CleanupService
from application.connections import ConnectionCatalog, ConnectionService, NoConnections
from application.definitions import DefinitionCache, DefinitionService
from application.delivery import EventDelivery
from application.feed import EventFeed
from application.instances import InstanceService, KeyedIds
from application.job_recovery import JobRecovery
from application.modification import MIGRATION_JOB, ModificationService
from application.outbox import OutboxService
from application.ports import Clock
from application.recovery import RecoveryService
from application.replay_check import ReplayChecker
from application.runner import CommandRunner
from application.simulation import SimulationService
from application.task_links import TaskLinkService, TaskLinkSigner
from application.tasks import TaskService
from application.templates import TemplateService
from application.timers import TimerService
from application.webhooks import WebhookService
from domain.env import ForEachLimits
from infrastructure.actions.breakers import CircuitBreakers
from infrastructure.clock import SystemClock
from infrastructure.connections import FileConnections
from infrastructure.container import (
    Container,
    Core,
    Principal,
    close_all,
)
from infrastructure.cron import CroniterCalendar
from infrastructure.embedded_postgres import EmbeddedPostgres
from infrastructure.observability import observe_core
from infrastructure.policies import (
    breaker_rule,
    cleanup_policy,
    committer_of,
    instance_cache_of,
)
from infrastructure.postgres.analytics import PostgresAnalyticsQueries
from infrastructure.postgres.audit import PostgresAuditLog
from infrastructure.postgres.cleanup import PostgresCleanupStore
from infrastructure.postgres.datastore import build_datastore
from infrastructure.postgres.definition_store import PostgresDefinitionStore
from infrastructure.postgres.due_timers import PostgresDueTimers
from infrastructure.postgres.event_store import WaymarkApplication
from infrastructure.postgres.feed import PostgresEventFeed
from infrastructure.postgres.feed_wakeups import FeedWakeups
from infrastructure.postgres.incidents import PostgresIncidentQueries
from infrastructure.postgres.instance_store import PostgresInstanceStore
from infrastructure.postgres.jobs import PostgresJobStore
from infrastructure.postgres.migrate import check_revisions, check_schema, migrate, read_revisions
from infrastructure.postgres.outbox import PostgresOutbox
from infrastructure.postgres.queries import PostgresReadModelQueries
from infrastructure.postgres.recorder import WriteLimits
from infrastructure.postgres.replay_check import PostgresReplaySource
from infrastructure.postgres.server_secrets import KEYED_INSTANCE_IDS, server_secret
from infrastructure.postgres.task_links import PostgresUsedTaskLinks
from infrastructure.schemas import JsonSchemaValidator
from infrastructure.settings import Settings
from infrastructure.template_catalog import PackagedTemplateCatalog

log = logging.getLogger(__name__)

DEV_API_KEY = "dev"
DEV_TENANT = "default"
DEV_SECRET = "dev-secret"  # noqa: S105 - development only, logged as a warning


def build_core(settings: Settings) -> Core:
    """The parts every process shares: the database (embedded in development), the pool,
    the event store, the definition cache and the command runner; `core.close()` releases
    them."""
    closers: list[Callable[[], None]] = []
    database_url = settings.database_url
    if database_url is None:
        embedded = EmbeddedPostgres(settings.data_dir)
        database_url = embedded.start()
        closers.append(embedded.stop)
        migrate(database_url, settings.database_app_role)
        log.warning("no DATABASE_URL: using the embedded PostgreSQL in %s", settings.data_dir)
    else:
        prepare_schema(settings)

    datastore = build_datastore(
        database_url,
        pool_size=settings.db_pool_size,
        connect_timeout=settings.db_connect_timeout,
        statement_timeout=settings.db_statement_timeout,
        lock_timeout=settings.db_lock_timeout,
        app_role=settings.database_app_role or None,
    )
    closers.append(datastore.close)
    try:
        return _core_on(settings, datastore, database_url, closers)
    except BaseException:
        close_all(closers)  # e.g. no server secret: stop the pool (and embedded server)
        raise


def _core_on(
    settings: Settings,
    datastore: PostgresDatastore,
    database_url: str,
    closers: list[Callable[[], None]],
) -> Core:
    app = WaymarkApplication(
        datastore,
        limits=WriteLimits(settings.max_event_bytes, settings.max_command_bytes),
    )
    clock = SystemClock()
    server_key = server_secret(datastore, KEYED_INSTANCE_IDS)
    definition_store = PostgresDefinitionStore(
        datastore, cursor_secret=cursor_secret(settings, server_key)
    )
    store = PostgresInstanceStore(app)
    cache = DefinitionCache(definition_store)
    admission = StartAdmission(definition_store, cache, JsonSchemaValidator())
    # `emit` actions deliver their event inside the command that reaches them.
    delivery = EventDelivery(
        PostgresReadModelQueries(datastore, cursor_secret=cursor_secret(settings, server_key)),
        definition_store,
        admission,
    )

    def check_database() -> None:
        # Reachable, and at the schema revision this code expects (else SchemaNotCurrentError).
        with datastore.transaction(commit=False) as curs:
            check_revisions(read_revisions(curs))

    core = Core(
        breakers=CircuitBreakers(breaker_rule(settings)),
        settings=settings,
        clock=clock,
        datastore=datastore,
        store=store,
        definition_store=definition_store,
        cache=cache,
        admission=admission,
        runner=CommandRunner(
            store,
            cache,
            admission,
            clock,
            delivery=delivery,
            public_url=settings.public_url,
            for_each=ForEachLimits(settings.for_each_max_items, settings.for_each_batch_size),
            max_depth=settings.max_sub_workflow_depth,
            committer=committer_of(settings, store),
            task_link=task_link_signer(settings, server_key).token,
            cache=instance_cache_of(settings),
        ),
        connections=_connections(settings),
        server_key=server_key,
        database_url=database_url,
        check_database=check_database,
        _closers=closers,
    )
    observe_core(core)  # metrics (infrastructure/observability.py)
    return core


def build_api(settings: Settings, *, core: Core | None = None) -> Container:
    """The API process: the use cases behind the routes, API keys and tenant secrets.

    Without `core`, it builds one and closes it with the container."""
    owns_core = core is None
    core = core or build_core(settings)
    try:
        return _api_on(core, owns_core)
    except BaseException:
        if owns_core:
            core.close()
        raise


def _api_on(core: Core, owns_core: bool) -> Container:
    settings, datastore, clock = core.settings, core.datastore, core.clock
    schemas = JsonSchemaValidator()
    signing = cursor_secret(settings, core.server_key)
    queries = PostgresReadModelQueries(datastore, cursor_secret=signing)
    # One job store per process: its lease owner is this process (application/jobs.py).
    jobs = PostgresJobStore(datastore, lease_seconds=settings.job_lease_seconds)
    # Generated by the migrations, once per database: every replica derives the same ids.
    keyed_ids = KeyedIds(core.server_key)
    due_timers = PostgresDueTimers(datastore, settings.timer_lease_seconds)
    instances = instance_service(core, queries, keyed_ids, timers=due_timers)
    secrets = _tenant_secrets(settings)
    definitions = DefinitionService(
        core.definition_store,
        schemas,
        connections=core.connections,
        calendar=CroniterCalendar(),
        cache=core.cache,
    )
    feed_wakeups = (
        FeedWakeups.for_database(core.database_url) if settings.feed_listen else FeedWakeups()
    )
    container = Container(
        core=core,
        owns_core=owns_core,
        definitions=definitions,
        instances=instances,
        tasks=TaskService(core.runner, queries, schemas),
        callbacks=CallbackService(
            instances, core.store, secrets.get, clock, cache=core.runner.cache
        ),
        webhooks=WebhookService(instances, core.cache, core.admission, secrets.get, clock, queries),
        templates=TemplateService(PackagedTemplateCatalog(), definitions),
        analytics=AnalyticsService(PostgresAnalyticsQueries(datastore), clock),
        timers=TimerService(
            core.runner,
            due_timers,
            clock,
            sla_escalation=settings.sla_escalation,
            group_size=settings.timer_commit_group,
        ),
        api_keys=_api_keys(settings),
        connections=ConnectionService(core.connections),
        feed=EventFeed(PostgresEventFeed(datastore, _mapper(core))),
        feed_wakeups=feed_wakeups,
        cleanup=cleanup_service(core, signing),
        outbox=OutboxService(outbox_tables(core)),
        audit=PostgresAuditLog(datastore, cursor_secret=signing),
        modification=modification_service(core, queries, jobs),
        simulation=SimulationService(core.cache, clock.now),
    )
    container.recovery = recovery_service(core, signing, queries)
    container.bulk = BulkService(
        core.runner,
        queries,
        jobs,
        container.instances,
        container.recovery,
        batch_size=settings.migration_batch_size,
    )
    container.job_recovery = job_recovery(jobs, container, clock)
    container.task_links = TaskLinkService(
        task_link_signer(settings, core.server_key),
        PostgresUsedTaskLinks(datastore),
        container.tasks,
        clock,
    )
    container._closers.append(feed_wakeups.close)
    return container


def _connections(settings: Settings) -> ConnectionCatalog:
    """WAYMARK_CONNECTIONS_FILE, read once (a broken file stops the process at start)."""
    if settings.connections_file is None:
        return NoConnections()
    return FileConnections.from_file(settings.connections_file)


def bootstrap(settings: Settings) -> Container:
    """The API process's container (`build_api` on a core of its own)."""
    return build_api(settings)


def prepare_schema(settings: Settings) -> None:
    """Production: migrate if WAYMARK_AUTO_MIGRATE, else refuse a schema not at the head."""
    if settings.database_url is None:
        return  # development: bootstrap migrates the embedded database
    if settings.auto_migrate:
        migrate(settings.database_url, settings.database_app_role)
        log.info("WAYMARK_AUTO_MIGRATE: the database schema is up to date")
    else:
        check_schema(settings.database_url, connect_timeout=settings.db_connect_timeout)


def cursor_secret(settings: Settings, server_key: bytes) -> bytes:
    """The key that signs pagination cursors: WAYMARK_CURSOR_SECRET, else derived from the
    database's server secret (generated by the migrations), so every replica agrees with no
    configuration and the key is never guessable from settings."""
    if settings.cursor_secret:
        return settings.cursor_secret.encode()
    return hmac.new(server_key, b"waymark-cursors-v1", "sha256").digest()


def task_link_signer(settings: Settings, server_key: bytes) -> TaskLinkSigner:
    """Signs and checks approve/reject links: a key derived from the server secret (every
    replica agrees; never the cursor or instance-id key itself)."""
    key = hmac.new(server_key, b"waymark-task-links-v1", "sha256").digest()
    return TaskLinkSigner(key, timedelta(seconds=settings.task_link_ttl_seconds))


def _api_keys(settings: Settings) -> dict[str, Principal]:
    keys = {
        key: Principal(key_name=_key_name(key), tenant=tenant, roles=frozenset(roles))
        for key, (tenant, roles) in settings.parsed_api_keys().items()
    }
    if not keys and settings.database_url is None:
        log.warning(
            "WAYMARK_API_KEYS is not set: the development key %r maps to tenant %r, role admin",
            DEV_API_KEY,
            DEV_TENANT,
        )
        keys[DEV_API_KEY] = Principal(DEV_API_KEY, DEV_TENANT, frozenset({"admin"}))
    elif not keys:
        log.error("WAYMARK_API_KEYS is not set: every authenticated request will be refused")
    return keys


def _key_name(key: str) -> str:
    """A stable, non-secret name for an API key (who completed a task, in logs)."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:10]


def _tenant_secrets(settings: Settings) -> dict[str, str]:
    secrets = settings.parsed_tenant_secrets()
    if not secrets and settings.database_url is None:
        log.warning(
            "WAYMARK_TENANT_SECRETS is not set: tenant %r signs callbacks with %r",
            DEV_TENANT,
            DEV_SECRET,
        )
        secrets[DEV_TENANT] = DEV_SECRET
    return secrets


def _mapper(core: Core) -> Mapper[UUID]:
    """The event store's mapper (decodes stored events), from the core's PostgreSQL store."""
    if not isinstance(core.store, PostgresInstanceStore):
        raise TypeError(f"the event feed needs the PostgreSQL instance store, not {core.store!r}")
    return core.store.app.mapper


def cleanup_service(core: Core, signing: bytes | None = None) -> CleanupService:
    store = PostgresCleanupStore(
        core.datastore,
        core.database_url,
        cursor_secret=signing or cursor_secret(core.settings, core.server_key),
    )
    return CleanupService(store, core.clock, cleanup_policy(core.settings))


# --- the outbox publisher (issue 7) --------------------------------------------------------


def outbox_tables(core: Core) -> PostgresOutbox:
    """The outbox's tables and event-store reads, decoding events with the store's mapper."""
    from infrastructure.postgres.instance_store import PostgresInstanceStore

    if not isinstance(core.store, PostgresInstanceStore):
        raise TypeError("the outbox reads the PostgreSQL event store")
    return PostgresOutbox(core.datastore, core.store.app.mapper)


def instance_service(
    core: Core,
    queries: PostgresReadModelQueries,
    keyed_ids: KeyedIds | None = None,
    *,
    timers: PostgresDueTimers | None = None,
) -> InstanceService:
    """The instance use cases on a core (the API, the scheduler and the command consumer
    start and steer instances alike); keyed ids come from the database's server secret."""
    return InstanceService(
        core.runner,
        core.store,
        core.cache,
        core.definition_store,
        queries,
        core.admission,
        keyed_ids or KeyedIds(core.server_key),
        timers=timers,
    )


def recovery_service(
    core: Core, cursor_signing: bytes, queries: PostgresReadModelQueries
) -> RecoveryService:
    """Incidents, retry/skip and time travel (application.recovery) on a core."""
    return RecoveryService(
        core.runner,
        core.store,
        PostgresIncidentQueries(core.datastore, cursor_secret=cursor_signing),
        queries,  # the idempotency records of keyed retries and skips
    )


def replay_checker(core: Core) -> ReplayChecker:
    """`waymark replay-check`: stored instances rebuilt with this code vs their read model."""
    return ReplayChecker(PostgresReplaySource(core.datastore, core.store))


def modification_service(
    core: Core, queries: PostgresReadModelQueries, jobs: PostgresJobStore
) -> ModificationService:
    """Instance modification and version-migration jobs (the `jobs` table, migration 0019)."""
    return ModificationService(
        core.runner,
        core.store,
        core.cache,
        queries,
        jobs,
        batch_size=core.settings.migration_batch_size,
    )


def job_recovery(jobs: PostgresJobStore, container: Container, clock: Clock) -> JobRecovery:
    """Resumes the jobs of processes that died (application.job_recovery), by kind."""
    assert container.modification is not None and container.bulk is not None
    bulk = container.bulk
    runners = {MIGRATION_JOB: container.modification.run_migration}
    runners.update({f"bulk-{action}": bulk.run for action in BULK_ACTIONS})
    return JobRecovery(jobs, runners, clock.now)
