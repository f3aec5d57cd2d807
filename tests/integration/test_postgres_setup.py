"""Getting a database: settings, the embedded PostgreSQL, and datastores built from URLs."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from infrastructure.embedded_postgres import EmbeddedPostgres, database_url_for
from infrastructure.postgres.datastore import build_datastore
from infrastructure.settings import Settings

pytestmark = pytest.mark.integration


def test_embedded_postgres_creates_the_waymark_database() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="waymark-embedded-"))
    server = EmbeddedPostgres(data_dir / ".waymark")
    try:
        url = server.start()
        assert url.startswith("postgresql://") and "/waymark" in url
        assert server.start() == url  # already running, database already there
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("waymark",)
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_datastore_from_a_unix_socket_url(database_url: str) -> None:
    settings = Settings(database_url=database_url, db_pool_size=2)
    datastore = build_datastore(settings.database_url or "", pool_size=settings.db_pool_size)
    try:
        with datastore.transaction() as curs:
            curs.execute("SELECT current_database() AS name")
            row = curs.fetchone()
        assert row is not None and row["name"] == database_url.split("?")[0].rsplit("/", 1)[1]
        assert datastore.pool.max_size == 2
    finally:
        datastore.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://app:s%40cret@db.internal:6432/waymark?sslmode=require",
            {
                "host": "db.internal",
                "port": "6432",
                "user": "app",
                "password": "s@cret",
                "dbname": "waymark",
                "sslmode": "require",
            },
        ),
        (
            "postgresql+psycopg://app@/waymark?host=/run/postgresql",
            {"host": "/run/postgresql", "user": "app", "dbname": "waymark"},
        ),
        ("dbname=waymark host=localhost", {"host": "localhost", "dbname": "waymark"}),
    ],
)
def test_datastore_connection_parameters(url: str, expected: dict[str, str]) -> None:
    datastore = build_datastore(url)
    try:
        kwargs = dict(datastore.pool.kwargs or {})
        kwargs.pop("row_factory")
        assert kwargs.pop("options") == "-c statement_timeout=30000 -c lock_timeout=10000"
        assert kwargs == expected
    finally:
        datastore.close()


def test_timeouts_follow_the_options_of_the_url() -> None:
    url = "postgresql://app@db/waymark?options=-c%20search_path%3Dwm"
    datastore = build_datastore(url, statement_timeout=1.5, lock_timeout=0)
    try:
        assert datastore.pool.kwargs is not None
        options = datastore.pool.kwargs["options"]
        assert options == "-c search_path=wm -c statement_timeout=1500 -c lock_timeout=0"
    finally:
        datastore.close()


def test_a_url_without_database_is_refused() -> None:
    with pytest.raises(ValueError, match="no database"):
        build_datastore("postgresql://app@localhost")


def test_database_url_for_swaps_only_the_database() -> None:
    assert (
        database_url_for("postgresql://postgres:@/postgres?host=/tmp/pg", "test_1")
        == "postgresql://postgres:@/test_1?host=/tmp/pg"
    )
    assert "dbname=test_1" in database_url_for("host=/tmp/pg dbname=postgres", "test_1")


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db/waymark")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("WAYMARK_TASK_BATCH_SIZE", "25")
    monkeypatch.setenv("WAYMARK_API_KEYS", "k1=acme:admin, k2=globex:operator|viewer")
    monkeypatch.setenv("WAYMARK_TENANT_SECRETS", "acme=s1,globex=s2")
    settings = Settings()
    assert settings.database_url == "postgresql://app@db/waymark"
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.task_batch_size == 25
    assert settings.dev_mode is False
    assert settings.parsed_api_keys() == {
        "k1": ("acme", frozenset({"admin"})),
        "k2": ("globex", frozenset({"operator", "viewer"})),
    }
    assert settings.parsed_tenant_secrets() == {"acme": "s1", "globex": "s2"}


def test_settings_defaults_and_malformed_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "WAYMARK_DATA_DIR", "WAYMARK_API_KEYS", "WAYMARK_TENANT_SECRETS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.dev_mode is True
    assert settings.data_dir == Path(".waymark")
    assert settings.parsed_api_keys() == {} and settings.parsed_tenant_secrets() == {}
    for bad in ("k1", "k1=acme", "k1=acme:", "=acme:admin", "k1=acme:a,k1=acme:b"):
        with pytest.raises(ValueError, match="WAYMARK_API_KEYS entry"):
            Settings(api_keys=bad).parsed_api_keys()
    for bad in ("acme", "acme=", "=s", "acme=a,acme=b"):
        with pytest.raises(ValueError, match="WAYMARK_TENANT_SECRETS entry"):
            Settings(tenant_secrets=bad).parsed_tenant_secrets()
