"""The signed task-link tokens (application/task_links.py), without I/O: bound to tenant,
task and decision, expiring, and refused when any byte or the key differs; and the links an
approval's notification renders (`task.approve_url`, `task.reject_url`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from application.errors import TaskLinkExpiredError, TaskLinkInvalidError
from application.task_links import TaskLinkSigner
from domain.env import CommandEnv
from tests.unit.engine_support import FakeEnv, definition, only_open, start

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


def test_links_differ_by_decision_task_tenant_assignee_and_time() -> None:
    signer = TaskLinkSigner(KEY)
    assert signer.read(signer.token("acme", "t", "approve", NOW, "ann"), NOW).assignee == "ann"
    tokens = {
        signer.token("acme", "task-1", "approve", NOW, "ann"),
        signer.token("acme", "task-1", "approve", NOW),
        signer.token("acme", "task-1", "reject", NOW),
        signer.token("acme", "task-2", "approve", NOW),
        signer.token("globex", "task-1", "approve", NOW),
        signer.token("acme", "task-1", "approve", NOW + timedelta(seconds=1)),
    }
    assert len(tokens) == 6
    assert len({signer.read(t, NOW).link_id for t in tokens}) == 6


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


class SigningEnv(FakeEnv):
    """The engine's env with a link signer and a public URL, as the application builds it."""

    def __init__(self, signer: TaskLinkSigner):
        super().__init__()
        self.signer = signer

    def env(self) -> CommandEnv:
        return replace(super().env(), public_url="https://w.example/", task_link=self.signer.token)


def _mail(**extra: str) -> dict[str, Any]:
    return {
        "created": {
            "type": "http",
            "url": "https://chat.example/x",
            "body": {
                "approve": "{{ task.approve_url }}",
                "reject": "{{ task.reject_url }}",
                "url": "{{ task.url }}",
                **extra,
            },
        }
    }


def _flow(kind: str) -> Any:
    node: dict[str, Any] = {"id": "a", "type": kind, "notify": _mail()}
    node.update({"approver_role": "manager"} if kind == "approval" else {"role": "clerk"})
    return definition([node, {"id": "done", "type": "end"}], [{"from": "a", "to": "done"}])


def test_an_approval_notification_carries_signed_links_for_its_task_and_tenant() -> None:
    signer = TaskLinkSigner(KEY)
    fake = SigningEnv(signer)
    instance = start(_flow("approval"), fake)
    task = only_open(instance)
    (created,) = instance.scheduled_activities()
    body = created.action["body"]
    assert body["url"] == f"https://w.example/v1/tasks/{task.id}"
    for decision in ("approve", "reject"):
        prefix = "https://w.example/v1/task-links/"
        assert body[decision].startswith(prefix)
        claims = signer.read(body[decision].removeprefix(prefix), fake.now)
        assert (claims.tenant, claims.task_id, claims.decision) == (
            instance.tenant,
            task.id,
            decision,
        )
        assert claims.expires_at == fake.now.replace(microsecond=0) + timedelta(hours=72)


def test_a_user_task_or_a_process_without_a_signer_gets_no_decision_links() -> None:
    instance = start(_flow("user_task"), SigningEnv(TaskLinkSigner(KEY)))
    (created,) = instance.scheduled_activities()
    assert created.action["body"]["approve"] is None
    instance = start(_flow("approval"), FakeEnv())
    (created,) = instance.scheduled_activities()
    assert created.action["body"]["reject"] is None
    assert created.action["body"]["url"].startswith("/v1/tasks/")
