"""`/v1/outbox`: the events the Kafka publisher gave up on, and their re-drive (operators).

Tenant-scoped like everything else: a key sees its own tenant's dead letters. Reading them
needs `admin` or `operator` too (they carry error texts from the broker)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from api.auth import ContainerDep, Operator
from api.problems import ProblemError
from api.responses import AUTHENTICATED, ok
from api.responses_ops import DeadLetterList, DeadLetterView
from application.outbox import OutboxService
from infrastructure.container import Container, Principal

router = APIRouter(prefix="/v1/outbox", tags=["outbox"])

OPERATOR_ROLES = frozenset({"admin", "operator"})


def _service(container: Container, principal: Principal) -> OutboxService:
    if not principal.roles & OPERATOR_ROLES:
        raise ProblemError(403, "forbidden", "dead letters need the admin or operator role")
    if container.outbox is None:
        raise ProblemError(404, "not-found", "this process has no outbox")
    return container.outbox


@router.get("/dead-letters", responses=ok(DeadLetterList, *AUTHENTICATED, 404))
def list_dead_letters(
    principal: Operator,
    container: ContainerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The tenant's newest dead letters (at most `limit`)."""
    letters = _service(container, principal).dead_letters(principal.tenant, limit)
    return {"items": [letter.as_dict() for letter in letters]}


@router.post(
    "/dead-letters/{dead_letter_id}/retry",
    status_code=202,
    responses=ok(DeadLetterView, *AUTHENTICATED, 404, status=202),
)
def retry_dead_letter(
    dead_letter_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    principal: Operator,
    container: ContainerDep,
) -> dict[str, Any]:
    """Re-drive one dead letter: the publisher sends it again at its next batch."""
    letter = _service(container, principal).retry(principal.tenant, dead_letter_id)
    return letter.as_dict()
