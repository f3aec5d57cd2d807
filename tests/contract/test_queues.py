"""DueTimers and ActivityQueue contract: the same cases against memory and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from application.read_models import Projection
from tests.contract.conftest import Ports
from tests.integration.test_postgres_support import (
    T0,
    Probe,
    activity_row,
    bookmark_row,
    instance_row,
)


def _save(ports: Ports, probe: Probe | None = None, **rows: list[Any]) -> Probe:
    probe = probe or Probe(tenant="acme", label="p")
    ports.instances.save([probe], Projection(instances=[instance_row(probe)], **rows))
    return probe


def test_due_timers_oldest_first_within_the_limit(ports: Ports) -> None:
    probe = Probe(tenant="acme", label="p")

    def timer(
        name: str, minutes: int | None, kind: str = "timer", status: str = "open", **extra: Any
    ) -> Any:
        due = None if minutes is None else T0 + timedelta(minutes=minutes)
        return bookmark_row(
            probe.id, id=name, kind=kind, status=status, due_at=due, token=None, **extra
        )

    _save(
        ports,
        probe,
        bookmarks=[
            timer("t-late", 30),
            timer("t-early", 10),
            timer("w-timeout", 20, kind="wait"),
            timer("t-future", 90),
            timer("t-fired", 5, status="consumed"),
            # A task's SLA is due like a timer until it has been escalated (issue 8).
            timer("task", 1, kind="task", escalated_at=T0),
            timer("task-sla", 40, kind="task"),
            timer("w-no-timeout", None, kind="wait"),
        ],
    )
    now = T0 + timedelta(minutes=60)

    assert ports.due_timers.due(T0, 10) == []
    assert ports.due_timers.next_due() == T0 + timedelta(minutes=10)
    # A claim leases what it returns: the next claim gets the rest, then nothing ...
    assert [b.id for b in ports.due_timers.due(now, 2)] == ["t-early", "w-timeout"]
    assert [b.id for b in ports.due_timers.due(now, 10)] == ["t-late", "task-sla"]
    assert ports.due_timers.due(now, 10) == []
    # ... until a row is released, or the leases run out.
    ports.due_timers.release("t-early")
    assert [b.id for b in ports.due_timers.due(now, 10)] == ["t-early"]
    expired = now + timedelta(minutes=1)
    assert [b.id for b in ports.due_timers.due(expired, 10)] == [
        "t-early",
        "w-timeout",
        "t-late",
        "task-sla",
    ]


def test_next_due_counts_a_row_another_worker_holds_from_its_lease_end(ports: Ports) -> None:
    # Given two overdue timers, one claimed (leased 30 s) by another worker
    probe = Probe(tenant="acme", label="p")
    rows = [
        bookmark_row(probe.id, id=name, kind="timer", due_at=T0 + timedelta(seconds=s), token=None)
        for name, s in (("held", 1), ("free", 2))
    ]
    _save(ports, probe, bookmarks=rows)
    now = T0 + timedelta(seconds=5)
    assert [b.id for b in ports.due_timers.due(now, 1)] == ["held"]

    # Then the next claimable time is the free row's due time, not the held row's ...
    assert ports.due_timers.next_due(now) == T0 + timedelta(seconds=2)
    # ... and with only the held row left, its lease's end (not "overdue": the bench's
    # idle replica slept a 1 s recheck on it while the next timers fell due)
    assert [b.id for b in ports.due_timers.due(now, 1)] == ["free"]
    lease_end = ports.due_timers.next_due(now)
    assert lease_end is not None and lease_end > now
    # Negative control: once the lease has run out the row is due again, at its due time
    assert ports.due_timers.next_due(now + timedelta(minutes=5)) == T0 + timedelta(seconds=1)


def test_no_timer_means_no_next_due(ports: Ports) -> None:
    assert ports.due_timers.next_due() is None


def test_activity_claim_lease_and_release(ports: Ports) -> None:
    # Given three due activities and one scheduled for later
    probe = Probe(tenant="acme", label="p")

    def activity(name: str, minutes: int, **extra: Any) -> Any:
        return activity_row(probe.id, id=name, run_after=T0 + timedelta(minutes=minutes), **extra)

    rows = [activity("a2", 2), activity("a1", 1), activity("a3", 3), activity("later", 90)]
    rows.append(activity("done", 0, status="completed"))
    _save(ports, probe, activities=rows)
    queue = ports.activity_queue
    now = T0 + timedelta(minutes=10)

    # When one worker claims two, a second worker gets only what is left
    first = queue.claim("w1", 2, 30.0, now)
    assert [a.id for a in first] == ["a1", "a2"]
    assert [a.id for a in queue.claim("w2", 5, 30.0, now)] == ["a3"]
    assert queue.claim("w3", 5, 30.0, now) == []
    assert queue.claim("w3", 0, 30.0, now) == []

    # A lease released by its attempt is claimable at once; another attempt's release is not
    queue.release("a1", attempt=2)
    assert queue.claim("w3", 5, 30.0, now) == []
    queue.release("a1", attempt=1)
    assert [a.id for a in queue.claim("w3", 5, 30.0, now)] == ["a1"]

    # An expired lease (its worker died) is claimable again
    expired = now + timedelta(seconds=31)
    assert {a.id for a in queue.claim("w4", 5, 30.0, expired)} == {"a1", "a2", "a3"}


def test_a_new_attempt_drops_the_old_attempts_lease(ports: Ports) -> None:
    probe = Probe(tenant="acme", label="p")
    row = activity_row(probe.id, id="a1", run_after=T0)
    _save(ports, probe, activities=[row])
    queue = ports.activity_queue
    assert [a.id for a in queue.claim("w1", 1, 300.0, T0)] == ["a1"]

    # When the projection moves the activity to its next attempt
    probe.relabel("retry", at=T0, ref=probe.id)
    retry = activity_row(probe.id, id="a1", attempt=2, run_after=T0, idempotency_key="k2")
    _save(ports, probe, activities=[retry])

    # Then the first attempt's lease no longer holds it
    claimed = queue.claim("w2", 1, 300.0, T0)
    assert [(a.id, a.attempt) for a in claimed] == [("a1", 2)]
