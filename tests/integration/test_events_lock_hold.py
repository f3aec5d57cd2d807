"""The events' insert-order lock is never held across a round trip to this process (issue 11).

Every event writer of a database queues behind the insert-order lock, an advisory lock the
events table's statement trigger takes (migration 0024, infrastructure/postgres/
recorder.py, docs/scaling.md). The recorder sends the insert and COMMIT together, so the
server holds the lock for its own work only: a process whose threads wait milliseconds for
the GIL never holds it while it reads a reply.

Observed from outside: each time a committing connection has read a reply from the server
(a round trip) with its transaction still open, a second connection asks `pg_locks` whether
that backend holds the lock. The negative control reads the insert's ids before COMMIT, as
the recorder once did, and is caught.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
import pytest

from application.commands import ResumeBookmark, StartInstance
from infrastructure.postgres.recorder import WaymarkRecorder
from tests.containers import api_publishing
from tests.patterns_support import routes

pytestmark = pytest.mark.integration

TENANT = "acme"
# A set (so the start runs a step), a wait the test resumes, the end.
PARKED = {
    "name": "parked",
    "nodes": [
        {"id": "init", "type": "set", "variables": {"x": "1"}},
        {"id": "parked", "type": "wait", "result_var": "got"},
        {"id": "done", "type": "end"},
    ],
    "routes": routes("init>parked parked>done"),
}
# A backend inside a transaction holds the lock on its own virtual transaction id (libpq
# cannot tell mid-pipeline: its transaction status dates from the last Sync).
_LOCKS_OF = """
    SELECT coalesce(bool_or(l.locktype = 'virtualxid'), false),
           EXISTS (SELECT FROM waymark_events_insert_order_locks() o
                   WHERE o.pid = %(pid)s AND o.granted)
    FROM pg_locks l
    WHERE l.pid = %(pid)s AND l.granted
