"""Helpers for the timer tests with real `waymark worker timers` processes: the test's own
container (it creates the instances through the application layer, and runs no worker),
timer definitions, what each replica says it fired, and what the stored histories hold."""

from __future__ import annotations

import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from application.commands import StartInstance
from tests.e2e.conftest import API_KEYS, server_env, wait_for
from tests.e2e.worker_processes import WorkerProcess, parse_time

TENANT = "acme"
# One line per timer batch that did something (workers/timer_worker.py).
FIRED_LINE = re.compile(r"fired (\d+) due timer\(s\), (\d+) already handled elsewhere")


def build_container(database_url: str, pool_size: int = 6) -> Any:
    """The API's container in the test process: creates instances, fires nothing."""
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings

    return build_api(Settings(database_url=database_url, api_keys=API_KEYS, db_pool_size=pool_size))


def until_definition(name: str) -> dict[str, Any]:
    """A `timer` node due at the instant the input names, then the end."""
    return {
        "name": name,
        "nodes": [
            {"id": "pause", "type": "timer", "until": "input.at"},
            {"id": "done", "type": "end"},
        ],
        "routes": [{"from": "pause", "to": "done"}],
    }


def start_many(container: Any, definition: str, at: datetime, count: int) -> list[UUID]:
    """`count` instances whose timer is due at `at`, started by 4 threads."""

    def one(_: int) -> UUID:
        view, _created = container.instances.start(
            StartInstance(TENANT, definition, input={"at": at.isoformat()})
        )
        assert view["status"] == "suspended", view
        return UUID(view["id"])

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(count)))


@dataclass(frozen=True)
class Fired:
    """What a replica's log says it did: timers fired, and claimed ones found handled."""

    fired: int
    already_handled: int


def fired_by(worker: WorkerProcess) -> Fired:
    counts = [tuple(map(int, m.groups())) for m in FIRED_LINE.finditer(worker.text())]
    return Fired(sum(c[0] for c in counts), sum(c[1] for c in counts))


def statuses(container: Any, ids: Iterable[UUID]) -> dict[str, int]:
    """How many of `ids` are in each status (one query on the read model)."""
    with container.core.datastore.transaction(commit=False) as curs:
        curs.execute(
            "SELECT status, count(*) AS n FROM instances WHERE id = ANY(%s) GROUP BY status",
            (list(ids),),
        )
        return {row["status"]: int(row["n"]) for row in curs.fetchall()}


@dataclass(frozen=True)
class Firing:
    """The timer firings in one instance's stored history."""

    resumed: list[datetime]  # BookmarkResumed (source "timer") of the timer node: when
    pause_completed: int  # NodeCompleted of the timer node
    ended: bool


def firings(container: Any, instance_id: UUID) -> Firing:
    entries, _cursor = container.instances.history(TENANT, instance_id, limit=500)
    resumed = [
        _at(e.data)
        for e in entries
        if e.type == "BookmarkResumed" and e.data.get("source") == "timer"
    ]
    completed = sum(
        1 for e in entries if e.type == "NodeCompleted" and e.data.get("node_id") == "pause"
    )
    ended = any(e.type == "Completed" for e in entries)
    return Firing(resumed, completed, ended)


def _at(data: dict[str, Any]) -> datetime:
    value = data["at"]
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


POLL = "30"  # seconds: anything prompt comes from a wake-up or an alarm, not a poll


def env_of(database_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return server_env(database_url, tmp_path, WAYMARK_TIMER_POLL_INTERVAL=POLL, **extra)


def start_one(container: Any, definition: dict[str, Any], **body: Any) -> tuple[UUID, datetime]:
    """Publish `definition`, start one instance; its id and its timer's due time."""
    container.definitions.publish(TENANT, definition)
    view, _ = container.instances.start(StartInstance(TENANT, definition["name"], **body))
    assert view["status"] == "suspended", view
    return UUID(view["id"]), parse_time(view["bookmarks"][0]["due_at"])


def status_of(container: Any, instance_id: UUID) -> str:
    return next(iter(statuses(container, [instance_id])))


def wait_completed(container: Any, instance_id: UUID, timeout: float = 15.0) -> None:
    wait_for(
        lambda: status_of(container, instance_id) == "completed",
        timeout=timeout,
        what=f"instance {instance_id} completed",
    )


def lateness(container: Any, instance_id: UUID, due: datetime) -> float:
    seen = firings(container, instance_id)
    assert len(seen.resumed) == 1, f"fired {len(seen.resumed)} times"
    assert seen.pause_completed == 1 and seen.ended
    return (seen.resumed[0] - due).total_seconds()
