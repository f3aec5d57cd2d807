"""Dry-run simulation: run a definition in memory with stubbed actions and scripted people.

`POST /v1/definitions/simulate` takes a definition (published: `name` and optional
`version`; or an inline `document`, validated like a publish) and a list of `cases`, each an
`input` and a `script` by node id. The engine (`domain.engine`, pure) runs an in-memory
`WorkflowInstance` with a simulated clock and counters for ids: no store, no read model, no
activity is executed and no child instance is started, so nothing is written anywhere.

A script entry is one step, or a list of steps used in turn (a node entered again takes the
next; the last repeats):

- `service_task`: `{"result": <any>}`, or `{"error": "<message>"}` (fails after its
  retries); default `{"result": null}`;
- `approval`, `user_task`: `{"outcome": ..., "data": {...}, "by": "<user>"}`; default the
  first outcome (`approved`);
- `wait`: `{"payload": <any>}` or `{"timeout": true}`; default `{"payload": null}`;
- `timer`: not scripted: it fires when nothing else is pending (the clock jumps to it);
- `sub_workflow`: `{"status": "completed", "output": <any>}` or `{"status": "failed"}`;
  default completed with output `{}`.

Each case answers the path taken (node ids in order), the routes taken (indices into the
document's `routes`), the final status, output, error and variables, and the waits left
open when it stopped; over all cases, `never_taken` lists the routes no case took.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from application.definitions import DefinitionCache
from application.errors import InvalidDefinitionError
from application.views import jsonable
from domain import engine
from domain.definition import APPROVAL_OUTCOMES, Definition
from domain.engine.retry import retry_policy_of
from domain.env import CommandEnv
from domain.errors import WorkflowError
from domain.instance import WorkflowInstance
from domain.state import Bookmark, BookmarkKind
from domain.validation import validate_document
from domain.values import UnstorableValueError

MAX_COMMANDS = 1_000  # per case: a script that loops for ever stops here
MAX_CASES = 100


@dataclass
class _Script:
    steps: dict[str, Any]
    used: dict[str, int] = field(default_factory=dict)

    def next(self, node_id: str) -> dict[str, Any] | None:
        entry = self.steps.get(node_id)
        if entry is None:
            return None
        if not isinstance(entry, list):
            return entry if isinstance(entry, dict) else {"result": entry}
        if not entry:
            return None
        index = self.used.get(node_id, 0)
        self.used[node_id] = index + 1
        step = entry[min(index, len(entry) - 1)]
        return step if isinstance(step, dict) else {"result": step}


class SimulationService:
    def __init__(self, definitions: DefinitionCache, now: Any):
        self.definitions = definitions
        self.now = now  # a callable giving the simulation's start time

    def simulate(
        self,
        tenant: str,
        *,
        name: str | None = None,
        version: int | None = None,
        document: dict[str, Any] | None = None,
        cases: list[dict[str, Any]],
    ) -> dict[str, Any]:
        definition = self._definition(tenant, name, version, document)
        results = [self._run_case(definition, i, case) for i, case in enumerate(cases[:MAX_CASES])]
        taken = {index for r in results for index in r["routes_taken"]}
        never = [_route_view(r) for r in definition.routes if r.index not in taken]
        entered = {node for r in results for node in r["path"]}
        return jsonable(
            {
                "definition": definition.name,
                "version": definition.version or None,
                "cases": results,
                "never_taken": never,
                "nodes_never_entered": [n for n in definition.nodes if n not in entered],
                "stored": False,
            }
        )

    def _definition(
        self, tenant: str, name: str | None, version: int | None, document: dict[str, Any] | None
    ) -> Definition:
        if document is not None:
            problems = validate_document(document)
            if problems:
                raise InvalidDefinitionError(problems)
            return Definition.from_document(document, version=0)
        return self.definitions.get(tenant, str(name), version).definition

    def _run_case(self, definition: Definition, index: int, case: dict[str, Any]) -> dict[str, Any]:
        clock = _Clock(self.now())
        script = _Script(dict(case.get("script") or {}))
        instance = WorkflowInstance(
            id=uuid4(), tenant="simulation", definition=definition.name,
            definition_version=definition.version, input=dict(case.get("input") or {}),
            correlation_id=None, idempotency_key=None, parent=None,
        )  # fmt: skip
        commands, stopped = 0, None
        try:
            engine.start(instance, definition, clock.env())
            commands = 1
            while not instance.is_ended:
                if commands >= MAX_COMMANDS:
                    stopped = f"stopped after {MAX_COMMANDS} commands (the script loops)"
                    break
                if not _step(instance, definition, script, clock):
                    stopped = "nothing left to resolve"
                    break
                commands += 1
        except (WorkflowError, UnstorableValueError) as e:  # a script step the node refuses
            stopped = f"the script was refused: {e}"
        entered = [
            e for e in instance.pending_events if isinstance(e, WorkflowInstance.NodeEntered)
        ]
        return {
            "name": case.get("name") or f"case {index + 1}",
            "status": instance.status,
            "output": instance.output,
            "error": instance.error,
            "variables": instance.variables,
            "path": [e.node_id for e in entered],
            "routes_taken": sorted({e.via_route for e in entered if e.via_route is not None}),
            "open": [b.node_id for b in instance.open_bookmarks()],
            "commands": commands,
            "events": len(instance.pending_events),
            "stopped": stopped,
        }


class _Clock:
    def __init__(self, now: datetime):
        self.now = now
        self._ids = itertools.count(1)

    def env(self) -> CommandEnv:
        return CommandEnv(
            now=self.now,
            new_id=lambda: f"sim-{next(self._ids)}",
            new_token=lambda: f"sim-token-{next(self._ids)}",
        )


def _step(
    instance: WorkflowInstance, definition: Definition, script: _Script, clock: _Clock
) -> bool:
    """Resolve one piece of open work; False when there is none."""
    for activity in instance.scheduled_activities():
        node = definition.nodes[activity.node_id]
        step = (script.next(node.id) if activity.purpose is None else None) or {}
        if activity.run_after > clock.now:
            clock.now = activity.run_after
        error = step.get("error")
        engine.record_activity_result(
            instance, definition, activity.id, attempt=activity.attempt, ok=error is None,
            output=step.get("result"), error=None if error is None else str(error),
            retryable=activity.attempt < retry_policy_of(node).max_attempts, env=clock.env(),
        )  # fmt: skip
        return True
    bookmarks = [b for b in instance.open_bookmarks() if b.boundary_of is None]
    people = sorted(
        (b for b in bookmarks if b.kind is not BookmarkKind.TIMER), key=lambda b: b.created_at
    )
    if people:
        _resolve(instance, definition, people[0], script, clock)
        return True
    timers = sorted(bookmarks, key=lambda b: b.due_at or clock.now)
    if timers:
        clock.now = max(clock.now, timers[0].due_at or clock.now)
        engine.fire_timer(instance, definition, timers[0].id, clock.env())
        return True
    return False


def _resolve(
    instance: WorkflowInstance,
    definition: Definition,
    bookmark: Bookmark,
    script: _Script,
    clock: _Clock,
) -> None:
    node = definition.nodes[bookmark.node_id]
    step = script.next(node.id) or {}
    clock.now += timedelta(seconds=1)
    env = clock.env()
    if bookmark.kind is BookmarkKind.TASK:
        default = APPROVAL_OUTCOMES[0] if node.type == "approval" else None
        engine.complete_task(
            instance, definition, bookmark.id, outcome=step.get("outcome", default),
            data=step.get("data"), comment=step.get("comment"), completed_by=step.get("by"),
            env=env,
        )  # fmt: skip
    elif bookmark.kind is BookmarkKind.WAIT:
        if step.get("timeout") and bookmark.due_at is not None:
            clock.now = max(clock.now, bookmark.due_at)
            engine.fire_timer(instance, definition, bookmark.id, clock.env())
        else:
            engine.resume(
                instance, definition, bookmark.id, payload=step.get("payload"),
                source="simulation", env=env,
            )  # fmt: skip
    else:
        status = step.get("status", "completed")
        engine.child_finished(
            instance, definition, bookmark.id, status=status, output=step.get("output", {}),
            error={"message": str(step.get("error", "scripted failure"))}, env=env,
        )  # fmt: skip


def _route_view(route: Any) -> dict[str, Any]:
    return {
        "index": route.index,
        "from": route.source,
        "to": route.target,
        "outcome": route.outcome,
        "condition": route.condition,
        "default": route.default,
    }
