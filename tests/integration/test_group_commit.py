"""Group commit (issue 11) against the real PostgreSQL: commits that queue behind a running
transaction share the next one; each caller gets its own outcome; a failing member never
fails its neighbours; the events keep a gap-free notification order.

The store is the production PostgresInstanceStore. To make "arriving together" certain
rather than a matter of timing, the first save is held at a gate (a wrapper that waits,
then calls the real save) while the other threads queue behind it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

import psycopg
import pytest

from application.commit import GroupCommitter
from application.errors import CommandConflictError
from application.ports import ConcurrencyConflictError, PendingCommit
from application.session import CommandAttempt

pytestmark = pytest.mark.integration

TENANT = "acme"
NOOP = {
    "name": "noop",
    "nodes": [
        {"id": "init", "type": "set", "variables": {"x": "1"}},
        {"id": "done", "type": "end"},
    ],
    "routes": [{"from": "init", "to": "done"}],
}
DEADLINE_SECONDS = 20.0


@pytest.fixture
def container(database_url: str) -> Iterator[Any]:
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings

    built = build_api(Settings(database_url=database_url, api_keys="k=acme:admin", db_pool_size=8))
    built.definitions.publish(TENANT, NOOP)
    yield built
    built.close()


class GatedStore:
    """The real store; its first save waits for `gate`. Counts the saves and their sizes."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.saves: list[int] = []  # events per save() call, in call order
        self._first = True

    def save(self, events: Sequence[Any], projection: Any) -> None:
        self.saves.append(len(events))
        if self._first:
            self._first = False
            self.entered.set()
            assert self.gate.wait(DEADLINE_SECONDS)
        self.store.save(events, projection)

    def get(self, instance_id: UUID, tenant: str | None = None) -> Any:
        return self.store.get(instance_id, tenant)


def prepared_start(core: Any, instance_id: UUID | None = None, **input: Any) -> PendingCommit:
    """A start of `noop` decided but not stored (what the runner hands the committer)."""
    attempt = CommandAttempt(core.store, core.cache, core.admission, core.clock)
    model = core.admission.admit(TENANT, NOOP["name"], None, input)
    attempt.start(
        instance_id=instance_id or uuid.uuid4(),
        tenant=TENANT,
        definition=model,
        input=input,
        correlation_id=None,
        idempotency_key=None,
    )
    return attempt.prepare()


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def commit_together(
    committer: GroupCommitter, gated: GatedStore, first: PendingCommit, queued: list[PendingCommit]
) -> list[BaseException | None]:
    """`first` is saved (held at the gate) while `queued` queue behind it; their outcomes."""
    outcomes: list[BaseException | None] = [None] * (1 + len(queued))

    def run(i: int, pending: PendingCommit) -> None:
        try:
            committer.commit(pending)
        except Exception as e:  # the outcome under test
            outcomes[i] = e

    leader = threading.Thread(target=run, args=(0, first))
    leader.start()
    assert gated.entered.wait(DEADLINE_SECONDS)
    followers = [threading.Thread(target=run, args=(i + 1, p)) for i, p in enumerate(queued)]
    for t in followers:
        t.start()
    wait_for(lambda: len(committer._queue) == len(queued), "the commits to queue")
    gated.gate.set()
    for t in [leader, *followers]:
        t.join(DEADLINE_SECONDS)
        assert not t.is_alive()
    return outcomes


def stored_events(database_url: str) -> list[tuple[int, UUID, int]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT notification_id, originator_id, originator_version FROM waymark_events "
            "ORDER BY notification_id"
        ).fetchall()
    return [(int(n), o, int(v)) for n, o, v in rows]


def test_commits_queued_behind_a_transaction_share_the_next_one(
    container: Any, database_url: str
) -> None:
    core = container.core
    gated = GatedStore(core.store)
    committer = GroupCommitter(gated)
    first = prepared_start(core, n=0)
    queued = [prepared_start(core, n=i) for i in range(1, 9)]

    outcomes = commit_together(committer, gated, first, queued)

    assert outcomes == [None] * 9
    # One save for the leader, ONE for the eight that queued meanwhile.
    assert gated.saves == [len(first.events), sum(len(p.events) for p in queued)]
    assert (committer.groups, committer.members) == (2, 9)
    for i, pending in enumerate([first, *queued]):
        (instance,) = pending.instances
        stored = core.store.get(instance.id, TENANT)
        assert stored is not None and stored.input == {"n": i} and stored.status == "completed"
    # Gap-free notification ids, the group's events in the members' order.
    events = stored_events(database_url)
    ids = [n for n, _, _ in events]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    expected = [(e.originator_id, e.originator_version) for p in [first, *queued] for e in p.events]
    assert [(o, v) for _, o, v in events] == expected


