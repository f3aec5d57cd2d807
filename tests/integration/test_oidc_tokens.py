"""OIDC/JWT bearer tokens against a local issuer (generated RSA and EC keys, a JWKS served
over real HTTP): signatures, rotation, expiry and clock skew, audience and issuer, claim
mapping, problem+json answers, and `Waymark-On-Behalf-Of` for keys."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from api import tokens
from api.auth import build_token_verifier
from api.tokens import OidcConfig, TokenRejected, TokenVerifier
from infrastructure.container import Principal
from infrastructure.settings import Settings
from tests import jwks_server
from tests.api_stub import AsgiClient, stub_app
from tests.jwks_server import AUDIENCE, ISSUER, Issuer, ec_key, rsa_key

ROUTE = "/v1/event-types"  # a viewer route whose handler needs no container


@pytest.fixture(scope="module")
def keys() -> dict[str, jwks_server.SigningKey]:
    return {"rsa1": rsa_key("rsa1"), "ec1": ec_key("ec1"), "rsa2": rsa_key("rsa2")}


@pytest.fixture
def issuer(keys: dict[str, jwks_server.SigningKey]) -> Iterator[Issuer]:
    with jwks_server.serving(Issuer([keys["rsa1"], keys["ec1"]])) as running:
        yield running


def settings_for(issuer: Issuer, **extra: Any) -> Settings:
    return Settings(
        oidc_issuer=ISSUER, oidc_audience=AUDIENCE, oidc_jwks_url=issuer.jwks_url, **extra
    )


@pytest.fixture
def client(issuer: Issuer) -> AsgiClient:
    keys = {
        "k-svc": Principal("key-svc", "acme", frozenset({"operator", "impersonate"})),
        "k-plain": Principal("key-plain", "acme", frozenset({"operator"})),
    }
    return AsgiClient(stub_app(settings_for(issuer), api_keys=keys))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def verifier(issuer: Issuer, **config: Any) -> TokenVerifier:
    return TokenVerifier(OidcConfig(ISSUER, AUDIENCE, issuer.jwks_url, **config))


def test_rs256_and_es256_tokens_are_accepted_and_mapped_to_a_person(issuer: Issuer) -> None:
    check = verifier(issuer)
    for key in issuer.keys:
        identity = check.verify(issuer.token(key, sub="ann", roles=["operator", "manager"]))
        assert (identity.user, identity.tenant) == ("ann", "acme")
        assert identity.roles == frozenset({"operator", "manager"})


def test_the_key_set_is_cached(issuer: Issuer) -> None:
    check = verifier(issuer)
    for _ in range(5):
        check.verify(issuer.token(sub="ann"))
    assert issuer.fetches == 1


def test_after_rotation_the_new_kid_is_accepted_with_one_refetch(
    issuer: Issuer, keys: dict[str, jwks_server.SigningKey]
) -> None:
    check = verifier(issuer)
    check.verify(issuer.token(keys["rsa1"], sub="ann"))
    assert issuer.fetches == 1
    issuer.rotate(keys["rsa2"])
    assert check.verify(issuer.token(keys["rsa2"], sub="ann")).user == "ann"
    assert issuer.fetches == 2  # the unknown kid refetched the set once
    # ... and the retired key is gone once the refetch interval allows looking again.
    tokens.REFETCH_INTERVAL, saved = 0.0, tokens.REFETCH_INTERVAL
    try:
        with pytest.raises(TokenRejected, match="signing key"):
            check.verify(issuer.token(keys["rsa1"], sub="ann"))
    finally:
        tokens.REFETCH_INTERVAL = saved


def test_invented_kids_do_not_hammer_the_issuer(issuer: Issuer) -> None:
    check = verifier(issuer)
    stranger = rsa_key("invented")
    for _ in range(20):
        with pytest.raises(TokenRejected, match="signing key"):
            check.verify(issuer.token(stranger, sub="ann"))
    assert issuer.fetches == 2  # the first load and one refetch, not 21


def test_expiry_with_clock_skew_leeway(issuer: Issuer) -> None:
    now = int(time.time())
    lenient = verifier(issuer, leeway_seconds=60)
    assert lenient.verify(issuer.token(sub="ann", exp=now - 30)).user == "ann"  # skew
    with pytest.raises(TokenRejected, match="expired"):
        lenient.verify(issuer.token(sub="ann", exp=now - 120))
    with pytest.raises(TokenRejected, match="expired"):
        verifier(issuer, leeway_seconds=0).verify(issuer.token(sub="ann", exp=now - 30))


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"aud": "someone-else"}, "audience"),
        ({"iss": "https://evil.test/"}, "issuer"),
        ({"exp": None}, "not valid"),  # exp is required
        ({"sub": None}, "user id"),
        ({"tenant": None}, "tenant"),
    ],
)
def test_claims_are_checked(issuer: Issuer, claims: dict[str, Any], reason: str) -> None:
    with pytest.raises(TokenRejected, match=reason):
        verifier(issuer).verify(issuer.token(**{"sub": "ann", **claims}))


def test_hmac_and_unsigned_tokens_are_refused(issuer: Issuer) -> None:
    # An HS256 token "signed" with the public key (the classic confusion) and alg none.
    public = issuer.keys[0].public_jwk()["n"]
    claims = {"sub": "ann", "tenant": "acme", "iss": ISSUER, "aud": AUDIENCE, "exp": 2**31}
    for token in (
        jwt.encode(claims, public, algorithm="HS256", headers={"kid": "rsa1"}),
        jwt.encode(claims, None, algorithm="none", headers={"kid": "rsa1"}),
    ):
        with pytest.raises(TokenRejected, match="algorithm"):
            verifier(issuer).verify(token)


def test_a_nested_roles_claim_and_other_claim_names(issuer: Issuer) -> None:
    check = verifier(issuer, user_claim="email", tenant_claim="org", roles_claim="realm.roles")
    token = issuer.token(
        email="ann@acme.test", org="acme", realm={"roles": ["viewer"]}, roles=None, tenant=None
    )
    identity = check.verify(token)
    assert (identity.user, identity.tenant, identity.roles) == (
        "ann@acme.test",
        "acme",
        frozenset({"viewer"}),
    )


def test_over_http_a_good_token_passes_and_bad_ones_are_401_problems(
    client: AsgiClient, issuer: Issuer
) -> None:
    ok = client.get(ROUTE, headers=bearer(issuer.token(sub="ann", roles=["viewer"])))
    assert ok.status_code == 200, ok.text
    now = int(time.time())
    for token, reason in (
        (issuer.token(sub="ann", exp=now - 3600), "expired"),
        (issuer.token(sub="ann", aud="other"), "audience"),
        ("not.a.token", "well-formed"),
    ):
        refused = client.get(ROUTE, headers=bearer(token))
        assert refused.status_code == 401, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert reason in refused.json()["detail"]
        assert token not in refused.text


def test_a_token_without_a_system_role_is_403(client: AsgiClient, issuer: Issuer) -> None:
    response = client.get(ROUTE, headers=bearer(issuer.token(sub="ann", roles=["manager"])))
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


def test_on_behalf_of_needs_a_key_with_impersonate(client: AsgiClient, issuer: Issuer) -> None:
    header = {"Waymark-On-Behalf-Of": "ann"}
    assert client.get(ROUTE, headers={**bearer("k-svc"), **header}).status_code == 200
    plain = client.get(ROUTE, headers={**bearer("k-plain"), **header})
    assert plain.status_code == 403
    assert "impersonate" in plain.json()["detail"]
    from_token = client.get(ROUTE, headers={**bearer(issuer.token(sub="bob")), **header})
    assert from_token.status_code == 403
    empty = client.get(ROUTE, headers={**bearer("k-svc"), "Waymark-On-Behalf-Of": " "})
    assert empty.status_code == 422


def test_without_oidc_settings_a_jwt_is_just_an_unknown_key(issuer: Issuer) -> None:
    client = AsgiClient(stub_app(Settings()))
    response = client.get(ROUTE, headers=bearer(issuer.token(sub="ann")))
    assert response.status_code == 401
    assert build_token_verifier(Settings()) is None


def test_an_issuer_without_audience_or_jwks_url_is_a_startup_error() -> None:
    with pytest.raises(ValueError, match="WAYMARK_OIDC_AUDIENCE"):
        build_token_verifier(Settings(oidc_issuer=ISSUER))
