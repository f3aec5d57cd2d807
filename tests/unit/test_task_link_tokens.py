"""The signed task-link tokens (application/task_links.py), without I/O: bound to tenant,
task and decision, expiring, and refused when any byte or the key differs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from application.errors import TaskLinkExpiredError, TaskLinkInvalidError
from application.task_links import TaskLinkSigner

KEY = b"k" * 32
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_a_token_reads_back_its_claims_until_it_expires() -> None:
    signer = TaskLinkSigner(KEY, timedelta(hours=72))
    token = signer.token("acme", "task-1", "approve", NOW)
    claims = signer.read(token, NOW + timedelta(hours=71, minutes=59))
    assert (claims.tenant, claims.task_id, claims.decision, claims.outcome) == (
        "acme",
        "task-1",
        "approve",
        "approved",
    )
    assert claims.expires_at == NOW + timedelta(hours=72)
    with pytest.raises(TaskLinkExpiredError):
        signer.read(token, NOW + timedelta(hours=72))


def test_links_differ_by_decision_task_tenant_and_time() -> None:
    signer = TaskLinkSigner(KEY)
    tokens = {
        signer.token("acme", "task-1", "approve", NOW),
        signer.token("acme", "task-1", "reject", NOW),
        signer.token("acme", "task-2", "approve", NOW),
        signer.token("globex", "task-1", "approve", NOW),
        signer.token("acme", "task-1", "approve", NOW + timedelta(seconds=1)),
    }
    assert len(tokens) == 5
    assert len({signer.read(t, NOW).link_id for t in tokens}) == 5


def test_every_changed_byte_and_another_key_are_refused() -> None:
    signer = TaskLinkSigner(KEY)
    token = signer.token("acme", "task-1", "reject", NOW)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i, char in enumerate(token):
        if char == ".":
            continue
        # Every other character, the last one's spare base64 bits included.
        for other in alphabet.replace(char, "")[:: 1 if i == len(token) - 1 else 16]:
            with pytest.raises(TaskLinkInvalidError):
                signer.read(token[:i] + other + token[i + 1 :], NOW)
    with pytest.raises(TaskLinkInvalidError):
        TaskLinkSigner(b"x" * 32).read(token, NOW)
    for bad in ("", ".", "a.b", token + "é", token.replace(".", "")):
        with pytest.raises(TaskLinkInvalidError):
            signer.read(bad, NOW)


def test_a_forged_token_that_is_also_expired_is_invalid_not_expired() -> None:
    # The MAC is checked first: "expired" is only ever said of a genuine link.
    signer = TaskLinkSigner(KEY, timedelta(seconds=1))
    token = signer.token("acme", "task-1", "approve", NOW)
    with pytest.raises(TaskLinkInvalidError):
        signer.read(token[:-1] + ("A" if token[-1] != "A" else "B"), NOW + timedelta(days=9))


def test_an_unknown_decision_is_not_signed() -> None:
    with pytest.raises(ValueError, match="decision"):
        TaskLinkSigner(KEY).token("acme", "task-1", "maybe", NOW)
