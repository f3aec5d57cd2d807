"""The tenant scope of a checkout never reaches the next one (infrastructure/postgres/datastore.py).

`waymark.tenant` is a session setting (the pool's connections are in autocommit mode and one
checkout may run several transactions), so it stays on the connection after the checkout:
what keeps it from leaking is that every checkout writes it before handing the connection
out. Checked on a pool of ONE connection (every checkout is the same session): after a
normal checkout, after an exception in the middle of a transaction, after an exception
outside one, and for the system scope. Negative control: the library's own checkout (without
that write) on the same connection still shows the previous checkout's tenant.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eventsourcing.postgres import PostgresDatastore

from application import tenant_scope
from infrastructure.postgres.datastore import build_datastore

pytestmark = pytest.mark.integration

_SEEN = "SELECT current_setting('waymark.tenant', true) AS tenant, pg_backend_pid() AS pid"


@pytest.fixture
def datastore(database_url: str) -> Iterator[Any]:
    built = build_datastore(database_url, pool_size=1, app_role="waymark_app")
    try:
        yield built
    finally:
        built.close()


def _seen(datastore: Any) -> tuple[str, int]:
    with datastore.transaction(commit=False) as curs:
        row = curs.execute(_SEEN).fetchone()
    return row["tenant"], row["pid"]


def test_no_checkout_sees_the_previous_checkouts_tenant(datastore: Any) -> None:
    with tenant_scope.acting_for("acme"):
        tenant, pid = _seen(datastore)
    assert tenant == "acme"
    assert _seen(datastore) == ("*", pid)  # the system scope: the same session, not acme's

    # An exception in the middle of a transaction (rolled back), in globex's scope ...
    with (
        tenant_scope.acting_for("globex"),
        pytest.raises(ZeroDivisionError),
        datastore.transaction(commit=True) as curs,
    ):
        curs.execute("SELECT 1")
        raise ZeroDivisionError
    # ... and one from the database itself, in acme's
    with (
        tenant_scope.acting_for("acme"),
        pytest.raises(Exception, match="division by zero"),
        datastore.transaction(commit=True) as curs,
    ):
        curs.execute("SELECT 1/0")
    with tenant_scope.acting_for("globex"):
        assert _seen(datastore) == ("globex", pid)
    assert _seen(datastore) == ("*", pid)

    # Negative control: the setting is the session's, so without the write at checkout the
    # next user of the connection would act in the previous one's tenant.
    with tenant_scope.acting_for("globex"):
        _seen(datastore)
    with PostgresDatastore.get_connection(datastore) as conn:
        assert conn.execute(_SEEN).fetchone()["tenant"] == "globex"
    assert _seen(datastore) == ("*", pid)


def test_several_transactions_of_one_checkout_share_its_scope(datastore: Any) -> None:
    with tenant_scope.acting_for("acme"), datastore.get_connection() as conn:
        for _ in range(3):
            with conn.transaction():
                assert conn.execute(_SEEN).fetchone()["tenant"] == "acme"


def test_a_checkout_in_the_connections_scope_skips_the_write(
    datastore: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One round trip less per transaction: the scope is written only when it changes.
    import psycopg

    from infrastructure.postgres import datastore as module

    writes: list[Any] = []
    execute = psycopg.Connection.execute

    def counting(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        if query == module._SET_TENANT:
            writes.append(params)
        return execute(self, query, params, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", counting)
    with tenant_scope.acting_for("acme"):
        for _ in range(3):
            assert _seen(datastore)[0] == "acme"
    assert writes == [("acme",)]
    assert _seen(datastore)[0] == "*"
    with tenant_scope.acting_for("acme"):
        assert _seen(datastore)[0] == "acme"
    assert writes == [("acme",), ("*",), ("acme",)]
