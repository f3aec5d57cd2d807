"""Commands that arrive as messages (the Kafka topic `waymark.commands`, SPEC §5).

A message is a JSON object `{"command": "start" | "resume" | "event" | "cancel" |
"complete_task", ...}` whose other members are the body of the matching HTTP request (the
same models, `application/requests.py`), plus what the HTTP API takes from the path
(`instance_id`, `bookmark_id`, `task_id`) and `correlation_id`, which the reply carries.
The tenant is not part of the body: the transport supplies it (a message header), as the
API takes it from the caller's credentials.

`parse_message` turns bytes into a command dataclass (`application/commands.py`) or raises
`InvalidMessageError`; `CommandDispatcher.run` hands it to the same use case the HTTP API
calls; `problem_of` renders an error as the reply's problem, by its stable `code`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import Field, TypeAdapter, ValidationError

from application.commands import (
    CancelInstance,
    CompleteTask,
    DeliverEvent,
    ResumeBookmark,
    StartInstance,
)
from application.errors import InvalidDataError, InvalidDefinitionError, WaymarkError
from application.instances import InstanceService
from application.requests import (
    CancelRequest,
    CompleteTaskRequest,
    EventRequest,
    ResumeRequest,
    StartInstanceRequest,
)
from application.tasks import TaskService
from application.views import bookmark_view, jsonable
from domain.errors import (
    BookmarkNotOpenError,
    ForEachTooLargeError,
    InvalidOutcomeError,
    WorkflowError,
)

# The problem types of the HTTP API (api/problems.py TYPE_BASE): a reply names the same type.
PROBLEM_TYPE_BASE = "https://waymark.dev/problems/"
COMMAND_KINDS = ("start", "resume", "event", "cancel", "complete_task")


class StartMessage(StartInstanceRequest):
    """`start`: its `correlation_id` is the instance's, and the reply's."""

    command: Literal["start"]


class ResumeMessage(ResumeRequest):
    command: Literal["resume"]
    instance_id: UUID
    bookmark_id: str = Field(min_length=1, max_length=200)
    correlation_id: str | None = Field(default=None, max_length=200)


class EventMessage(EventRequest):
    command: Literal["event"]
    correlation_id: str | None = Field(default=None, max_length=200)


class CancelMessage(CancelRequest):
    command: Literal["cancel"]
    instance_id: UUID
    correlation_id: str | None = Field(default=None, max_length=200)


class CompleteTaskMessage(CompleteTaskRequest):
    command: Literal["complete_task"]
    task_id: str = Field(min_length=1, max_length=200)
    user: str | None = Field(default=None, min_length=1, max_length=200)
    correlation_id: str | None = Field(default=None, max_length=200)


Message = Annotated[
    StartMessage | ResumeMessage | EventMessage | CancelMessage | CompleteTaskMessage,
    Field(discriminator="command"),
]
_MESSAGE: TypeAdapter[Message] = TypeAdapter(Message)

AnyCommand = StartInstance | ResumeBookmark | DeliverEvent | CancelInstance | CompleteTask


class InvalidMessageError(WaymarkError):
    """The message is not JSON, or not a command body (`errors`: path, code, message)."""

    code = "invalid-request"

    def __init__(self, detail: str, errors: list[dict[str, str]] | None = None):
        super().__init__(detail)
        self.errors = errors or []


class InvalidJsonMessageError(InvalidMessageError):
    code = "invalid-json"


@dataclass(frozen=True)
class ParsedMessage:
    """A valid message: which command, the command itself, and the reply's correlation id."""

    kind: str
    command: AnyCommand
    correlation_id: str | None


def parse_message(
    value: bytes | None, *, tenant: str, default_key: str, source: str
) -> ParsedMessage:
    """The command a message asks for. A message without `idempotency_key` gets
    `default_key` (derived from its place in the log by the caller), so a redelivery of the
    same message is a repeat of the same keyed command and applies nothing twice."""
    if value is None:
        raise InvalidJsonMessageError("the message has no value")
    try:
        json.loads(value)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InvalidJsonMessageError(f"the message is not valid JSON: {e}") from None
    try:
        message = _MESSAGE.validate_json(value)
    except ValidationError as e:
        errors = _errors(e.errors())
        raise InvalidMessageError(f"the message has {len(errors)} problem(s)", errors) from None
    key = message.idempotency_key or default_key
    return ParsedMessage(
        message.command, _command(message, tenant, key, source), message.correlation_id
    )


