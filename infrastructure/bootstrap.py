"""The composition root: builds a process's Container from Settings.

With no DATABASE_URL (development), it starts the embedded PostgreSQL in the data directory
and applies the migrations; in production the migrations are a separate `waymark migrate`.
"""

from __future__ import annotations

import hashlib
import logging

from application.admission import StartAdmission
from application.analytics import AnalyticsService
from application.callbacks import CallbackService
from application.definitions import DefinitionCache, DefinitionService
from application.instances import InstanceService
from application.session import CommandRunner
from application.tasks import ActivityService, TaskService
from application.templates import TemplateService
from application.timers import TimerService
from application.webhooks import WebhookService
from infrastructure.actions import ActionRegistry
from infrastructure.clock import SystemClock
from infrastructure.container import Container, Principal
from infrastructure.embedded_postgres import EmbeddedPostgres
from infrastructure.postgres.activity_queue import PostgresActivityQueue
from infrastructure.postgres.analytics import PostgresAnalyticsQueries
from infrastructure.postgres.datastore import build_datastore
from infrastructure.postgres.definition_store import PostgresDefinitionStore
from infrastructure.postgres.due_timers import PostgresDueTimers
from infrastructure.postgres.event_store import WaymarkApplication
from infrastructure.postgres.instance_store import PostgresInstanceStore
from infrastructure.postgres.migrate import migrate
from infrastructure.postgres.queries import PostgresReadModelQueries
from infrastructure.schemas import JsonSchemaValidator
from infrastructure.settings import Settings
from infrastructure.template_catalog import PackagedTemplateCatalog

log = logging.getLogger(__name__)

DEV_API_KEY = "dev"
DEV_TENANT = "default"
DEV_SECRET = "dev-secret"  # noqa: S105 - development only, logged as a warning


def bootstrap(settings: Settings) -> Container:
    """Build every service of the process; `container.close()` releases them."""
    closers = []
    database_url = settings.database_url
    if database_url is None:
        embedded = EmbeddedPostgres(settings.data_dir)
        database_url = embedded.start()
        closers.append(embedded.stop)
        migrate(database_url)
        log.warning("no DATABASE_URL: using the embedded PostgreSQL in %s", settings.data_dir)

    datastore = build_datastore(
        database_url,
        pool_size=settings.db_pool_size,
        connect_timeout=settings.db_connect_timeout,
    )
    closers.append(datastore.close)
    app = WaymarkApplication(datastore)

    clock = SystemClock()
    schemas = JsonSchemaValidator()
    definition_store = PostgresDefinitionStore(datastore)
    queries = PostgresReadModelQueries(datastore)
    store = PostgresInstanceStore(app)
    cache = DefinitionCache(definition_store)
    admission = StartAdmission(definition_store, cache, schemas)
    runner = CommandRunner(store, cache, admission, clock)
    due_timers = PostgresDueTimers(datastore)
    instances = InstanceService(
        runner, store, cache, definition_store, queries, admission, timers=due_timers
    )
    secrets = _tenant_secrets(settings)
    actions = ActionRegistry()
    closers.append(actions.close)

    def check_database() -> None:
        with datastore.transaction(commit=False) as curs:
            curs.execute("SELECT 1")

    definitions = DefinitionService(definition_store, schemas)
    return Container(
        settings=settings,
        clock=clock,
        definitions=definitions,
        instances=instances,
        tasks=TaskService(runner, queries, schemas),
        callbacks=CallbackService(instances, queries, secrets.get, clock),
        webhooks=WebhookService(instances, cache, admission, secrets.get, clock),
        activities=ActivityService(runner),
        timers=TimerService(runner, due_timers, clock),
        templates=TemplateService(PackagedTemplateCatalog(), definitions),
        analytics=AnalyticsService(PostgresAnalyticsQueries(datastore), clock),
        activity_queue=PostgresActivityQueue(datastore),
        actions=actions,
        api_keys=_api_keys(settings),
        runner=runner,
        database_url=database_url,
        check_database=check_database,
        _closers=closers,
    )


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
