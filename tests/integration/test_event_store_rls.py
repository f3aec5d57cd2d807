"""The event store's second wall (migration 0021): `waymark_events.tenant` and its policy.

Workers run in the system scope and the group committer stores several tenants' commits in
one transaction, so the tenant of an event cannot come from the connection's scope: the
recorder writes it from the instance rows of the projection. These tests check that every
stored event carries its instance's tenant whoever stored it, that a query on the events
without any tenant filter sees only the scope's tenant (the owner, the negative control,
sees all), that a tenant's scope cannot write another tenant's (or an untagged) event, and
that the migration backfills the events stored before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from alembic import command

from application import tenant_scope
from application.commands import StartInstance
from infrastructure.postgres.datastore import build_datastore
from infrastructure.postgres.migrate import alembic_config, migrate

pytestmark = pytest.mark.integration

FLOW = {
    "name": "wait",
    "nodes": [{"id": "wait", "type": "wait"}, {"id": "done", "type": "end"}],
    "routes": [{"from": "wait", "to": "done"}],
}
TENANTS = ("acme", "globex")


@pytest.fixture
def container(database_url: str) -> Iterator[Any]:
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings

    built = build_api(
        Settings(
            database_url=database_url,
            api_keys="k=acme:admin,g=globex:admin",
            tenant_secrets="acme=s1,globex=s2",
            db_pool_size=4,
        )
    )
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def started(container: Any) -> dict[str, UUID]:
    ids = {}
    for tenant in TENANTS:
        container.definitions.publish(tenant, FLOW)
        # In the system scope, as a worker or a signed callback would store them.
        view, _ = container.instances.start(StartInstance(tenant, "wait"))
        ids[tenant] = UUID(view["id"])
    return ids


def _event_tenants(datastore: Any) -> set[str | None]:
    with datastore.transaction(commit=False) as curs:
        # Deliberately no tenant filter and no join with instances.
        curs.execute("SELECT DISTINCT tenant FROM waymark_events")
        return {row["tenant"] for row in curs.fetchall()}


def _untagged_or_wrong(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT e.originator_id, e.tenant, i.tenant FROM waymark_events e "
            "LEFT JOIN instances i ON i.id = e.originator_id "
            "WHERE e.tenant IS DISTINCT FROM i.tenant"
        ).fetchall()


def test_an_unfiltered_query_on_the_events_sees_only_the_scoped_tenant(
    container: Any, started: dict[str, UUID], database_url: str
) -> None:
    datastore = container.core.datastore
    for tenant in TENANTS:
        with tenant_scope.acting_for(tenant):
            assert _event_tenants(datastore) == {tenant}
    with tenant_scope.acting_for("acme"), datastore.transaction(commit=False) as curs:
        # Even asked for by id, globex's events are not there for acme.
        curs.execute(
            "SELECT count(*) AS n FROM waymark_events WHERE originator_id = %s",
            (started["globex"],),
        )
        assert curs.fetchone()["n"] == 0
    assert _event_tenants(datastore) == set(TENANTS)  # the system scope: workers

    # Negative control: the owner, whom the policy does not apply to, sees both.
    owner = build_datastore(database_url, pool_size=1)
    try:
        with tenant_scope.acting_for("acme"):
            assert _event_tenants(owner) == set(TENANTS)
    finally:
        owner.close()
    assert _untagged_or_wrong(database_url) == []


def test_a_group_commit_of_several_tenants_tags_each_event_with_its_own(
    container: Any, started: dict[str, UUID], database_url: str
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def start(i: int) -> None:
        container.instances.start(StartInstance(TENANTS[i % 2], "wait", input={"i": i}))

    groups = container.core.runner.committer.groups
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(start, range(40)))
    # Some commits were grouped (fewer transactions than commits), across both tenants.
    assert container.core.runner.committer.groups - groups < 40
    assert _untagged_or_wrong(database_url) == []


def _insert_as_app(url: str, scope: str, tenant: str | None) -> None:
    with psycopg.connect(url, options="-c role=waymark_app") as conn:
        conn.execute("SELECT set_config('waymark.tenant', %s, true)", (scope,))
        conn.execute(
            "INSERT INTO waymark_events (originator_id, originator_version, topic, state, tenant) "
            "VALUES (%s, 1, 't', '\\x00', %s)",
            (uuid4(), tenant),
        )


def test_a_tenant_scope_cannot_write_another_tenants_or_an_untagged_event(
    database_url: str,
) -> None:
    for tenant in ("globex", None):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            _insert_as_app(database_url, "acme", tenant)
    _insert_as_app(database_url, "acme", "acme")  # its own: allowed
    _insert_as_app(database_url, "*", None)  # the system scope may (a library-only insert)


def test_the_feed_head_is_global_in_a_tenant_scope(
    container: Any, started: dict[str, UUID]
) -> None:
    from infrastructure.postgres.feed import PostgresEventFeed

    feed = PostgresEventFeed(container.core.datastore, container.core.store.app.mapper)
    system_head = feed.head()
    with tenant_scope.acting_for("acme"):
        # Globex started last: acme's own events end below the head, which still counts.
        assert feed.head() == system_head
        entries = feed.events_after("acme", 0, 100).entries
    assert entries and {e.tenant for e in entries} == {"acme"}
    with (
        tenant_scope.acting_for("acme"),
        container.core.datastore.transaction(commit=False) as curs,
    ):
        # Negative control: the policy hides globex's later events from a plain max().
        curs.execute("SELECT max(notification_id) AS top FROM waymark_events")
        assert curs.fetchone()["top"] < system_head


def test_the_migration_backfills_the_events_stored_before_it(
    container: Any, started: dict[str, UUID], database_url: str
) -> None:
    container.close()
    command.downgrade(alembic_config(database_url), "0020")
    with psycopg.connect(database_url) as conn:
        columns = conn.execute(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 'waymark_events' AND column_name = 'tenant'"
        ).fetchone()
        stored = conn.execute("SELECT count(*) FROM waymark_events").fetchone()
    assert columns == (0,) and stored is not None and stored[0] > 0
    migrate(database_url)
    assert _untagged_or_wrong(database_url) == []
    with psycopg.connect(database_url) as conn:
        tagged = conn.execute(
            "SELECT tenant, count(*) FROM waymark_events GROUP BY tenant ORDER BY tenant"
        ).fetchall()
    assert [t for t, _ in tagged] == list(TENANTS)


def test_an_event_saved_without_a_projection_takes_its_instances_tenant(
    container: Any, started: dict[str, UUID], database_url: str
) -> None:
    from eventsourcing.persistence import StoredEvent

    recorder = container.core.store.app.recorder
    orphan = uuid4()
    recorder.insert_events(
        [
            StoredEvent(started["globex"], 1000, "x", b"\x00"),  # no instance row given
            StoredEvent(orphan, 1, "x", b"\x00"),  # no instance at all
        ]
    )
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT originator_id, tenant FROM waymark_events WHERE originator_version = 1000 "
            "OR originator_id = %s ORDER BY notification_id",
            (orphan,),
        ).fetchall()
    assert rows == [(started["globex"], "globex"), (orphan, None)]
    # An untagged event is the system scope's only.
    with tenant_scope.acting_for("globex"):
        assert None not in _event_tenants(container.core.datastore)
