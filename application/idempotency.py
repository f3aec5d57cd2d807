"""Idempotency keys of commands: a repeat answers with the first result, never acts twice.

The result is stored under (tenant, scope, key) in the command's own transaction
(`CommandAttempt.remember`), together with a fingerprint of what the command acts on, so a
key reused for another target is refused (`IdempotencyKeyReusedError`) instead of being
answered for it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, Protocol
from uuid import UUID

from application.errors import IdempotencyKeyReusedError
from application.ports import DuplicateIdempotencyKeyError
from application.runner import CommandRunner
from application.session import CommandAttempt
from domain.errors import BookmarkNotOpenError, InstanceNotActiveError


def fingerprint(*parts: Any) -> str:
    """What a keyed request acts on, so a reused key can be told from a repeated delivery."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def stored_result(request: str, result: dict[str, Any]) -> dict[str, Any]:
    """The idempotency record's content: the request's fingerprint and the first result."""
    return {"request": request, "result": result}


class IdempotencyRecords(Protocol):
    """Where the first results are read back (the read model's idempotency records)."""

    def idempotent_result(self, tenant: str, scope: str, key: str) -> dict[str, Any] | None: ...


class KeyedCommands:
    """Runs commands that may carry an idempotency key: commands a caller waits for."""

    def __init__(self, runner: CommandRunner, queries: IdempotencyRecords):
        self.runner = runner
        self.queries = queries

    def first_result(
        self, tenant: str, scope: str, key: str | None, request: str
    ) -> dict[str, Any] | None:
        """The first result stored under this key; the key must not name another request."""
        stored = self.queries.idempotent_result(tenant, scope, key) if key else None
        if stored is None:
            return None
        if stored.get("request") != request:
            raise IdempotencyKeyReusedError(key or "")
        result: dict[str, Any] = stored["result"]
        return result

    def run(
        self,
        command: Callable[[CommandAttempt], dict[str, Any]],
        targets: list[UUID],
        tenant: str,
        scope: str,
        key: str | None,
        request: str,
        lost_race: tuple[type[Exception], ...] = (),
    ) -> tuple[dict[str, Any], bool]:
        """(result, replayed): the command's own result, or the first one when a concurrent
        command with the same key won the race (`lost_race`: the command's own errors that
        a winner's change causes, besides a consumed bookmark or an ended instance)."""
        lost = (DuplicateIdempotencyKeyError, BookmarkNotOpenError, InstanceNotActiveError)
        try:
            return self.runner.run(command, targets, caller_waits=True), False
        except (*lost, *lost_race):  # type: ignore[misc]  # a tuple of exception classes
            # A concurrent delivery with the same key committed first (we either collided
            # on its record, or found its bookmark consumed or its instance ended): answer
            # as it did. Without a stored result under the key, the error stands.
            prior = self.first_result(tenant, scope, key, request)
            if prior is None:
                raise
            return prior, True
