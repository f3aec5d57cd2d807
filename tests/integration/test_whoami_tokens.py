"""`GET /v1/whoami` for a person's OIDC token (a local issuer, JWKS over real HTTP): the
console shows the person, tenant and roles the token maps to; an expired token is a 401."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from infrastructure.settings import Settings
from tests import jwks_server
from tests.api_stub import AsgiClient, stub_app
from tests.jwks_server import AUDIENCE, ISSUER, Issuer, rsa_key


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with jwks_server.serving(Issuer([rsa_key("rsa1")])) as running:
        yield running


def test_whoami_names_the_person_of_a_token(issuer: Issuer) -> None:
    settings = Settings(oidc_issuer=ISSUER, oidc_audience=AUDIENCE, oidc_jwks_url=issuer.jwks_url)
    client = AsgiClient(stub_app(settings, api_keys={}))
    token = issuer.token(sub="ann", tenant="globex", roles=["operator", "manager"])
    answer = client.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "tenant": "globex",
        "roles": ["manager", "operator"],
        "kind": "user",
        "name": "ann",
        "user": "ann",
    }
    expired = issuer.token(sub="ann", exp=int(time.time()) - 3600)
    refused = client.get("/v1/whoami", headers={"Authorization": f"Bearer {expired}"})
    assert refused.status_code == 401
    assert "expired" in refused.json()["detail"]
