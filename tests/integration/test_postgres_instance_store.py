"""PostgresInstanceStore against a real PostgreSQL: atomic saves, conflicts, lost replies."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from application.ports import ConcurrencyConflictError, DuplicateIdempotencyKeyError
from application.read_models import IdempotencyRecord, Projection
from infrastructure.postgres.event_store import WaymarkApplication
from infrastructure.postgres.instance_store import PostgresInstanceStore
from infrastructure.postgres.queries import PostgresReadModelQueries
from infrastructure.postgres.recorder import WaymarkRecorder
from tests.integration.test_postgres_support import (
    T0,
    Probe,
    activity_row,
    bookmark_row,
    instance_row,
    task_row,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def store(datastore: Any) -> PostgresInstanceStore:
    return PostgresInstanceStore(WaymarkApplication(datastore))


def _count(database_url: str, query: str, *params: Any) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


def test_round_trip_and_history(store: PostgresInstanceStore) -> None:
    probe = Probe(tenant="acme", label="first", payload={"amount": 12.5, "tags": ["a"]})
    ref = uuid4()
    probe.relabel("second", at=T0, ref=ref)
    store.save([probe], Projection(instances=[instance_row(probe)]))

    loaded = store.get(probe.id)
    assert loaded is not None
    assert (loaded.label, loaded.payload, loaded.version) == ("second", probe.payload, 2)
    assert store.get(uuid4()) is None

    history = store.history(probe.id)
    assert [(h.version, h.type) for h in history] == [(1, "Created"), (2, "Relabelled")]
    assert history[0].position is not None and history[1].position is not None
    assert history[0].position < history[1].position
    assert history[0].data == {"tenant": "acme", "label": "first", "payload": probe.payload}
    assert history[1].data == {"label": "second", "at": T0.isoformat(), "ref": str(ref)}
    assert history[1].timestamp.tzinfo is not None
    json.dumps([h.data for h in history])  # JSON-safe for the API


def test_a_tenants_read_answers_only_for_its_own_instances(store: PostgresInstanceStore) -> None:
    # The ownership check rides in the events query (one round trip): it must still refuse.
    probe = Probe(tenant="acme", label="first")
    probe.relabel("second", at=T0, ref=uuid4())
    store.save([probe], Projection(instances=[instance_row(probe)]))

    own = store.get(probe.id, "acme")
    assert own is not None and (own.label, own.version) == ("second", 2)
    earlier = store.get(probe.id, "acme", version=1)
    assert earlier is not None and (earlier.label, earlier.version) == ("first", 1)
    assert store.get(probe.id, "globex") is None
    assert store.get(probe.id, "globex", version=1) is None
    assert store.get(uuid4(), "acme") is None


def test_workflow_instance_round_trip(store: PostgresInstanceStore) -> None:
    from domain.instance import WorkflowInstance

    instance = WorkflowInstance(
        id=uuid4(),
        tenant="acme",
        definition="purchase-approval",
        definition_version=3,
        input={"amount": 20000},
        correlation_id="po-7",
        idempotency_key=None,
        parent=None,
    )
    store.save([instance], Projection())
    loaded = store.get(instance.id)
    assert loaded is not None
    assert (loaded.tenant, loaded.definition_version) == ("acme", 3)
    assert loaded.input == {"amount": 20000}
    assert store.history(instance.id)[0].type == "Started"


def test_projection_rows_commit_with_the_events(
    store: PostgresInstanceStore, datastore: Any
) -> None:
    # Given an instance with a bookmark, a task and an activity in its projection
    probe = Probe(tenant="acme", label="p")
    bookmark = bookmark_row(probe.id)
    task = task_row(probe.id)
    activity = activity_row(probe.id)
    projection = Projection(
        instances=[instance_row(probe)], bookmarks=[bookmark], tasks=[task], activities=[activity]
    )

    # When it is saved
    store.save([probe], projection)

    # Then every row is readable right away, as projected
    queries = PostgresReadModelQueries(datastore)
    assert queries.instance("acme", probe.id) == instance_row(probe)
    assert queries.instance("globex", probe.id) is None  # tenant-scoped
    assert queries.bookmark_by_token(bookmark.token or "") == bookmark
    assert queries.task("acme", task.id) == task

    # And a later save upserts them in place
    probe.relabel("q", at=T0, ref=uuid4())
    store.save(
        [probe],
        Projection(instances=[instance_row(probe, status="suspended")]),
    )
    row = queries.instance("acme", probe.id)
    assert row is not None and (row.status, row.aggregate_version) == ("suspended", 2)


def test_activity_lease_is_reset_when_the_attempt_changes(
    store: PostgresInstanceStore, database_url: str
) -> None:
    probe = Probe(tenant="acme", label="p")
    activity = activity_row(probe.id)
    store.save([probe], Projection(activities=[activity]))
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE activities SET locked_by = 'w1', locked_until = now() WHERE id = %s",
            (activity.id,),
        )

    # Same attempt and status (e.g. another node's change): the lease stays
    probe.relabel("q", at=T0, ref=uuid4())
    store.save([probe], Projection(activities=[activity]))
    lease = "SELECT count(*) FROM activities WHERE id = %s AND locked_by IS NOT NULL"
    assert _count(database_url, lease, activity.id) == 1

    # Next attempt: the old lease no longer applies
    probe.relabel("r", at=T0, ref=uuid4())
    retry = activity_row(probe.id, id=activity.id, attempt=2)
    store.save([probe], Projection(activities=[retry]))
    assert _count(database_url, lease, activity.id) == 0


def test_concurrent_saves_of_one_instance_one_wins(datastore: Any) -> None:
    setup = PostgresInstanceStore(WaymarkApplication(datastore))
    probe = Probe(tenant="acme", label="v1")
    setup.save([probe], Projection(instances=[instance_row(probe)]))

    for round_number in range(5):
        # Given two commands that loaded the same version
        stores = [PostgresInstanceStore(WaymarkApplication(datastore)) for _ in range(2)]
        copies = [s.get(probe.id) for s in stores]
        barrier = threading.Barrier(2)
        outcomes: list[str] = []
        lock = threading.Lock()

        def command(index: int) -> None:
            copy = copies[index]
            assert copy is not None
            copy.relabel(f"r{round_number}-{index}", at=T0, ref=uuid4())
            barrier.wait()
            try:
                stores[index].save([copy], Projection(instances=[instance_row(copy)]))
                outcome = "won"
            except ConcurrencyConflictError as error:
                assert error.instance_ids == [probe.id]
                outcome = "conflict"
            with lock:
                outcomes.append(outcome)

        # When both save at once from real threads
        threads = [threading.Thread(target=command, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

        # Then exactly one wins and the stored state is the winner's
        assert sorted(outcomes) == ["conflict", "won"]
        current = setup.get(probe.id)
        assert current is not None and current.version == round_number + 2


def test_duplicate_idempotency_record_rolls_back_the_whole_save(
    store: PostgresInstanceStore, datastore: Any, database_url: str
) -> None:
    record = IdempotencyRecord("acme", "resume", "delivery-1", {"instance": "first"})
    first = Probe(tenant="acme", label="first")
    store.save([first], Projection(instances=[instance_row(first)], idempotency=[record]))

    second = Probe(tenant="acme", label="second")
    duplicate = IdempotencyRecord("acme", "resume", "delivery-1", {"instance": "second"})
    with pytest.raises(DuplicateIdempotencyKeyError):
        store.save(
            [second],
            Projection(
                instances=[instance_row(second)],
                tasks=[task_row(second.id)],
                idempotency=[duplicate],
            ),
        )

    # Nothing of the failed save is visible: no events, no rows; the first result stays.
    assert store.get(second.id) is None
    queries = PostgresReadModelQueries(datastore)
    assert queries.instance("acme", second.id) is None
    assert _count(database_url, "SELECT count(*) FROM tasks") == 0
    assert queries.idempotent_result("acme", "resume", "delivery-1") == {"instance": "first"}


def test_duplicate_instance_idempotency_key_is_reported_as_such(
    store: PostgresInstanceStore,
) -> None:
    first, second = Probe(tenant="acme", label="a"), Probe(tenant="acme", label="b")
    store.save([first], Projection(instances=[instance_row(first, idempotency_key="k")]))
    with pytest.raises(DuplicateIdempotencyKeyError):
        store.save([second], Projection(instances=[instance_row(second, idempotency_key="k")]))
    assert store.get(second.id) is None


class _LostReplyDatastore:
    """The real datastore, except that once armed, the connection that just committed is
    killed and the caller sees the error a lost COMMIT reply produces."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.database_url = ""
        self.armed = False
        self.killed_pids: list[int] = []
        self.connections_after_kill = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @contextmanager
    def get_connection(self) -> Iterator[Any]:
        if self.killed_pids:
            self.connections_after_kill += 1
        with self._inner.get_connection() as conn:
            yield conn  # an exception in the body (no commit) propagates from here
            if self.armed:
                self.armed = False
                pid = conn.info.backend_pid
                with psycopg.connect(self.database_url, autocommit=True) as killer:
                    killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
                self.killed_pids.append(pid)
                # Raised inside the library's context: it becomes its OperationalError,
                # which insert_events' retry decorator answers by inserting again.
                raise psycopg.OperationalError("server closed the connection unexpectedly")


