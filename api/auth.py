"""Bearer API keys: who is calling (tenant, roles) and whether they may do this.

The tenant always comes from the key, never from a request body. Roles: `admin` and
`operator` may do everything, `viewer` may only read (GET/HEAD).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.problems import ProblemError
from application import audit, tenant_scope
from infrastructure.container import Container, Principal

WRITE_ROLES = frozenset({"admin", "operator"})
READ_ROLES = WRITE_ROLES | {"viewer"}
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CHALLENGE = 'Bearer realm="waymark"'
# Declares the scheme in the OpenAPI document (so /docs can send a key); the header is
# still parsed and answered by `authorize` below, as problem+json.
BEARER_SCHEME = HTTPBearer(auto_error=False, description="A key from WAYMARK_API_KEYS")


def get_container(request: Request) -> Container:
    """The process's container, built in the app's lifespan."""
    return request.app.state.container


def bearer_key(header: str | None) -> str | None:
    """The key of an `Authorization: Bearer <key>` header; None when absent or another scheme."""
    scheme, _, key = (header or "").strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return None
    return key


def find_principal(api_keys: Mapping[str, Principal], key: str) -> Principal | None:
    # Compare against every key in constant time: no early exit reveals a matching prefix.
    found = None
    for known, principal in api_keys.items():
        if hmac.compare_digest(known.encode(), key.encode()):
            found = principal
    return found


def may(principal: Principal, method: str) -> bool:
    allowed = READ_ROLES if method.upper() in READ_METHODS else WRITE_ROLES
    return bool(principal.roles & allowed)


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(401, "unauthorized", detail, headers={"WWW-Authenticate": CHALLENGE})


# The container, as a route parameter: `container: ContainerDep`.
ContainerDep = Annotated[Container, Depends(get_container)]
# The Bearer credentials, declared for the OpenAPI document only (see BEARER_SCHEME).
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Security(BEARER_SCHEME)]


def authorize(request: Request, container: ContainerDep, _: BearerDep) -> Principal:
    """FastAPI dependency: the caller's Principal, or a 401/403 problem."""
    key = bearer_key(request.headers.get("authorization"))
    if key is None:
        raise _unauthorized("an 'Authorization: Bearer <api key>' header is required")
    principal = find_principal(container.api_keys, key)
    if principal is None:
        raise _unauthorized("the API key is not valid")
    # From here on the database shows this request only its tenant's rows (RLS).
    tenant_scope.restrict_to(principal.tenant)
    audit.context().actor = f"key:{principal.key_name}"
    if not may(principal, request.method):
        raise ProblemError(
            403,
            "forbidden",
            f"the key's roles ({', '.join(sorted(principal.roles)) or 'none'}) "
            f"do not allow {request.method} requests",
        )
    return principal


# The authenticated caller, as a route parameter: `principal: PrincipalDep`. Reads need any
# role, writes `admin` or `operator` (decided by the request's method, see `may`).
PrincipalDep = Annotated[Principal, Depends(authorize)]
