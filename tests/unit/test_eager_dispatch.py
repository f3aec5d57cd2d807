"""EagerActivities (application/eager.py): what a commit may lease to this process's task
worker, bounded, and handed over only once the commit stored it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from application.eager import EagerActivities
from application.ports import PendingCommit
from application.read_models import ActivityRow, Projection
from domain.instance import WorkflowInstance

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def row(activity_id: str, *, run_after: datetime = NOW, status: str = "scheduled") -> ActivityRow:
    return ActivityRow(
        id=activity_id,
        tenant="acme",
        instance_id=uuid4(),
        node_id="s1",
        attempt=1,
        status=status,
        run_after=run_after,
        action={"type": "noop"},
        timeout_seconds=60,
        idempotency_key=f"k:{activity_id}",
    )


def scheduled(*rows: ActivityRow, announced: tuple[str, ...] | None = None) -> PendingCommit:
    ids = announced if announced is not None else tuple(r.id for r in rows)
    events = tuple(
        WorkflowInstance.ActivityScheduled(  # type: ignore[call-arg]
            originator_id=uuid4(),
            originator_version=1,
            timestamp=NOW,
            activity={"id": activity_id},
        )
        for activity_id in ids
    )
    return PendingCommit(instances=(), events=events, projection=Projection(activities=list(rows)))


def test_a_commit_leases_its_new_due_activities_and_hands_them_over_once_stored() -> None:
    woken: list[int] = []
    eager = EagerActivities("w1", 30, capacity=10, wake=lambda: woken.append(1))
    later = row("later", run_after=NOW + timedelta(minutes=5))
    old = row("old")  # changed by the commit but not scheduled by it (a result, a retry)
    pending = scheduled(row("a"), later, old, announced=("a", "later"))
    eager.offer(pending, NOW)
    assert pending.projection.leases == {"a": ("w1", NOW + timedelta(seconds=30))}
    assert eager.take(10, NOW) == ([], [])  # not before the commit stored it
    eager.committed(pending)
    rows, expiring = eager.take(10, NOW)
    assert [r.id for r in rows] == ["a"] and expiring == [] and woken == [1]
    assert eager.handed_over == 1


def test_the_queue_is_bounded_and_a_failed_commit_gives_its_room_back() -> None:
    eager = EagerActivities("w1", 30, capacity=2)
    first = scheduled(row("a"), row("b"), row("c"))
    eager.offer(first, NOW)
    assert set(first.projection.leases) == {"a", "b"}  # "c" is claimed as before
    second = scheduled(row("d"))
    eager.offer(second, NOW)
    assert second.projection.leases == {}  # no room while the first is undecided
    eager.withdrawn(first)  # its commit failed: nothing stored, nothing to hand over
    assert first.projection.leases == {} and eager.take(10, NOW) == ([], [])
    third = scheduled(row("e"))
    eager.offer(third, NOW)
    assert set(third.projection.leases) == {"e"}


def test_closed_it_leases_nothing_and_gives_back_what_was_queued() -> None:
    eager = EagerActivities("w1", 30, capacity=5)
    pending = scheduled(row("a"))
    eager.offer(pending, NOW)
    eager.committed(pending)
    assert [r.id for r in eager.close()] == ["a"]
    later = scheduled(row("b"))
    eager.offer(later, NOW)
    assert later.projection.leases == {} and eager.take(10, NOW) == ([], [])


def test_a_row_whose_lease_would_end_before_its_timeout_is_not_handed_over() -> None:
    # It waited in the queue behind a slow batch: run now, its lease could end mid-run and
    # another worker run it at the same time; it is released instead, as a claim would.
    eager = EagerActivities("w1", 90, capacity=5)
    pending = scheduled(row("a"), row("b"))  # timeout 60 s each, lease 90 s
    eager.offer(pending, NOW)
    eager.committed(pending)
    rows, expiring = eager.take(1, NOW + timedelta(seconds=10))
    assert [r.id for r in rows] == ["a"] and expiring == []
    rows, expiring = eager.take(1, NOW + timedelta(seconds=40))
    assert rows == [] and [r.id for r in expiring] == ["b"]
    assert eager.handed_over == 1
