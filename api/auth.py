"""Who is calling (tenant, roles, person) and whether they may use this route.

The bearer is an API key (`WAYMARK_API_KEYS`, for services) or, when `WAYMARK_OIDC_ISSUER`
is set, an OIDC/JWT token (api/tokens.py) naming a person. The tenant always comes from the
key or the token, never from a request body. Every route declares the role it needs
(`Reader`, `Operator`, `Designer`, `Admin`, or `PUBLIC`; the table is api/roles.py).

A key whose roles include `impersonate` may act for a person with the header
`Waymark-On-Behalf-Of: <user id>` (with the key's own roles); the person is then who the
history names, the key is recorded beside them (`via_key`). Any other caller sending the
header is refused (403).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api import roles as role_table
from api.problems import ProblemError
from api.tokens import OidcConfig, TokenRejected, TokenVerifier, looks_like_jwt
from application import audit, tenant_scope
from domain.engine.task_access import Actor
from infrastructure.container import Container, Principal
from infrastructure.settings import Settings
from infrastructure.telemetry import bind_log_context

WRITE_ROLES = frozenset({"admin", "operator"})
READ_ROLES = WRITE_ROLES | {"viewer"}
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CHALLENGE = 'Bearer realm="waymark"'
# Declares the scheme in the OpenAPI document (so /docs can send a key); the header is
# still parsed and answered by `authorize` below, as problem+json.
BEARER_SCHEME = HTTPBearer(
    auto_error=False, description="A key from WAYMARK_API_KEYS, or an OIDC token (JWT)"
)
ON_BEHALF_OF = "Waymark-On-Behalf-Of"
MAX_USER_ID = 200


async def get_container(request: Request) -> Container:
    """The process's container, built in the app's lifespan. `async`: FastAPI runs a plain
    `def` dependency in its threadpool, a hop per request for an attribute read."""
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
    """FastAPI dependency: the caller's Principal, or a 401/403 problem; the role a route
    needs is decided by the request's method (reads: any role; writes: admin, operator).
    Kept for callers outside the route table; every route declares its role instead."""
    principal = authenticate(request, container)
    if not may(principal, request.method):
        raise ProblemError(
            403,
            "forbidden",
            f"the key's roles ({', '.join(sorted(principal.roles)) or 'none'}) "
            f"do not allow {request.method} requests",
        )
    bind_log_context(tenant=principal.tenant, instance_id=request.path_params.get("instance_id"))
    return principal


def authenticate(request: Request, container: Container) -> Principal:
    """Who is calling: an API key, else a verified token; then `Waymark-On-Behalf-Of`."""
    key = _bearer_of(request)
    principal = find_principal(container.api_keys, key)
    if principal is None:
        principal = _token_principal(request, key)
    return _admit(request, principal)


async def authenticate_async(request: Request, container: Container) -> Principal:
    """`authenticate` for an `async` dependency: an API key is checked on the event loop
    (no I/O); only a token, whose verification may fetch the issuer's keys (JWKS), goes to
    the threadpool."""
    key = _bearer_of(request)
    principal = find_principal(container.api_keys, key)
    if principal is None:
        principal = await run_in_threadpool(_token_principal, request, key)
    return _admit(request, principal)


def _bearer_of(request: Request) -> str:
    key = bearer_key(request.headers.get("authorization"))
    if key is None:
        raise _unauthorized("an 'Authorization: Bearer <api key or token>' header is required")
    return key


def _admit(request: Request, principal: Principal) -> Principal:
    on_behalf = request.headers.get(ON_BEHALF_OF)
    if on_behalf is not None:
        principal = _on_behalf_of(principal, on_behalf)
    # From here on the database shows this request only its tenant's rows (RLS).
    tenant_scope.restrict_to(principal.tenant)
    audit.context().actor = (
        f"user:{principal.user}" if principal.user else f"key:{principal.key_name}"
    )
    return principal


def build_token_verifier(settings: Settings) -> TokenVerifier | None:
    """The OIDC token verifier, or None when `WAYMARK_OIDC_ISSUER` is unset (ValueError when
    the issuer is set without an audience or a JWKS URL)."""
    issuer = getattr(settings, "oidc_issuer", None)
    if not issuer:
        return None
    if not settings.oidc_audience or not settings.oidc_jwks_url:
        raise ValueError(
            "WAYMARK_OIDC_ISSUER is set: WAYMARK_OIDC_AUDIENCE and WAYMARK_OIDC_JWKS_URL are "
            "required too"
        )
    return TokenVerifier(
        OidcConfig(
            issuer=issuer,
            audience=settings.oidc_audience,
            jwks_url=settings.oidc_jwks_url,
            user_claim=settings.oidc_user_claim,
            tenant_claim=settings.oidc_tenant_claim,
            roles_claim=settings.oidc_roles_claim,
            leeway_seconds=settings.oidc_leeway_seconds,
            cache_seconds=settings.oidc_jwks_cache_seconds,
        )
    )


def _token_principal(request: Request, token: str) -> Principal:
    verifier: TokenVerifier | None = getattr(request.app.state, "token_verifier", None)
    if verifier is None or not looks_like_jwt(token):
        raise _unauthorized("the API key is not valid")
    try:
        identity = verifier.verify(token)
    except TokenRejected as exc:
        raise _unauthorized(str(exc)) from exc
    return Principal(
        identity.user, identity.tenant, identity.roles, kind="user", user=identity.user
    )


def _on_behalf_of(principal: Principal, user: str) -> Principal:
    user = user.strip()
    if principal.kind != "key" or role_table.IMPERSONATE not in principal.roles:
        raise ProblemError(
            403,
            "forbidden",
            f"only an API key with the '{role_table.IMPERSONATE}' role may send {ON_BEHALF_OF}",
        )
    if not user or len(user) > MAX_USER_ID or not user.isprintable():
        text = f"{ON_BEHALF_OF} must name a user id (1 to {MAX_USER_ID} printable characters)"
        raise ProblemError(
            422,
            "invalid-request",
            text,
            errors=[{"path": f"$.header.{ON_BEHALF_OF}", "code": "invalid_value", "message": text}],
        )
    return Principal(
        principal.key_name,
        principal.tenant,
        principal.roles - {role_table.IMPERSONATE},
        user=user,
    )


def actor_of(principal: Principal) -> Actor:
    """The person (or key) a task command is checked for and recorded as."""
    if principal.kind == "user":
        return Actor(principal.actor_id, "user", principal.roles)
    if principal.user is not None:
        return Actor(principal.user, "user", principal.roles, via_key=principal.key_name)
    return Actor(principal.key_name, "key", principal.roles)


def requires(role: str) -> Any:
    """The dependency of a route that needs `role` (api/roles.py): the caller's Principal,
    or 401 (no valid credentials) / 403 (a role that does not allow it)."""

    # `async`: a plain `def` would run in FastAPI's threadpool, a hop per request (the
    # scope objects `authenticate` narrows are shared with the endpoint's thread either way).
    async def dependency(request: Request, container: ContainerDep, _: BearerDep) -> Principal:
        principal = await authenticate_async(request, container)
        if not role_table.allows(role, principal.roles):
            raise ProblemError(
                403,
                "forbidden",
                f"this needs the '{role}' role (or one that includes it); the caller has "
                f"{', '.join(sorted(principal.roles)) or 'none'}",
            )
        return principal

    dependency.waymark_role = role  # type: ignore[attr-defined]
    dependency.__name__ = f"requires_{role}"
    return dependency


async def _public() -> None:
    """No credentials: a probe, or a route that checks a signature itself. `async`: a plain
    `def` dependency runs in FastAPI's threadpool, a hop per request (0.3 ms of CPU per
    health probe or callback, measured in process)."""


_public.waymark_role = role_table.PUBLIC_ROUTE  # type: ignore[attr-defined]

# The authenticated caller, as a route parameter: `principal: PrincipalDep`. Reads need any
# role, writes `admin` or `operator` (decided by the request's method, see `may`). Routes
# declare their role with one of the four below instead (the route-table test insists).
PrincipalDep = Annotated[Principal, Depends(authorize)]
Reader = Annotated[Principal, Depends(requires(role_table.VIEWER))]
Operator = Annotated[Principal, Depends(requires(role_table.OPERATOR))]
Designer = Annotated[Principal, Depends(requires(role_table.DESIGNER))]
Admin = Annotated[Principal, Depends(requires(role_table.ADMIN))]
# For a route without credentials: `dependencies=[PUBLIC]` on the route (or its router).
PUBLIC = Depends(_public)