def test_a_conflicting_member_gets_its_own_error_and_its_neighbours_commit(
    container: Any, database_url: str
) -> None:
    core = container.core
    taken = uuid.uuid4()
    original = prepared_start(core, taken, n=-1)
    core.store.save(original.events, original.projection)
    gated = GatedStore(core.store)
    committer = GroupCommitter(gated)
    first = prepared_start(core, n=0)
    # The third queued commit starts an instance whose id is already stored: its events
    # collide with version 1 of `taken`.
    queued = [
        prepared_start(core, n=1),
        prepared_start(core, n=2),
        prepared_start(core, taken, n=3),
        prepared_start(core, n=4),
    ]

    outcomes = commit_together(committer, gated, first, queued)

    assert [o is None for o in outcomes] == [True, True, True, False, True]
    error = outcomes[3]
    assert isinstance(error, ConcurrencyConflictError)
    assert list(error.instance_ids) == [taken]
    for i in (0, 1, 2, 4):
        (instance,) = [first, *queued][i].instances
        assert core.store.get(instance.id, TENANT) is not None
    assert core.store.get(taken, TENANT).input == {"n": -1}
    # A rolled-back try burns sequence values (as any rolled-back insert does); what readers
    # rely on is that ids increase in commit order, which the table lock gives.
    events = stored_events(database_url)
    assert len(events) == len({n for n, _, _ in events})


def test_a_member_failing_for_an_unclaimed_reason_fails_alone(container: Any) -> None:
    # An event over WAYMARK_MAX_EVENT_BYTES fails the whole group's save with an error no
    # member's `involves` names: the group is split into single saves.
    core = container.core
    gated = GatedStore(core.store)
    committer = GroupCommitter(gated)
    first = prepared_start(core, n=0)
    queued = [
        prepared_start(core, n=1),
        prepared_start(core, blob="x" * 400_000),
        prepared_start(core, n=3),
    ]

    outcomes = commit_together(committer, gated, first, queued)

    assert [o is None for o in outcomes] == [True, True, False, True]
    assert "WAYMARK_MAX_EVENT_BYTES" in str(outcomes[2])
    for i in (0, 1, 3):
        (instance,) = [first, *queued][i].instances
        assert core.store.get(instance.id, TENANT) is not None


def test_negative_control_a_group_without_splitting_fails_the_neighbours(
    container: Any,
) -> None:
    # What the split prevents: the same oversized member, saved with its group and no split,
    # takes its neighbours down with it.
    class Unsplit(GroupCommitter):
        def _save(self, group: Any) -> None:
            try:
                super()._save(group) if len(group) == 1 else self.store.save(
                    tuple(e for m in group for e in m.pending.events), group[0].pending.projection
                )
            except Exception as e:
                for member in group:
                    member.error = e

    core = container.core
    gated = GatedStore(core.store)
    committer = Unsplit(gated)
    first = prepared_start(core, n=0)
    queued = [prepared_start(core, n=1), prepared_start(core, blob="x" * 400_000)]

    outcomes = commit_together(committer, gated, first, queued)

    assert outcomes[0] is None
    assert outcomes[1] is not None and outcomes[2] is not None


def test_commits_touching_one_instance_never_share_a_transaction(container: Any) -> None:
    # Two commits of one instance in one transaction would collide with each other; the
    # second waits for the next group and is re-decided by its runner as usual.
    core = container.core
    gated = GatedStore(core.store)
    committer = GroupCommitter(gated)
    same = uuid.uuid4()
    first = prepared_start(core, n=0)
    queued = [
        prepared_start(core, same, n=1),
        prepared_start(core, same, n=2),
        prepared_start(core, n=3),
    ]

    outcomes = commit_together(committer, gated, first, queued)

    assert outcomes[:2] == [None, None] and outcomes[3] is None
    assert isinstance(outcomes[2], ConcurrencyConflictError)
    assert len(gated.saves) == 3  # leader; {same#1, n=3}; {same#2}


def test_the_runner_retries_a_lost_race_through_the_group_committer(container: Any) -> None:
    # End to end through the production runner (group commit on by default): many threads
    # start instances at once, every caller gets its own instance back, none conflicts.
    from application.commands import StartInstance

    assert isinstance(container.core.runner.committer, GroupCommitter)
    results: list[Any] = [None] * 16
    barrier = threading.Barrier(16)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = container.instances.start(StartInstance(TENANT, "noop", input={"n": i}))
        except (CommandConflictError, Exception) as e:  # the outcome under test
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_SECONDS)
    views = [r[0] for r in results]
    assert [v["input"] for v in views] == [{"n": i} for i in range(16)]
    assert len({v["id"] for v in views}) == 16
    assert all(v["status"] == "completed" for v in views)
