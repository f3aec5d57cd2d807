"""bench/bulk_load.py: instances written with COPY read back through the API like real ones.

The loader copies the stored rows of template instances the engine ran. An instance loaded
that way must be indistinguishable through `waymark serve` — `GET /v1/instances/{id}`, its
history, the list, the task list — from the template it was copied from, apart from its ids
and times; a loaded open approval must resume through the API like a real one; and each
tenant sees only its own copies.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest

from bench import bulk_load

TENANTS = ["acme", "globex"]
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(\+00:00|Z)")


@pytest.fixture(scope="module")
def container(module_database_url: str) -> Iterator[Any]:
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings

    built = build_api(
        Settings(database_url=module_database_url, api_keys="k=acme:admin", db_pool_size=2)
    )
    yield built
    built.close()


def _shape(value: Any) -> Any:
    """The document with its ids, times and feed positions blanked: what must match."""
    if isinstance(value, dict):
        return {k: "<position>" if k == "position" else _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    if isinstance(value, str):
        return _TIME.sub("<time>", _UUID.sub("<id>", value))
    return value


def _ids(database_url: str, tenant: str, definition: str, status: str) -> list[UUID]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id FROM instances WHERE tenant = %s AND definition = %s AND status = %s "
            "ORDER BY created_at",
            (tenant, definition, status),
        ).fetchall()
    return [r[0] for r in rows]


def test_loaded_instances_read_back_like_their_templates(
    container: Any, module_database_url: str, acme: httpx.Client, globex: httpx.Client
) -> None:
    templates = bulk_load.prepare(container, module_database_url, TENANTS)
    statuses = [t.status for t in templates]
    assert statuses == ["completed", "completed", "failed", "completed", "suspended"]
    until = datetime.now(UTC)
    # 40 copies = two rounds of the 20-copy pattern: one round per tenant.
    report = bulk_load.load(
        module_database_url, templates, 40, tenants=TENANTS, weights=bulk_load.WEIGHTS, until=until
    )
    per_round = sum(len(t.events) * w for t, w in zip(templates, bulk_load.WEIGHTS, strict=True))
    assert (report.instances, report.events) == (40, 2 * per_round)

    for template, share in zip(templates, bulk_load.WEIGHTS, strict=True):
        original = acme.get(f"/v1/instances/{template.instance_id}").json()
        history = acme.get(f"/v1/instances/{template.instance_id}/history").json()
        copies = [
            i
            for i in _ids(module_database_url, "acme", original["definition"], template.status)
            if i != template.instance_id
        ]
        # The approved and rejected templates share a definition but not a status.
        assert len(copies) == share
        for copy in copies:
            view = acme.get(f"/v1/instances/{copy}")
            assert view.status_code == 200
            assert view.json()["id"] == str(copy)
            assert _shape(view.json()) == _shape(original)
            copied = acme.get(f"/v1/instances/{copy}/history").json()
            assert _shape(copied) == _shape(history)
            # Its events have feed positions of their own, after the template's, in order.
            positions = [e["position"] for e in copied["items"]]
            assert positions == sorted(positions)
            assert positions[0] > history["items"][-1]["position"]
            # Its own time: within the 30 days before `until`, not the template's.
            created = datetime.fromisoformat(view.json()["created_at"])
            assert until - timedelta(days=30, minutes=6) <= created <= until - timedelta(minutes=4)

    # The other tenant's copies are its own.
    with psycopg.connect(module_database_url) as conn:
        theirs = conn.execute("SELECT id FROM instances WHERE tenant = 'globex' LIMIT 1").fetchone()
    assert theirs is not None
    assert acme.get(f"/v1/instances/{theirs[0]}").status_code == 404
    assert globex.get(f"/v1/instances/{theirs[0]}").status_code == 200

    # The list pages through them newest first, like any instances; one open task per tenant
    # round, plus the template's.
    listed = acme.get("/v1/instances", params={"limit": 500}).json()["items"]
    assert len(listed) == 20 + len(templates)
    stamps = [datetime.fromisoformat(item["created_at"]) for item in listed]
    assert stamps == sorted(stamps, reverse=True)
    tasks = acme.get("/v1/tasks", params={"status": "open", "limit": 500}).json()["items"]
    assert len(tasks) == 2


def test_a_loaded_open_approval_resumes_through_the_api(
    container: Any, module_database_url: str, acme: httpx.Client
) -> None:
    waiting = _ids(module_database_url, "acme", bulk_load.APPROVE["name"], "suspended")
    assert len(waiting) == 2  # the template and its copy, from the test above
    template, copy = waiting
    task_id = acme.get(f"/v1/instances/{copy}").json()["bookmarks"][0]["id"]
    template_task = acme.get(f"/v1/instances/{template}").json()["bookmarks"][0]["id"]
    assert task_id != template_task  # a fresh id, not the template's
    done = acme.post(f"/v1/tasks/{task_id}/complete", json={"outcome": "approved"})
    assert done.status_code == 200, done.text
    assert acme.get(f"/v1/instances/{copy}").json()["status"] == "completed"
    history = acme.get(f"/v1/instances/{copy}/history").json()["items"]
    assert [e["version"] for e in history] == list(range(1, len(history) + 1))
    # The template's own task is untouched: the copy's task was a row of its own.
    assert acme.get(f"/v1/instances/{template}").json()["status"] == "suspended"
    assert acme.get(f"/v1/tasks/{template_task}").json()["status"] == "open"


def test_capture_refuses_state_that_is_not_plain_json(
    container: Any, module_database_url: str
) -> None:
    with psycopg.connect(module_database_url) as conn:
        found = conn.execute(
            "SELECT id FROM instances WHERE tenant = 'acme' ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
        assert found is not None
        assert bulk_load.capture(module_database_url, [found[0]], "acme")  # control: it can
        conn.execute(
            "UPDATE waymark_events SET state = '\\x00' WHERE originator_id = %s "
            "AND originator_version = 1",
            (found[0],),
        )
    with pytest.raises(ValueError, match="not plain JSON"):
        bulk_load.capture(module_database_url, [found[0]], "acme")
