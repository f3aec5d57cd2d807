"""OIDC/JWT bearer tokens: verified against the issuer's JWKS, mapped to a person.

A token is accepted when its signature verifies with a key of the configured JWKS
(`WAYMARK_OIDC_JWKS_URL`, RS256 or ES256 only, the key chosen by the header's `kid`), its
`iss` is `WAYMARK_OIDC_ISSUER`, its `aud` contains `WAYMARK_OIDC_AUDIENCE`, and `exp` (and
`nbf`/`iat` when present) hold within `WAYMARK_OIDC_LEEWAY_SECONDS`. The key set is cached
for `WAYMARK_OIDC_JWKS_CACHE_SECONDS`; a `kid` not in the cache refetches the set once (key
rotation), at most once per `REFETCH_INTERVAL` seconds so tokens with invented `kid`s cannot
make us hammer the issuer.

Claim mapping (settings): the user id is `WAYMARK_OIDC_USER_CLAIM` (`sub`), the tenant
`WAYMARK_OIDC_TENANT_CLAIM` (`tenant`), the roles `WAYMARK_OIDC_ROLES_CLAIM` (`roles`; a
list or a space-separated string; a dotted name reaches into objects, e.g.
`realm_access.roles`). A token without a user id or a tenant is refused.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKClientError

ALGORITHMS = ("RS256", "ES256")
REFETCH_INTERVAL = 10.0


class TokenRejected(Exception):
    """The token is not acceptable; the message says why (never the token)."""


@dataclass(frozen=True)
class TokenIdentity:
    user: str
    tenant: str
    roles: frozenset[str]


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    audience: str
    jwks_url: str
    user_claim: str = "sub"
    tenant_claim: str = "tenant"
    roles_claim: str = "roles"
    leeway_seconds: float = 60.0
    cache_seconds: int = 300


def looks_like_jwt(value: str) -> bool:
    """Three base64url segments: worth verifying as a token (API keys are checked first)."""
    return value.count(".") == 2 and all(value.split("."))


class TokenVerifier:
    """Verifies bearer tokens; thread-safe (routes run in a thread pool)."""

    def __init__(self, config: OidcConfig, *, timeout: float = 5.0):
        self.config = config
        self._jwks = PyJWKClient(
            config.jwks_url, cache_keys=False, lifespan=config.cache_seconds, timeout=timeout
        )
        self._lock = threading.Lock()
        self._last_refetch = float("-inf")

    def verify(self, token: str) -> TokenIdentity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRejected("the bearer token is not a well-formed JWT") from exc
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise TokenRejected(f"the token's algorithm must be one of {', '.join(ALGORITHMS)}")
        key = self._key(header.get("kid"))
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenRejected("the token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenRejected("the token is not meant for this audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise TokenRejected("the token's issuer is not trusted") from exc
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"the token is not valid ({type(exc).__name__})") from exc
        return self._identity(claims)

    def _key(self, kid: Any) -> PyJWK:
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("the token's header names no key ('kid')")
        with self._lock:
            key = self._match(kid, refresh=False)
            if key is None and time.monotonic() - self._last_refetch >= REFETCH_INTERVAL:
                key = self._match(kid, refresh=True)  # rotated: refetch once
        if key is None:
            raise TokenRejected("the token's signing key is not in the issuer's key set")
        return key

    def _match(self, kid: str, *, refresh: bool) -> PyJWK | None:
        try:
            if refresh:
                self._last_refetch = time.monotonic()
            keys = self._jwks.get_signing_keys(refresh=refresh)
        except PyJWKClientError as exc:
            raise TokenRejected("the issuer's key set could not be fetched") from exc
        return next((k for k in keys if k.key_id == kid), None)

    def _identity(self, claims: dict[str, Any]) -> TokenIdentity:
        user = _claim(claims, self.config.user_claim)
        tenant = _claim(claims, self.config.tenant_claim)
        if not isinstance(user, str) or not user.strip():
            raise TokenRejected(f"the token has no user id claim {self.config.user_claim!r}")
        if not isinstance(tenant, str) or not tenant.strip():
            raise TokenRejected(f"the token has no tenant claim {self.config.tenant_claim!r}")
        raw = _claim(claims, self.config.roles_claim)
        if isinstance(raw, str):
            roles = frozenset(raw.split())
        elif isinstance(raw, list):
            roles = frozenset(r for r in raw if isinstance(r, str) and r)
        else:
            roles = frozenset()
        return TokenIdentity(user.strip(), tenant.strip(), roles)


def _claim(claims: dict[str, Any], name: str) -> Any:
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
