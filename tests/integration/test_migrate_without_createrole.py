"""Migrations run by an owner without CREATEROLE (a managed database's usual user).

Migration 0017 creates the application role only when the migrating user may; otherwise it
warns, names the manual step, and the migration completes. After a database administrator
creates the role and grants it to the owner, the next `waymark migrate` grants it the
tables, and the application runs as it, under row-level security. The role is named by
WAYMARK_DATABASE_APP_ROLE (here a fresh name: `waymark_app` exists cluster-wide already).
Negative control: that owner indeed cannot create a role.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from application import tenant_scope
from application.commands import StartInstance
from infrastructure.embedded_postgres import database_url_for
from infrastructure.postgres.migrate import migrate

pytestmark = pytest.mark.integration

FLOW = {
    "name": "wait",
    "nodes": [{"id": "wait", "type": "wait"}, {"id": "done", "type": "end"}],
    "routes": [{"from": "wait", "to": "done"}],
}


def _as_user(url: str, user: str) -> str:
    if "://" not in url:
        return psycopg.conninfo.make_conninfo(url, user=user, password="")
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


@pytest.fixture
def restricted(postgres_admin_url: str) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:10]
    owner, role, name = f"owner_{suffix}", f"app_{suffix}", f"nocr_{suffix}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOCREATEROLE").format(sql.Identifier(owner)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(owner)
            )
        )
    try:
        yield {
            "owner": owner,
            "role": role,
            "url": _as_user(database_url_for(postgres_admin_url, name), owner),
            "admin": postgres_admin_url,
        }
    finally:
        with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            for r in (role, owner):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(r)))


def _role_exists(admin_url: str, role: str) -> bool:
    with psycopg.connect(admin_url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    return row == (1,)


def test_an_owner_without_createrole_migrates_then_a_manual_step_completes_it(
    restricted: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    url, role, owner = restricted["url"], restricted["role"], restricted["owner"]
    # Negative control: this owner may not create roles (the old 0017 failed here).
    with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))

    with caplog.at_level(logging.WARNING):
        migrate(url, app_role=role)
    assert not _role_exists(restricted["admin"], role)
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert f"CREATE ROLE {role} NOLOGIN" in warned and "waymark migrate" in warned

    # The manual step, as an administrator; then `waymark migrate` again.
    with psycopg.connect(restricted["admin"], autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(owner)))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        migrate(url, app_role=role)
    assert not [r for r in caplog.records if role in r.getMessage()]
    with psycopg.connect(url) as conn:
        privileges = conn.execute(
            "SELECT has_table_privilege(%(r)s, 'instances', 'SELECT'), "
            "has_table_privilege(%(r)s, 'waymark_events', 'INSERT'), "
            "has_table_privilege(%(r)s, 'audit_log', 'DELETE'), "
            "has_table_privilege(%(r)s, 'jobs', 'UPDATE')",
            {"r": role},
        ).fetchone()
    assert privileges == (True, True, False, True)

    # The application, as that role, behind row-level security.
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings

    container: Any = build_api(
        Settings(
            database_url=url,
            database_app_role=role,
            api_keys="k=acme:admin",
            tenant_secrets="acme=s1,globex=s2",
            db_pool_size=2,
        )
    )
    try:
        for tenant in ("acme", "globex"):
            container.definitions.publish(tenant, FLOW)
            container.instances.start(StartInstance(tenant, "wait"))
        with (
            tenant_scope.acting_for("acme"),
            container.core.datastore.transaction(commit=False) as curs,
        ):
            assert curs.execute("SELECT current_user AS u").fetchone()["u"] == role
            seen = curs.execute("SELECT DISTINCT tenant FROM instances").fetchall()
            events = curs.execute("SELECT DISTINCT tenant FROM waymark_events").fetchall()
        assert [r["tenant"] for r in seen] == ["acme"]
        assert [r["tenant"] for r in events] == ["acme"]
    finally:
        container.close()
