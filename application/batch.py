"""Several commands decided one after the other and committed together (group commit).

A task worker that ran a batch of actions has a batch of results to record: deciding each
one is cheap, committing each alone costs a transaction and an fsync'd COMMIT each. Here
every command is decided on its own `CommandAttempt` (as `CommandRunner.run` would), then
all the prepared commits go to the committer at once (`Committer.commit_all`: one
transaction where they can share one). Commands with the same target (several results of
one instance: the items of a `for_each`) are decided one after the other on ONE attempt, so
the instance is loaded once and their events are one commit; should one of them raise, each
of that target's commands is run again alone (its own outcome). A command whose commit lost
a concurrency race, or that touches an instance another group of the batch touched (it
decided on state that commit is about to change), is run again on its own through
`CommandRunner.run`, with its usual bounded re-decision. Each command's outcome is its own:
a result or the exception it raised.

The timer worker fires its batches of due timers the same way (`TimerService`), with
`preload`: the batch's instances are read in one query (`InstanceStore.get_many`) before
the decisions instead of one read each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar
from uuid import UUID

from application.ports import ConcurrencyConflictError, DefinitionChangedError, PendingCommit
from application.runner import CommandRunner
from application.session import CommandAttempt
from domain.env import StepBudget

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
    prepared: list[tuple[list[int], list[Any], PendingCommit]] = []
    touched: set[UUID] = set()
    targets = [target for _, target in commands]
    with runner.locks.holding(targets) if runner.locks is not None else _nothing():
        # One read for the whole batch; each target's commands share one attempt.
        loaded = runner.store.get_many(targets) if preload else {}
        for indices in _by_target(targets):
            session = runner.new_attempt()
            target = targets[indices[0]]
            if target in loaded:
                session.instances[target] = loaded.pop(target)
            try:
                results = [_decide(session, commands[i][0], n) for n, i in enumerate(indices)]
                pending = session.prepare()
            except Exception as e:  # this command's own outcome
                if session.cached:  # perhaps decided on a stale copy: again, alone
                    runner.forget(session.cached)
                    alone.extend(indices)
                elif len(indices) == 1:
                    outcomes[indices[0]] = e
                else:  # which of them raised, and what the others decide: each alone
                    alone.extend(indices)
                continue
            if not session.trusted(pending):  # see application/instance_cache.py
                runner.forget(session.cached)
                alone.extend(indices)
                continue
            if touched.intersection(pending.instance_ids) or touched.intersection(
                session.instances
            ):
                alone.extend(indices)
                continue
            touched.update(session.instances)
            prepared.append((indices, results, pending))
        runner.offer(pending for _, _, pending in prepared)
        try:
            errors = runner.committer.commit_all([pending for _, _, pending in prepared])
        except BaseException:
            for _, _, pending in prepared:
                runner.withdraw(pending)
            raise
    stored: list[PendingCommit] = []
    for (indices, results, pending), error in zip(prepared, errors, strict=True):
        if error is None:
            for i, result in zip(indices, results, strict=True):
                outcomes[i] = result
            stored.append(pending)
            continue
        runner.withdraw(pending)
        if isinstance(error, ConcurrencyConflictError):
            runner.forget(pending.instance_ids)  # cached copies behind the store
            alone.extend(indices)
        elif isinstance(error, DefinitionChangedError):
            runner.definitions.forget(error.admitted)  # a child's definition: admit again
            runner.forget(pending.instance_ids)  # the aggregates its decision changed
            alone.extend(indices)
        else:
            for i in indices:
                outcomes[i] = error
    runner.committed(stored)
    runner.keep(stored)  # the outcomes above are the commands' own answers, not aggregates
    for i in sorted(alone):
        command, target = commands[i]
        try:
            outcomes[i] = runner.run(command, target)
        except Exception as e:  # this command's own outcome
            outcomes[i] = e
    return outcomes


def _by_target(targets: list[UUID]) -> list[list[int]]:
    """The commands' indices grouped by target, in the order the targets first appear."""
    groups: dict[UUID, list[int]] = {}
    for i, target in enumerate(targets):
        groups.setdefault(target, []).append(i)
    return list(groups.values())


def _decide(session: CommandAttempt, command: Command[Any], position: int) -> Any:
    """Run one command of a target's group; each walks the graph with a step budget of its
    own, as when run alone. The children and emits the group's commands ask for are settled
    together when it is prepared, within one command's bounds (application/session.py)."""
    if position:
        session.env = replace(session.env, steps=StepBudget())
    return command(session)


class _nothing:  # noqa: N801 - a null context manager, cheaper than contextlib's per call
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
