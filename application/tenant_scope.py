"""Which tenant the current unit of work acts for: the database's second wall (RLS).

An authenticated request acts for its principal's tenant: `api` opens a request scope and
`restrict_to(tenant)` narrows it once the caller is known. Every connection the datastore
hands out in that scope carries `waymark.tenant = <tenant>`, and PostgreSQL's row-level
security policies (migration 0017) hide every other tenant's rows, even from a query that
forgot its `WHERE tenant = ...`.

Work that is not done for one tenant (workers: timers, cleanup, outbox, schedules; signed
callbacks and webhooks, whose tenant is only known from the row they look up; health)
runs in the system scope, `*`, which the policies let through. That is the default: code
that never entered a scope is system work. docs/security.md discusses the choice.

The scope object is shared, not copied, between the request's middleware and the threads
its dependencies and endpoint run in (contextvars are copied into threads, the object they
point to is not), so a dependency narrowing it narrows the endpoint's too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# The policies' marker for "every tenant". No tenant may be called this.
SYSTEM = "*"


class _Scope:
    __slots__ = ("tenant",)

    def __init__(self, tenant: str | None = None) -> None:
        self.tenant = tenant


_current: ContextVar[_Scope | None] = ContextVar("waymark_tenant_scope", default=None)


def current() -> str:
    """The tenant the database should show rows of: a tenant, or SYSTEM."""
    scope = _current.get()
    if scope is None or scope.tenant is None:
        return SYSTEM
    return scope.tenant


@contextmanager
def request_scope() -> Iterator[None]:
    """A fresh, still system-wide, scope for one request (see `restrict_to`)."""
    token = _current.set(_Scope())
    try:
        yield
    finally:
        _current.reset(token)


def restrict_to(tenant: str) -> None:
    """From now on, in this request (or `acting_for` block), only `tenant`'s rows are seen."""
    if tenant == SYSTEM:
        raise ValueError(f"{SYSTEM!r} is not a tenant")
    scope = _current.get()
    if scope is None:
        _current.set(_Scope(tenant))
    else:
        scope.tenant = tenant


@contextmanager
def acting_for(tenant: str | None) -> Iterator[None]:
    """Run a block for `tenant` (None: the system scope)."""
    if tenant == SYSTEM:
        raise ValueError(f"{SYSTEM!r} is not a tenant")
    token = _current.set(_Scope(tenant))
    try:
        yield
    finally:
        _current.reset(token)
