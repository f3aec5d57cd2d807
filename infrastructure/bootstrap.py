"""The composition roots: `build_core` builds what every process shares; `build_api`,
`build_task_worker` and `build_timer_worker` build, on a core, only what that process runs
(a worker reads no API keys or tenant secrets and imports no web framework).

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

from eventsourcing.postgres import PostgresDatastore

from application.admission import StartAdmission
from application.analytics import AnalyticsService
from application.callbacks import CallbackService
from application.definitions import DefinitionCache, DefinitionService
from application.instances import InstanceService, KeyedIds
from application.session import CommandRunner
from application.tasks import ActivityService, TaskService
from application.templates import TemplateService
from application.timers import TimerService
from application.webhooks import WebhookService
from infrastructure.actions import ActionRegistry, HttpAction
from infrastructure.actions.breakers import BreakerRule, CircuitBreakers
from infrastructure.actions.outbound import EgressPolicy, RetryPolicy
from infrastructure.clock import SystemClock
from infrastructure.container import (
    Container,
    Core,
    Principal,
    TaskWorkerContainer,
    TimerWorkerContainer,
    close_all,
)
from infrastructure.embedded_postgres import EmbeddedPostgres
from infrastructure.postgres.activity_queue import PostgresActivityQueue
from infrastructure.postgres.analytics import PostgresAnalyticsQueries
from infrastructure.postgres.datastore import build_datastore
from infrastructure.postgres.definition_store import PostgresDefinitionStore
from infrastructure.postgres.due_timers import PostgresDueTimers
from infrastructure.postgres.event_store import WaymarkApplication
from infrastructure.postgres.instance_store import PostgresInstanceStore
from infrastructure.postgres.migrate import check_revisions, check_schema, migrate, read_revisions
from infrastructure.postgres.queries import PostgresReadModelQueries
from infrastructure.postgres.recorder import WriteLimits
from infrastructure.postgres.server_secrets import KEYED_INSTANCE_IDS, server_secret
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
        migrate(database_url)
        log.warning("no DATABASE_URL: using the embedded PostgreSQL in %s", settings.data_dir)
    else:
        prepare_schema(settings)

    datastore = build_datastore(
        database_url,
        pool_size=settings.db_pool_size,
        connect_timeout=settings.db_connect_timeout,
        statement_timeout=settings.db_statement_timeout,
        lock_timeout=settings.db_lock_timeout,
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

    def check_database() -> None:
        # Reachable, and at the schema revision this code expects (else SchemaNotCurrentError).
        with datastore.transaction(commit=False) as curs:
            check_revisions(read_revisions(curs))

    return Core(
        breakers=CircuitBreakers(breaker_rule(settings)),
        settings=settings,
        clock=clock,
        datastore=datastore,
        store=store,
        definition_store=definition_store,
        cache=cache,
        admission=admission,
        runner=CommandRunner(store, cache, admission, clock),
        server_key=server_key,
        database_url=database_url,
        check_database=check_database,
        _closers=closers,
    )


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
    # Generated by the migrations, once per database: every replica derives the same ids.
    keyed_ids = KeyedIds(core.server_key)
    due_timers = PostgresDueTimers(datastore, settings.timer_lease_seconds)
    instances = InstanceService(
        core.runner,
        core.store,
        core.cache,
        core.definition_store,
        queries,
        core.admission,
        keyed_ids,
        timers=due_timers,
    )
    secrets = _tenant_secrets(settings)
    definitions = DefinitionService(core.definition_store, schemas)
    return Container(
        core=core,
        owns_core=owns_core,
        definitions=definitions,
        instances=instances,
        tasks=TaskService(core.runner, queries, schemas),
        callbacks=CallbackService(instances, queries, secrets.get, clock),
        webhooks=WebhookService(instances, core.cache, core.admission, secrets.get, clock),
        templates=TemplateService(PackagedTemplateCatalog(), definitions),
        analytics=AnalyticsService(PostgresAnalyticsQueries(datastore), clock),
        timers=TimerService(core.runner, due_timers, clock),
        api_keys=_api_keys(settings),
    )


def build_task_worker(settings: Settings, *, core: Core | None = None) -> TaskWorkerContainer:
    """`waymark worker tasks` (or the in-process task worker, on the API's core): the
    activity queue, the action registry and the use case that records results."""
    owns_core = core is None
    core = core or build_core(settings)
    egress = egress_policy(settings)
    http = HttpAction(egress=egress, retry=action_retry_policy(settings))
    actions = ActionRegistry(http=http, breakers=core.breakers, egress=egress)
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
        core.runner, PostgresDueTimers(core.datastore, settings.timer_lease_seconds), core.clock
    )
    return TimerWorkerContainer(core=core, owns_core=owns_core, timers=timers)


def bootstrap(settings: Settings) -> Container:
    """The API process's container (`build_api` on a core of its own)."""
    return build_api(settings)


def prepare_schema(settings: Settings) -> None:
    """Production: migrate if WAYMARK_AUTO_MIGRATE, else refuse a schema not at the head."""
    if settings.database_url is None:
        return  # development: bootstrap migrates the embedded database
    if settings.auto_migrate:
        migrate(settings.database_url)
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


def breaker_rule(settings: Settings) -> BreakerRule:
    """The circuit-breaker rule of `WAYMARK_BREAKER_*` (SPEC §6 defaults)."""
    return BreakerRule(
        failure_ratio=settings.breaker_failure_ratio,
        min_calls=settings.breaker_min_calls,
        window_seconds=settings.breaker_window_seconds,
        open_seconds=settings.breaker_open_seconds,
    )


def action_retry_policy(settings: Settings) -> RetryPolicy:
    """Tries of transient errors inside one attempt (`WAYMARK_ACTION_RETRY_*`)."""
    return RetryPolicy(
        attempts=settings.action_retry_attempts,
        initial=settings.action_retry_initial,
        backoff=settings.action_retry_backoff,
    )


def egress_policy(settings: Settings) -> EgressPolicy:
    """Production refuses internal addresses unless `WAYMARK_EGRESS_ALLOW` names them."""
    return EgressPolicy.parse(
        settings.egress_allow, production=not settings.dev_mode, guard=settings.egress_guard
    )
