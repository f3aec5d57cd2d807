"""Row-level security is a second wall behind the queries' tenant filters (migration 0017).

The application connects as `waymark_app` (a role the policies apply to) and every checkout
carries the tenant it acts for; a query written without its `WHERE tenant = ...` still sees
only that tenant's rows. The owner (migrations) is the negative control: it sees them all.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest
from eventsourcing.persistence import PersistenceError

from application import tenant_scope
from application.commands import StartInstance
from application.errors import InstanceNotFoundError
from infrastructure.postgres.datastore import build_datastore

pytestmark = pytest.mark.integration

APPROVAL = {
    "name": "approve",
    "nodes": [
        {"id": "approve", "type": "approval", "approver_role": "manager"},
        {"id": "wait", "type": "wait"},
        {"id": "done", "type": "end"},
    ],
    "routes": [
        {"from": "approve", "to": "wait", "outcome": "approved"},
        {"from": "approve", "to": "done", "outcome": "rejected"},
        {"from": "wait", "to": "done"},
    ],
}
READ_MODELS = ("definitions", "instances", "tasks", "bookmarks")


@pytest.fixture
def container(database_url: str) -> Iterator[Any]:
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings

    built = build_api(
        Settings(
            database_url=database_url,
            api_keys="k=acme:admin,g=globex:admin",
            tenant_secrets="acme=s1,globex=s2",
            db_pool_size=2,
        )
    )
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def two_tenants(container: Any) -> dict[str, UUID]:
    started = {}
    for tenant in ("acme", "globex"):
        container.definitions.publish(tenant, APPROVAL)
        view, _ = container.instances.start(StartInstance(tenant, "approve"))
        started[tenant] = UUID(view["id"])
    return started


def tenants_seen(datastore: Any, table: str) -> set[str]:
    with datastore.transaction(commit=False) as curs:
        # Deliberately no tenant filter: only the policies stand between us and globex.
        curs.execute(f"SELECT DISTINCT tenant FROM {table}")  # noqa: S608 - constant names
        return {row["tenant"] for row in curs.fetchall()}


def test_an_unfiltered_query_as_the_app_role_sees_only_the_scoped_tenant(
    container: Any, two_tenants: dict[str, UUID], database_url: str
) -> None:
    datastore = container.core.datastore
    with tenant_scope.acting_for("acme"):
        for table in READ_MODELS:
            assert tenants_seen(datastore, table) == {"acme"}, table
    with tenant_scope.acting_for("globex"):
        for table in READ_MODELS:
            assert tenants_seen(datastore, table) == {"globex"}, table
    # The system scope (workers) sees every tenant, as the same role.
    for table in READ_MODELS:
        assert tenants_seen(datastore, table) == {"acme", "globex"}, table

    # Negative control: the owner (what the app was before RLS) ignores the policies.
    owner = build_datastore(database_url, pool_size=1)
    try:
        with tenant_scope.acting_for("acme"):
            for table in READ_MODELS:
                assert tenants_seen(owner, table) == {"acme", "globex"}, table
    finally:
        owner.close()


def test_the_application_cannot_read_another_tenants_instance_even_when_it_asks(
    container: Any, two_tenants: dict[str, UUID]
) -> None:
    # The use case filters by "globex" itself; the scope (acme's request) still hides it.
    with tenant_scope.acting_for("acme"), pytest.raises(InstanceNotFoundError):
        container.instances.get("globex", two_tenants["globex"])
    with tenant_scope.acting_for("globex"):
        assert container.instances.get("globex", two_tenants["globex"])


def test_rows_of_another_tenant_cannot_be_written_in_a_tenant_scope(container: Any) -> None:
    with tenant_scope.acting_for("acme"), pytest.raises(PersistenceError, match="row-level"):
        container.definitions.publish("globex", APPROVAL)
    with tenant_scope.acting_for("acme"):
        assert container.definitions.publish("acme", APPROVAL).version == 1


def test_without_a_scope_setting_the_app_role_sees_nothing(
    two_tenants: dict[str, UUID], database_url: str
) -> None:
    with psycopg.connect(database_url, options="-c role=waymark_app") as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("waymark_app",)
        for table in READ_MODELS:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)  # noqa: S608


def test_every_tenant_owned_table_has_the_policy_and_the_role_cannot_bypass_it(
    database_url: str,
) -> None:
    with psycopg.connect(database_url) as conn:
        tables = {
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND column_name = 'tenant'"
            )
        }
        protected = {
            row[0]
            for row in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_policy p ON p.polrelid = c.oid "
                "WHERE c.relrowsecurity AND p.polname = 'tenant_isolation'"
            )
        }
        role = conn.execute(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'waymark_app'"
        ).fetchone()
    assert tables >= set(READ_MODELS) | {"audit_log"}
    assert tables - protected == set(), "tenant-owned tables without row-level security"
    assert role == (False, False)
