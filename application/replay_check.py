"""Replay check: rebuild stored instances from their events with the current code and
compare each with its stored read model (`waymark replay-check`).

The read-model rows (`instances`, `bookmarks`, `tasks`, `activities`, `incidents`) were
projected from the instance's state by the code that wrote its events, in the same
transaction. Rebuilding the instance now and projecting ALL its rows again must give the
same rows: an instance whose rebuilt state differs — or that no longer rebuilds at all —
would behave differently after an upgrade than it did when its events were written. The
check reads, never writes.

Columns only workers write (a bookmark's set-aside timer error, an activity's lease) are
not projected and not compared.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from application.projection import (
    activity_row,
    bookmark_row,
    incident_row,
    instance_row,
    task_row,
)
from application.read_models import BookmarkRow, Projection
from domain.instance import WorkflowInstance
from domain.state import BookmarkKind

# BookmarkRow fields the timer worker writes (never the projection): not compared.
_WORKER_FIELDS = {"timer_error", "timer_failed_at", "timer_attempts"}
_TABLES = ("instances", "bookmarks", "tasks", "activities", "incidents")


class ReplaySource(Protocol):
    def instance_ids(self, definition: str | None) -> list[UUID]:
        """Every stored instance (of `definition`), oldest first."""

    def rebuild(self, instance_id: UUID) -> WorkflowInstance:
        """The instance replayed from its events with the current code (raises if it fails)."""

    def stored_rows(self, instance_id: UUID) -> Projection:
        """Every read-model row stored for the instance."""


@dataclass(frozen=True)
class ReplayProblem:
    instance_id: UUID
    kind: str  # "differs" | "fails"
    details: tuple[str, ...]

    def lines(self) -> list[str]:
        return [f"{self.instance_id}: {self.kind}", *(f"  {d}" for d in self.details)]


@dataclass
class ReplayReport:
    checked: int = 0
    problems: list[ReplayProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def full_projection(instance: WorkflowInstance) -> Projection:
    """Every read-model row of the instance, as the projection writes them."""
    projection = Projection(instances=[instance_row(instance)])
    for bookmark in instance.bookmarks.values():
        projection.bookmarks.append(bookmark_row(instance, bookmark))
        if bookmark.kind is BookmarkKind.TASK:
            projection.tasks.append(task_row(instance, bookmark))
    for activity in instance.activities.values():
        projection.activities.append(activity_row(instance, activity))
    for incident in instance.incidents.values():
        projection.incidents.append(incident_row(instance, incident))
    return projection


def differences(rebuilt: Projection, stored: Projection) -> list[str]:
    """What the stored rows have that the rebuilt ones do not, column by column."""
    found: list[str] = []
    for table in _TABLES:
        want = {str(r.id): _comparable(r) for r in getattr(rebuilt, table)}
        have = {str(r.id): _comparable(r) for r in getattr(stored, table)}
        for row_id in sorted(want.keys() | have.keys()):
            if row_id not in have:
                found.append(f"{table} {row_id}: rebuilt but not stored")
            elif row_id not in want:
                found.append(f"{table} {row_id}: stored but not rebuilt")
            else:
                for column, value in want[row_id].items():
                    if have[row_id].get(column) != value:
                        shown = f"stored {have[row_id].get(column)!r}, rebuilt {value!r}"
                        found.append(f"{table} {row_id}.{column}: {shown}")
    return found


def _comparable(row: Any) -> dict[str, Any]:
    # Ids compare as text: the projection may hold a parent id as the string it stores.
    values = {
        f.name: str(v) if isinstance(v := getattr(row, f.name), UUID) else v
        for f in dataclasses.fields(row)
    }
    if isinstance(row, BookmarkRow):
        values = {k: v for k, v in values.items() if k not in _WORKER_FIELDS}
    return values


class ReplayChecker:
    def __init__(self, source: ReplaySource) -> None:
        self.source = source

    def run(
        self,
        *,
        definition: str | None = None,
        sample: int | None = None,
        rng: random.Random | None = None,
    ) -> ReplayReport:
        ids: Sequence[UUID] = self.source.instance_ids(definition)
        if sample is not None and sample < len(ids):
            ids = sorted((rng or random.Random()).sample(list(ids), sample))
        report = ReplayReport()
        for instance_id in ids:
            report.checked += 1
            problem = self.check(instance_id)
            if problem is not None:
                report.problems.append(problem)
        return report

    def check(self, instance_id: UUID) -> ReplayProblem | None:
        try:
            rebuilt = full_projection(self.source.rebuild(instance_id))
        except Exception as e:  # noqa: BLE001 - any failure to rebuild is the finding
            return ReplayProblem(instance_id, "fails", (f"{type(e).__name__}: {e}",))
        found = differences(rebuilt, self.source.stored_rows(instance_id))
        return ReplayProblem(instance_id, "differs", tuple(found)) if found else None
