"""Several independent commands decided one by one and stored in ONE transaction.

The timer worker fires a batch of due timers this way (`TimerService`): one commit for
many instances instead of one each, so the events table's exclusive lock, the round trips
and the WAL flush are paid once per group. What each command means does not change —
each is decided by its own `CommandAttempt` on fresh state, exactly as `CommandRunner.run`
would, and optimistic concurrency still guards every instance (the group's instances are read in
one query, `InstanceStore.get_many`, before the decisions): the group's save is one
transaction, so it stores all of its commits or none. A command whose commit collides
(another replica fired that timer first) is taken out of the group and handed back to the
caller, who runs it alone through `CommandRunner.run` (re-decided, retried); the others
are saved again without re-deciding them (`PendingCommit.involves`). Any other failure of
the group's save hands every command back, so the one that fails fails alone.

Commands whose commits would touch the same instance (two timers of one instance, two
children ending into one parent) cannot share a group: a later one is handed back too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from uuid import UUID

from application.ports import ConcurrencyConflictError, PendingCommit
from application.read_models import Projection
from application.session import CommandAttempt, CommandRunner

T = TypeVar("T")
K = TypeVar("K")


@dataclass
class GroupOutcome(Generic[K, T]):
    """Per key: the command's result (committed), its error (decided nothing), or handed
    back (`alone`: run it on its own)."""

    results: dict[K, T] = field(default_factory=dict)
    errors: dict[K, Exception] = field(default_factory=dict)
    alone: list[K] = field(default_factory=list)


def run_grouped(
    runner: CommandRunner,
    commands: Sequence[tuple[K, UUID, Callable[[CommandAttempt], T]]],
) -> GroupOutcome[K, T]:
    """Decide each `(key, target, command)` on its own attempt, store them together."""
    outcome: GroupOutcome[K, T] = GroupOutcome()
    targets = [target for _key, target, _command in commands]
    with runner.holding(targets):
        decided: list[tuple[K, T, PendingCommit]] = []
        touched: set[UUID] = set()
        # One read for the whole group; a target named twice is loaded again by its second
        # command (each attempt must own its aggregates).
        loaded = runner.store.get_many(targets)
        for key, target, command in commands:
            session = runner.new_attempt()
            if target in loaded:
                session.instances[target] = loaded.pop(target)
            try:
                result = command(session)
                pending = session.prepare()
            except Exception as e:  # noqa: BLE001 - the caller classifies each error
                outcome.errors[key] = e
                continue
            if pending.instance_ids & touched:
                outcome.alone.append(key)  # decided on state a group member changes
                continue
            touched |= pending.instance_ids
            decided.append((key, result, pending))
        while decided:
            try:
                runner.commit(_merged([pending for _key, _result, pending in decided]))
            except ConcurrencyConflictError as e:
                collided = [d for d in decided if d[2].involves(e)]
                if not collided:  # not attributable: every one runs alone
                    collided = decided
                outcome.alone.extend(key for key, _result, _pending in collided)
                decided = [d for d in decided if d not in collided]
                continue
            except Exception:  # noqa: BLE001 - e.g. one commit too large: each runs alone,
                # so the one that fails fails on its own (and nothing of the group was stored)
                outcome.alone.extend(key for key, _result, _pending in decided)
                break
            outcome.results.update((key, result) for key, result, _pending in decided)
            break
    return outcome


def _merged(commits: list[PendingCommit]) -> PendingCommit:
    projection = Projection()
    for pending in commits:
        projection.extend(pending.projection)
    return PendingCommit(
        instances=tuple(i for pending in commits for i in pending.instances),
        events=tuple(e for pending in commits for e in pending.events),
        projection=projection,
    )