def correlation_of(value: bytes | None) -> str | None:
    """Best effort, for the reply to a message that is not a valid command."""
    try:
        found = json.loads(value or b"").get("correlation_id")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return None
    return found[:200] if isinstance(found, str) else None


def _command(message: Message, tenant: str, key: str, source: str) -> AnyCommand:
    if isinstance(message, StartMessage):
        return StartInstance(
            tenant,
            message.definition,
            version=message.version,
            input=message.input,
            idempotency_key=key,
            correlation_id=message.correlation_id,
        )
    if isinstance(message, ResumeMessage):
        return ResumeBookmark(
            tenant,
            message.instance_id,
            message.bookmark_id,
            message.payload,
            idempotency_key=key,
            source=source,
        )
    if isinstance(message, EventMessage):
        return DeliverEvent(
            tenant,
            message.type,
            correlation=message.correlation,
            payload=message.payload,
            idempotency_key=key,
        )
    if isinstance(message, CancelMessage):
        return CancelInstance(
            tenant,
            message.instance_id,
            message.reason or f"cancelled by {source}",
            idempotency_key=key,
        )
    return CompleteTask(
        tenant,
        message.task_id,
        outcome=message.outcome,
        data=message.data,
        comment=message.comment,
        user=message.user,
        idempotency_key=key,
    )


class CommandDispatcher:
    """Runs a parsed command through the use case the HTTP API calls for it."""

    def __init__(self, instances: InstanceService, tasks: TaskService):
        self.instances = instances
        self.tasks = tasks

    def run(self, command: AnyCommand) -> tuple[dict[str, Any], bool]:
        """(result, replayed): `replayed` when the idempotency key was seen before."""
        if isinstance(command, StartInstance):
            view, created = self.instances.start(command)
            return view, not created
        if isinstance(command, ResumeBookmark):
            return self.instances.resume(command)
        if isinstance(command, DeliverEvent):
            return self.instances.deliver_event(command)
        if isinstance(command, CancelInstance):
            return self.instances.cancel(command)
        return self.tasks.complete(command)


def problem_of(exc: BaseException) -> dict[str, Any] | None:
    """The reply's problem for an error with a stable code; None for any other error."""
    code = getattr(exc, "code", None) if isinstance(exc, WaymarkError | WorkflowError) else None
    if not isinstance(code, str):
        return None
    return problem(code, str(exc), **_extras(exc))


def problem(code: str, detail: str, **extras: Any) -> dict[str, Any]:
    """A problem in the shape of the API's RFC 9457 bodies, without the HTTP members."""
    title = "Invalid JSON" if code == "invalid-json" else code.replace("-", " ").capitalize()
    body = {"type": PROBLEM_TYPE_BASE + code, "code": code, "title": title, "detail": detail}
    return {**body, **jsonable(extras)}


def _extras(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, InvalidMessageError):
        return {"errors": exc.errors}
    if isinstance(exc, InvalidDataError):
        errors = [{"path": p, "code": "schema_violation", "message": m} for p, m in exc.errors]
        return {"errors": errors}
    if isinstance(exc, InvalidDefinitionError):
        return {"errors": [p.as_dict() for p in exc.problems]}
    if isinstance(exc, BookmarkNotOpenError):
        return {"bookmark": bookmark_view(exc.bookmark)}
    if isinstance(exc, InvalidOutcomeError):
        return {"allowed": list(exc.allowed)}
    if isinstance(exc, ForEachTooLargeError):
        errors = [{"path": exc.path, "code": "too_many_items", "message": str(exc)}]
        return {"node_id": exc.node_id, "items": exc.items, "limit": exc.limit, "errors": errors}
    return {}


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    # Tagged-union locations start with the tag (`("resume", "instance_id")`): drop it.
    out = []
    for e in errors:
        loc = list(e.get("loc", ()))
        if loc and loc[0] in COMMAND_KINDS:
            loc = loc[1:]
        out.append({"path": _json_path(loc), "code": str(e.get("type", "")), "message": e["msg"]})
    return out


def _json_path(loc: Iterable[str | int]) -> str:
    out = "$"
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(str(part)):
            out += f".{part}"
        else:
            out += f"[{json.dumps(str(part))}]"
    return out
