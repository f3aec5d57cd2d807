"""A production process refuses a database whose schema is not at the head revision (or
migrates it when WAYMARK_AUTO_MIGRATE=true), and readiness checks the revision."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from infrastructure.postgres.migrate import expected_revisions
from tests.conftest import _create_database, _drop_database
from tests.e2e.cli_support import empty_database
from tests.e2e.cli_support import run as run_cli
from tests.e2e.conftest import _free_port, server_env, serving, wait_for

pytestmark = pytest.mark.e2e


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env, timeout=60)


@pytest.fixture
def empty_database_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh database with no schema at all."""
    with empty_database(postgres_admin_url, "e2e_unmigrated") as url:
        yield url


@pytest.fixture
def own_database_url(postgres_admin_url: str, migrated_template: str) -> Iterator[str]:
    """A migrated database of this test's own (it rewrites alembic_version)."""
    from infrastructure.embedded_postgres import database_url_for

    name = f"e2e_schema_{uuid.uuid4().hex[:12]}"
    _create_database(postgres_admin_url, name, template=migrated_template)
    try:
        yield database_url_for(postgres_admin_url, name)
    finally:
        _drop_database(postgres_admin_url, name)


@pytest.mark.parametrize("process", ["serve", "worker tasks", "worker timers"])
def test_a_process_refuses_an_unmigrated_database(
    process: str, empty_database_url: str, tmp_path: Path
) -> None:
    port = ["--port", str(_free_port())] if process == "serve" else []
    result = run(*process.split(), *port, env=server_env(empty_database_url, tmp_path))

    assert result.returncode == 1, result.stderr
    refusal = [line for line in result.stderr.splitlines() if "waymark migrate" in line]
    assert len(refusal) == 1, result.stderr
    assert refusal[0].startswith(f"waymark {process}: the database schema is at revision none")
    assert "Traceback" not in result.stderr


def test_auto_migrate_brings_the_schema_up_at_startup(
    empty_database_url: str, tmp_path: Path
) -> None:
    env = server_env(empty_database_url, tmp_path, WAYMARK_AUTO_MIGRATE="true")

    with serving(env, tmp_path) as server:
        assert httpx.get(server.base_url + "/health/ready").status_code == 200

    with psycopg.connect(empty_database_url) as conn:
        found = {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}
    assert found == set(expected_revisions())


def test_readiness_fails_while_the_schema_is_not_at_the_head(
    own_database_url: str, tmp_path: Path
) -> None:
    [head] = expected_revisions()
    with serving(server_env(own_database_url, tmp_path), tmp_path) as server:
        # When the recorded revision changes under the running server (another version's
        # migration, a downgrade), then readiness fails and names both revisions
        with psycopg.connect(own_database_url, autocommit=True) as conn:
            conn.execute("UPDATE alembic_version SET version_num = 'other'")
        ready = httpx.get(server.base_url + "/health/ready")
        assert ready.status_code == 503
        database = ready.json()["components"]["database"]
        assert database.pop("duration_ms") >= 0
        assert database == {
            "status": "down",
            "description": "the database schema is not the one this code expects",
            "error": "SchemaNotCurrentError",
            "schema_revision": ["other"],
            "expected_revision": [head],
        }

        # And it recovers once the schema is at the head again
        with psycopg.connect(own_database_url, autocommit=True) as conn:
            conn.execute("UPDATE alembic_version SET version_num = %s", (head,))
        wait_for(
            lambda: httpx.get(server.base_url + "/health/ready").status_code == 200,
            what="readiness to recover",
        )