"""


@dataclass(frozen=True)
class Sample:
    in_transaction: bool
    holds_events_lock: bool


@pytest.fixture
def container(database_url: str) -> Iterator[Any]:
    with api_publishing(database_url, PARKED, tenant=TENANT, db_pool_size=4) as built:
        yield built


@pytest.fixture
def lock_samples(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Sample]]:
    """The backend's locks, once per reply read.

    In pipeline mode a statement is only sent (a non-blocking flush); the client waits for
    the server where it reads a result (a cursor's fetch) or leaves a pipeline (a Sync).
    Those are sampled, right after they return."""
    samples: list[Sample] = []
    observer = psycopg.connect(database_url, autocommit=True)

    def sample(conn: psycopg.Connection[Any]) -> None:
        if conn is not observer:
            row = observer.execute(_LOCKS_OF, {"pid": conn.info.backend_pid}).fetchone()
            assert row is not None
            samples.append(Sample(*row))

    def after(method: Any, conn_of: Any) -> Any:
        def sampled(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = method(self, *args, **kwargs)
            sample(conn_of(self))
            return result

        return sampled

    for name in ("fetchone", "fetchmany", "fetchall"):
        real = getattr(psycopg.Cursor, name)
        monkeypatch.setattr(psycopg.Cursor, name, after(real, lambda c: c.connection))
    for name in ("sync", "__exit__"):
        real = getattr(psycopg.Pipeline, name)
        monkeypatch.setattr(psycopg.Pipeline, name, after(real, lambda p: p._conn))
    yield samples
    monkeypatch.undo()
    observer.close()


def start_and_resume(container: Any, times: int = 3) -> None:
    """Starts (events, projection and the admission check) and resumes (no check)."""
    for _ in range(times):
        view, _ = container.instances.start(StartInstance(TENANT, PARKED["name"]))
        bookmark = view["bookmarks"][0]
        result, _ = container.instances.resume(
            ResumeBookmark(TENANT, UUID(view["id"]), bookmark["id"], {"ok": True})
        )
        assert result["status"] == "completed"


def test_no_round_trip_to_the_client_holds_the_events_lock(
    container: Any, lock_samples: list[Sample]
) -> None:
    start_and_resume(container)

    # The starts' admission check is read mid-transaction (before the lock): observed.
    assert any(s.in_transaction for s in lock_samples), "no reply read inside a transaction"
    assert not any(s.holds_events_lock for s in lock_samples)


def test_negative_control_reading_the_ids_before_commit_holds_the_lock_over_a_round_trip(
    container: Any, lock_samples: list[Sample], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = WaymarkRecorder._send_insert

    def fetching_before_commit(self: WaymarkRecorder, curs: Any, *args: Any) -> None:
        real(self, curs, *args)
        curs.fetchall()  # the former flow: the insert's ids read inside the transaction

    monkeypatch.setattr(WaymarkRecorder, "_send_insert", fetching_before_commit)
    start_and_resume(container)

    assert any(s.holds_events_lock for s in lock_samples)


# --- a VACUUM or ANALYZE of the table does not stop the writers (migration 0024) ----------

# What VACUUM, ANALYZE and autovacuum hold on the table for their whole run.
_VACUUMS_LOCK = "LOCK TABLE waymark_events IN SHARE UPDATE EXCLUSIVE MODE"


def _commands_finish_while_vacuumed(container: Any, database_url: str) -> bool:
    """Whether a start and its resume commit within 3 s while the table is vacuumed."""
    holder = psycopg.connect(database_url)
    try:
        holder.execute(_VACUUMS_LOCK)
        worker = threading.Thread(target=start_and_resume, args=(container, 1), daemon=True)
        worker.start()
        worker.join(3.0)
        finished = not worker.is_alive()
    finally:
        holder.rollback()  # the "vacuum" ends: a blocked command goes on
        holder.close()
    worker.join(15.0)
    assert not worker.is_alive()
    return finished


def test_a_vacuum_of_the_events_table_does_not_stop_the_writers(
    container: Any, database_url: str
) -> None:
    assert _commands_finish_while_vacuumed(container, database_url)


def test_negative_control_the_former_table_lock_waits_for_the_vacuum(
    container: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = WaymarkRecorder._send_insert

    def table_locked(self: WaymarkRecorder, curs: Any, *args: Any) -> None:
        curs.execute("LOCK TABLE waymark_events IN EXCLUSIVE MODE")  # the recorder until 0024
        real(self, curs, *args)

    monkeypatch.setattr(WaymarkRecorder, "_send_insert", table_locked)
    assert not _commands_finish_while_vacuumed(container, database_url)


@pytest.mark.parametrize("how", ["insert", "copy"])
def test_every_insert_path_takes_the_insert_order_lock(database_url: str, how: str) -> None:
    """The trigger orders any writer's rows, a plain INSERT's or a COPY's (the bulk loader's),
    not only the recorder's: behind a held lock, each waits until its lock_timeout."""
    with psycopg.connect(database_url) as holder, psycopg.connect(database_url) as writer:
        holder.execute("SELECT pg_advisory_xact_lock(waymark_events_insert_order_key())")
        writer.execute("SET lock_timeout = '300ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            if how == "insert":
                writer.execute(
                    "INSERT INTO waymark_events (originator_id, originator_version, topic, state) "
                    "VALUES (gen_random_uuid(), 1, 'test:Raw', '\\x00')"
                )
            else:
                columns = "originator_id, originator_version, topic, state"
                with writer.cursor().copy(f"COPY waymark_events ({columns}) FROM STDIN") as copy:
                    copy.write_row((UUID(int=1), 1, "test:Raw", b"\x00"))
        writer.rollback()
        holder.rollback()


def test_negative_control_with_the_trigger_off_a_copy_does_not_wait(database_url: str) -> None:
    with psycopg.connect(database_url) as holder, psycopg.connect(database_url) as writer:
        holder.execute("SELECT pg_advisory_xact_lock(waymark_events_insert_order_key())")
        writer.execute("SET lock_timeout = '300ms'")
        writer.execute("SET session_replication_role = replica")  # no ordinary trigger fires
        columns = "originator_id, originator_version, topic, state"
        with writer.cursor().copy(f"COPY waymark_events ({columns}) FROM STDIN") as copy:
            copy.write_row((UUID(int=2), 1, "test:Raw", b"\x00"))
        writer.rollback()  # nothing kept
        holder.rollback()
