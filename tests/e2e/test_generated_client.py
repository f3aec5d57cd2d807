"""A client generated with `openapi-python-client` from a real server's `/openapi.json`
walks the README quick start: every result is a typed model, every error a typed Problem.

The client is generated once per module into a temporary directory and imported from there.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from application.callbacks import sign
from tests.e2e.conftest import TENANT_SECRETS, Server, Target, purchase_approval, unique, wait_for

pytestmark = pytest.mark.e2e

GENERATOR = Path(sys.executable).with_name("openapi-python-client")


class Generated:
    """The generated package: `op("instances", "start_instance")`, `model("InstanceView")`."""

    def __init__(self, package: str):
        self.package = package
        self.models = importlib.import_module(f"{package}.models")
        self.client = importlib.import_module(f"{package}.client")

    def op(self, tag: str, operation_id: str) -> Any:
        return importlib.import_module(f"{self.package}.api.{tag}.{operation_id}")

    def model(self, name: str) -> Any:
        return getattr(self.models, name)


@pytest.fixture(scope="module")
def generated(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    workdir = tmp_path_factory.mktemp("generated-client")
    document = workdir / "openapi.json"
    document.write_text(httpx.get(server.base_url + "/openapi.json").text)
    config = workdir / "config.yaml"
    config.write_text("post_hooks: []\n")  # no ruff formatting of the generated code
    package = unique("waymark_client").replace("-", "_")
    result = subprocess.run(  # noqa: S603
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(document),
            "--output-path",
            str(workdir / package),
            "--meta",
            "none",
            "--config",
            str(config),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Any warning (a schema it could not turn into a model, ...) fails the generation.
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(workdir))
    try:
        yield Generated(package)
    finally:
        sys.path.remove(str(workdir))
        for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[name]


@pytest.fixture
def acme(server: Server, generated: Generated) -> Iterator[Any]:
    with generated.client.AuthenticatedClient(base_url=server.base_url, token="k-acme") as c:
        yield c


def test_quick_start_with_typed_results(generated: Generated, acme: Any, target: Target) -> None:
    g = generated
    DefinitionView, InstanceView, Problem = (
        g.model("DefinitionView"),
        g.model("InstanceView"),
        g.model("Problem"),
    )
    name = unique("po")

    # 1. Publish the definition: 201 with a typed definition.
    published = g.op("definitions", "publish_definition").sync_detailed(
        client=acme, body=purchase_approval(name, target.base_url)
    )
    assert published.status_code == 201, published.content
    assert isinstance(published.parsed, DefinitionView)
    assert published.parsed.version == 1
    assert isinstance(published.parsed.created_at, datetime)

    # 2. An invalid definition: a typed 422 problem naming each part by its JSON path.
    broken = g.op("definitions", "publish_definition").sync_detailed(
        client=acme,
        body={
            "name": unique("broken"),
            "nodes": [{"id": "start", "type": "teleport"}, {"id": "done", "type": "end"}],
            "routes": [{"from": "start", "to": "nowhere"}],
        },
    )
    assert broken.status_code == 422
    assert isinstance(broken.parsed, Problem)
    assert broken.parsed.type_ == "https://waymark.dev/problems/invalid-definition"
    paths = {e.path for e in broken.parsed.errors}
    assert "$.nodes[0].type" in paths and "$.routes[0].to" in paths, paths

    # 3. Start with an idempotency key: 201 ... and again: 200 with the same typed instance.
    start = g.model("StartInstanceRequest").from_dict(
        {
            "definition": name,
            "input": {"amount": 15000, "po_id": "PO-1"},
            "idempotency_key": unique("po-1"),
        }
    )
    started = g.op("instances", "start_instance").sync_detailed(client=acme, body=start)
    assert started.status_code == 201, started.content
    assert isinstance(started.parsed, InstanceView)
    instance_id = started.parsed.id
    assert isinstance(instance_id, UUID)
    assert started.headers["Location"] == f"/v1/instances/{instance_id}"
    again = g.op("instances", "start_instance").sync_detailed(client=acme, body=start)
    assert again.status_code == 200
    assert isinstance(again.parsed, InstanceView)
    assert again.parsed.id == instance_id

    # 4. Complete the manager's task, then the CFO's (amount > 10000).
    first = complete_open_task(g, acme, instance_id, "manager_approval")
    complete_open_task(g, acme, instance_id, "cfo_approval")

    # A consumed task again: a typed 409 problem.
    repeated = g.op("tasks", "complete_task").sync_detailed(
        task_id=first,
        client=acme,
        body=g.model("CompleteTaskRequest").from_dict({"outcome": "approved"}),
    )
    assert repeated.status_code == 409, repeated.content
    assert isinstance(repeated.parsed, Problem)
    assert repeated.parsed.status == 409

    # 5. The task worker calls notify, then the instance completes; read it and its history.
    def completed() -> Any:
        view = g.op("instances", "get_instance").sync(instance_id=str(instance_id), client=acme)
        assert isinstance(view, InstanceView)
        return view if view.status.value == "completed" else None

    view = wait_for(completed, what="the instance to complete")
    assert isinstance(view.updated_at, datetime) and isinstance(view.ended_at, datetime)
    history = g.op("instances", "get_history").sync(instance_id=str(instance_id), client=acme)
    assert isinstance(history, g.model("HistoryPage"))
    assert all(isinstance(e, g.model("HistoryEntry")) for e in history.items)
    assert [e.version for e in history.items] == list(range(1, len(history.items) + 1))
    assert isinstance(history.items[0].timestamp, datetime)

    # An unknown instance: a typed 404.
    missing = g.op("instances", "get_instance").sync_detailed(
        instance_id=str(UUID(int=0)), client=acme
    )
    assert missing.status_code == 404 and isinstance(missing.parsed, Problem)


def complete_open_task(g: Generated, client: Any, instance_id: UUID, node_id: str) -> str:
    """Approve the instance's open task at `node_id`; the task's id."""

    def open_task() -> Any:
        page = g.op("tasks", "list_tasks").sync(client=client, limit=500)
        assert isinstance(page, g.model("TaskPage"))
        found = [
            t
            for t in page.items
            if t.instance_id == instance_id and t.node_id == node_id and t.status.value == "open"
        ]
        return found[0] if found else None

    task = wait_for(open_task, what=f"an open task at {node_id}")
    assert isinstance(task, g.model("TaskView"))
    done = g.op("tasks", "complete_task").sync_detailed(
        task_id=task.id,
        client=client,
        body=g.model("CompleteTaskRequest").from_dict({"outcome": "approved", "comment": "ok"}),
    )
    assert done.status_code == 200, done.content
    assert isinstance(done.parsed, g.model("InstanceView"))
    return str(task.id)


def test_optional_bodies_may_be_omitted(generated: Generated, acme: Any) -> None:
    g = generated
    name = unique("waits")
    wait_definition = {
        "name": name,
        "nodes": [
            {"id": "paid", "type": "wait", "event": "payment.received", "result_var": "p"},
            {"id": "done", "type": "end"},
        ],
        "routes": [{"from": "paid", "to": "done"}],
    }
    g.op("definitions", "publish_definition").sync(client=acme, body=wait_definition)
    start = g.model("StartInstanceRequest").from_dict({"definition": name})
    # Resume and cancel without a body (both bodies are optional).
    first = g.op("instances", "start_instance").sync(client=acme, body=start)
    bookmark = first.bookmarks[0]
    assert isinstance(bookmark, g.model("BookmarkView")) and bookmark.kind.value == "wait"
    resumed = g.op("instances", "resume_bookmark").sync_detailed(
        instance_id=str(first.id), bookmark_id=bookmark.id, client=acme
    )
    assert resumed.status_code == 200, resumed.content
    assert isinstance(resumed.parsed, g.model("ResumeResult"))
    assert resumed.parsed.status.value == "completed"
    second = g.op("instances", "start_instance").sync(client=acme, body=start)
    cancelled = g.op("instances", "cancel_instance").sync_detailed(
        instance_id=str(second.id), client=acme
    )
    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.parsed.status.value == "cancelled"


def test_signed_callback_and_webhook_send_their_bodies(
    generated: Generated, acme: Any, server: Server
) -> None:
    g = generated
    name = unique("signed")
    g.op("definitions", "publish_definition").sync(
        client=acme,
        body={
            "name": name,
            "nodes": [
                {"id": "paid", "type": "wait", "event": "payment.received", "result_var": "p"},
                {"id": "done", "type": "end", "output": {"paid": "vars.p"}},
            ],
            "routes": [{"from": "paid", "to": "done"}],
            "triggers": [{"type": "webhook"}],
        },
    )
    secret = TENANT_SECRETS["acme"]

    def signature(payload: Any, path: str, at: int | None = None) -> str:
        # Sign exactly the bytes the generated client sends (httpx's JSON encoding), for
        # the path it posts to (a signature is valid for one target only).
        body = httpx.Request("POST", server.base_url, json=payload).content
        return sign(secret, body, int(time.time()) if at is None else at, path)

    # A webhook needs no API key: a plain Client, the tenant in Waymark-Tenant.
    payload = {"order": "A-1"}
    key = unique("hook")
    with g.client.Client(base_url=server.base_url) as anonymous:
        hooked = g.op("webhooks", "trigger_webhook").sync_detailed(
            definition=name,
            client=anonymous,
            body=payload,
            waymark_signature=signature(payload, f"/v1/webhooks/{name}"),
            waymark_tenant="acme",
            idempotency_key=key,
        )
        assert hooked.status_code == 201, hooked.content
        assert isinstance(hooked.parsed, g.model("InstanceView"))
        assert hooked.parsed.input_.to_dict() == payload
        replay = g.op("webhooks", "trigger_webhook").sync_detailed(
            definition=name,
            client=anonymous,
            body=payload,
            # A redelivery is signed anew (each signature is accepted once).
            waymark_signature=signature(payload, f"/v1/webhooks/{name}", int(time.time()) + 1),
            waymark_tenant="acme",
            idempotency_key=key,
        )
        assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
        assert replay.parsed.id == hooked.parsed.id

        # The callback resumes the webhook-started instance's wait with the signed body.
        token = hooked.parsed.bookmarks[0].token
        paid = {"paid": True}
        called = g.op("callbacks", "deliver_callback").sync_detailed(
            token=token,
            client=anonymous,
            body=paid,
            waymark_signature=signature(paid, f"/v1/callbacks/{token}"),
        )
        assert called.status_code == 200, called.content
        assert isinstance(called.parsed, g.model("ResumeResult"))
        assert called.parsed.instance_id == hooked.parsed.id

        # A wrong signature: a typed 401 problem.
        refused = g.op("callbacks", "deliver_callback").sync_detailed(
            token=token, client=anonymous, body=paid, waymark_signature="t=1,v1=" + "0" * 64
        )
        assert refused.status_code == 401 and isinstance(refused.parsed, g.model("Problem"))
    view = g.op("instances", "get_instance").sync(instance_id=str(hooked.parsed.id), client=acme)
    assert view.status.value == "completed"
    assert view.output.to_dict() == {"paid": paid}


def test_the_feed_and_the_event_types_parse_as_typed_results(
    generated: Generated, acme: Any, target: Target
) -> None:
    g = generated
    name = unique("po-feed")
    published = g.op("definitions", "publish_definition").sync_detailed(
        client=acme, body=purchase_approval(name, target.base_url)
    )
    assert published.status_code == 201, published.content
    body = {"definition": name, "input": {"amount": 5, "po_id": "PO-9"}}
    start = g.model("StartInstanceRequest").from_dict(body)
    started = g.op("instances", "start_instance").sync(client=acme, body=start)
    assert isinstance(started, g.model("InstanceView"))

    page = g.op("feed", "read_feed").sync(client=acme, after=0, limit=500)
    assert isinstance(page, g.model("FeedPage"))
    ours = [e for e in page.items if e.subject == str(started.id)]
    assert ours and all(isinstance(e, g.model("FeedEvent")) for e in ours)
    assert ours[0].type_ == "waymark.instance.started" and isinstance(ours[0].time, datetime)
    assert isinstance(page.next_after, int)

    types = g.op("feed", "list_event_types").sync(client=acme)
    assert isinstance(types, g.model("EventTypeCatalogue"))
    assert "waymark.instance.started" in {t.type_ for t in types.items}
