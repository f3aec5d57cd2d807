"""Analytics against the real PostgreSQL: instances started, ended and left open through the
real services, counted, timed and judged against the definition's SLA by the database."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import pytest

from application.commands import CancelInstance, CompleteTask, StartInstance

pytestmark = pytest.mark.integration

T = TypeVar("T")

TENANT = "acme"
OTHER = "globex"
RUSH_SLA_HOURS = 0.0001  # 0.36 s: instances still open a moment later are past it


def approval_flow(name: str, task_sla_hours: float = 24, **document: Any) -> dict[str, Any]:
    """Approve → completed, reject → failed. `instant` input ends it at once, completed."""
    return {
        "name": name,
        **document,
        "nodes": [
            {"id": "route", "type": "gateway"},
            {"id": "ok", "type": "approval", "approver_role": "boss", "sla_hours": task_sla_hours},
            {"id": "no", "type": "end", "status": "failed"},
            {"id": "done", "type": "end"},
        ],
        "routes": [
            {"from": "route", "to": "done", "condition": "input.instant"},
            {"from": "route", "to": "ok", "default": True},
            {"from": "ok", "to": "done", "outcome": "approved"},
            {"from": "ok", "to": "no", "outcome": "rejected"},
        ],
    }


@pytest.fixture
def container(database_url: str) -> Iterator[Any]:
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings

    built = build_api(Settings(database_url=database_url, api_keys="k=acme:admin"))
    yield built
    built.close()


def poll(probe: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
    """`probe()` once it is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Flows:
    """Start instances of one definition and move them to each final status."""

    def __init__(self, container: Any, tenant: str, definition: str) -> None:
        self.container, self.tenant, self.definition = container, tenant, definition

    def start(self, instant: bool = False) -> dict[str, Any]:
        view, _ = self.container.instances.start(
            StartInstance(self.tenant, self.definition, input={"instant": instant})
        )
        return view

    def decide(self, view: dict[str, Any], outcome: str) -> None:
        self.container.tasks.complete(
            CompleteTask(
                self.tenant,
                view["bookmarks"][0]["id"],
                outcome=outcome,
                data=None,
                comment=None,
                user="u",
            )
        )

    def cancel(self, view: dict[str, Any]) -> None:
        self.container.instances.cancel(CancelInstance(self.tenant, UUID(view["id"]), "not needed"))


def by_definition(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["definition"]: item for item in report["items"]}


def test_counts_durations_sla_and_tasks_per_definition(container: Any) -> None:
    # Given "review" (no SLA, tasks due in a day) and "rush" (a 0.36 s SLA, tasks due as
    # soon), and another tenant's "review"
    container.definitions.publish(TENANT, approval_flow("review"))
    container.definitions.publish(
        TENANT, approval_flow("rush", RUSH_SLA_HOURS, sla_hours=RUSH_SLA_HOURS)
    )
    container.definitions.publish(OTHER, approval_flow("review"))
    Flows(container, OTHER, "review").start()
    before = container.clock.now()

    review = Flows(container, TENANT, "review")
    approved, approved_too, rejected, cancelled, _open = (review.start() for _ in range(5))
    review.decide(approved, "approved")
    review.decide(approved_too, "approved")
    review.decide(rejected, "rejected")
    review.cancel(cancelled)

    rush = Flows(container, TENANT, "rush")
    rush.start(instant=True)  # completed in its start command: within the SLA
    late_approved, late_rejected, late_cancelled, _still_open = (rush.start() for _ in range(4))

    # When the four waiting ones are past the SLA (and their tasks past their due time)
    def all_late() -> dict[str, Any] | None:
        item = by_definition(container.analytics.report(TENANT))["rush"]
        return item if (item["sla"]["breached"], item["tasks"]["overdue"]) == (4, 4) else None

    poll(all_late, "the open rush instances to breach their SLA")
    rush.decide(late_approved, "approved")
    rush.decide(late_rejected, "rejected")
    rush.cancel(late_cancelled)
    report = container.analytics.report(TENANT)

    # Then each definition has its exact counts, sorted by name
    assert [item["definition"] for item in report["items"]] == ["review", "rush"]
    items = by_definition(report)
    for name in ("review", "rush"):
        counts = {k: items[name][k] for k in ("started", "completed", "failed", "cancelled")}
        assert counts == {"started": 5, "completed": 2, "failed": 1, "cancelled": 1}, name
        assert (items[name]["running"], items[name]["suspended"]) == (1, 1), name
        assert items[name]["tasks"] == {"open": 1, "overdue": 1 if name == "rush" else 0}
        avg, p95 = items[name]["avg_duration_seconds"], items[name]["p95_duration_seconds"]
        assert isinstance(avg, float) and isinstance(p95, float), (avg, p95)
        assert 0 <= avg <= p95 + 1e-9, (avg, p95)
    # Only the instant one was completed within the SLA; everything else ended or is open
    # past it, however it ended.
    assert items["rush"]["sla"] == {
        "hours": RUSH_SLA_HOURS,
        "met": 1,
        "breached": 4,
        "compliance": 0.2,
    }
    assert items["review"]["sla"] == {"hours": None, "met": 0, "breached": 0, "compliance": None}
    assert items["rush"]["p95_duration_seconds"] > RUSH_SLA_HOURS * 3600
    assert datetime.fromisoformat(report["generated_at"]) >= before

    # The window, the definition filter and the tenant all narrow the report
    assert container.analytics.report(TENANT, created_before=before)["items"] == []
    assert container.analytics.report(TENANT, created_after=container.clock.now())["items"] == []
    assert by_definition(container.analytics.report(TENANT, created_after=before)) == items
    only = container.analytics.report(TENANT, definition="rush")["items"]
    assert only == [items["rush"]]
    (theirs,) = container.analytics.report(OTHER)["items"]
    assert (theirs["definition"], theirs["started"], theirs["suspended"]) == ("review", 1, 1)
    assert container.analytics.report("nobody")["items"] == []


def test_sla_hours_come_from_each_instances_own_version(container: Any) -> None:
    container.definitions.publish(TENANT, approval_flow("rush", sla_hours=RUSH_SLA_HOURS))
    flows = Flows(container, TENANT, "rush")
    first = flows.start()
    # Version 2 drops the SLA: its instances are judged against none.
    container.definitions.publish(TENANT, approval_flow("rush"))
    second = flows.start()
    assert (first["version"], second["version"]) == (1, 2)

    def breached() -> dict[str, Any] | None:
        (item,) = container.analytics.report(TENANT)["items"]
        return item if item["sla"]["breached"] == 1 else None

    item = poll(breached, "version 1's instance to breach its SLA")
    assert item["sla"] == {"hours": RUSH_SLA_HOURS, "met": 0, "breached": 1, "compliance": 0.0}
    assert item["avg_duration_seconds"] is None and item["p95_duration_seconds"] is None
    assert (item["started"], item["running"], item["tasks"]["open"]) == (2, 2, 2)
