"""Several commands decided one after the other and committed together (group commit).

A task worker that ran a batch of actions has a batch of results to record: deciding each
one is cheap, committing each alone costs a transaction and an fsync'd COMMIT each. Here
every command is decided on its own `CommandAttempt` (as `CommandRunner.run` would), then
all the prepared commits go to the committer at once (`Committer.commit_all`: one
transaction where they can share one). A command whose commit lost a concurrency race, or
that touches an instance an earlier command of the batch touched (it decided on state that
commit is about to change), is run again on its own through `CommandRunner.run`, with its
usual bounded re-decision. Each command's outcome is its own: a result or the exception it
raised.

The timer worker fires its batches of due timers the same way (`TimerService`), with
`preload`: the batch's instances are read in one query (`InstanceStore.get_many`) before
the decisions instead of one read each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from application.ports import ConcurrencyConflictError, PendingCommit
from application.session import CommandAttempt, CommandRunner

T = TypeVar("T")

Command = Callable[[CommandAttempt], T]


def run_batch(
    runner: CommandRunner,
    commands: Sequence[tuple[Command[Any], UUID]],
    *,
    preload: bool = False,
) -> list[Any | Exception]:
    """Run each `(command, target)`; each one's result or the exception it raised."""
    if len(commands) == 1:  # nothing to share: the plain path (its own command span)
        command, target = commands[0]
        try:
            return [runner.run(command, target)]
        except Exception as e:  # this command's own outcome
            return [e]
    outcomes: list[Any | Exception] = [None] * len(commands)
    alone: list[int] = []  # run again on their own, after the shared commit
    prepared: list[tuple[int, Any, PendingCommit]] = []
    touched: set[UUID] = set()
    targets = [target for _, target in commands]
    with runner.locks.holding(targets) if runner.locks is not None else _nothing():
        # One read for the whole batch; a target named twice is loaded again by its second
        # command (each attempt must own its aggregates).
        loaded = runner.store.get_many(targets) if preload else {}
        for i, (command, target) in enumerate(commands):
            session = runner.new_attempt()
            if target in loaded:
                session.instances[target] = loaded.pop(target)
            try:
                result = command(session)
                pending = session.prepare()
            except Exception as e:  # this command's own outcome
                if session.cached:  # perhaps decided on a stale copy: again, alone
                    runner.forget(session.cached)
                    alone.append(i)
                else:
                    outcomes[i] = e
                continue
            if not session.trusted(pending):  # see application/instance_cache.py
                runner.forget(session.cached)
                alone.append(i)
                continue
            if touched.intersection(pending.instance_ids) or touched.intersection(
                session.instances
            ):
                alone.append(i)
                continue
            touched.update(session.instances)
            prepared.append((i, result, pending))
        runner.offer(pending for _, _, pending in prepared)
        try:
            errors = runner.committer.commit_all([pending for _, _, pending in prepared])
        except BaseException:
            for _, _, pending in prepared:
                runner.withdraw(pending)
            raise
    stored: list[PendingCommit] = []
    for (i, result, pending), error in zip(prepared, errors, strict=True):
        if error is None:
            outcomes[i] = result
            stored.append(pending)
            continue
        runner.withdraw(pending)
        if isinstance(error, ConcurrencyConflictError):
            runner.forget(pending.instance_ids)  # cached copies behind the store
            alone.append(i)
        else:
            outcomes[i] = error
    runner.committed(stored)
    for i in sorted(alone):
        command, target = commands[i]
        try:
            outcomes[i] = runner.run(command, target)
        except Exception as e:  # this command's own outcome
            outcomes[i] = e
    return outcomes


class _nothing:  # noqa: N801 - a null context manager, cheaper than contextlib's per call
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