class LostReplyRecorder(WaymarkRecorder):
    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.datastore = _LostReplyDatastore(datastore)  # type: ignore[assignment]


def test_lost_commit_reply_is_reported_as_success(datastore: Any, database_url: str) -> None:
    app = WaymarkApplication(datastore, recorder_class=LostReplyRecorder)
    store = PostgresInstanceStore(app)
    faulty = app.recorder.datastore
    assert isinstance(faulty, _LostReplyDatastore)
    faulty.database_url = database_url
    probe = Probe(tenant="acme", label="p")
    store.save([probe], Projection(instances=[instance_row(probe)]))

    # Given a save whose COMMIT succeeds but whose connection dies before the reply
    probe.relabel("q", at=T0, ref=uuid4())
    record = IdempotencyRecord("acme", "resume", "k1", {"ok": True})
    faulty.armed = True

    # When the library retries the insert, it collides with our own committed events
    store.save([probe], Projection(instances=[instance_row(probe)], idempotency=[record]))

    # Then the store reports success, and everything is stored exactly once
    assert len(faulty.killed_pids) == 1
    # The library retried insert_events on a fresh connection (how many more connections
    # the store's own-events check and the pool's pre-ping take varies from run to run).
    assert faulty.connections_after_kill >= 1
    alive = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s"
    assert _count(database_url, alive, faulty.killed_pids[0]) == 0
    loaded = store.get(probe.id)
    assert loaded is not None and (loaded.version, loaded.label) == (2, "q")
    assert _count(database_url, "SELECT count(*) FROM waymark_events") == 2
    assert _count(database_url, "SELECT count(*) FROM idempotency_records") == 1


def test_a_real_conflict_after_a_retry_is_still_a_conflict(
    store: PostgresInstanceStore, datastore: Any
) -> None:
    probe = Probe(tenant="acme", label="p")
    store.save([probe], Projection())
    stale = PostgresInstanceStore(WaymarkApplication(datastore)).get(probe.id)
    assert stale is not None
    probe.relabel("mine", at=T0, ref=uuid4())
    store.save([probe], Projection())

    stale.relabel("theirs", at=T0, ref=uuid4())
    with pytest.raises(ConcurrencyConflictError) as raised:
        store.save([stale], Projection())
    assert raised.value.instance_ids == [probe.id]
