"""A local OIDC issuer for tests: generated RSA and EC keys, a JWKS served over real HTTP,
tokens signed with them, key rotation, and a count of key-set fetches."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://issuer.test/"
AUDIENCE = "waymark-api"


@dataclass
class SigningKey:
    kid: str
    algorithm: str  # RS256 | ES256
    private: Any

    def public_jwk(self) -> dict[str, Any]:
        codec = RSAAlgorithm if self.algorithm == "RS256" else ECAlgorithm
        jwk = json.loads(codec.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}


def rsa_key(kid: str) -> SigningKey:
    return SigningKey(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str) -> SigningKey:
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


@dataclass
class Issuer:
    keys: list[SigningKey]
    url: str = ""
    fetches: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks.json"

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            self.fetches += 1
            return {"keys": [k.public_jwk() for k in self.keys]}

    def rotate(self, new: SigningKey) -> None:
        """Publish `new` and retire every other key."""
        with self._lock:
            self.keys = [new]

    def token(self, key: SigningKey | None = None, **claims: Any) -> str:
        key = key or self.keys[0]
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 300,
            "tenant": "acme",
            "roles": ["operator"],
            **claims,
        }
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key.private, algorithm=key.algorithm, headers={"kid": key.kid})


@contextmanager
def serving(issuer: Issuer) -> Iterator[Issuer]:
    """Serve `issuer.jwks()` at `issuer.jwks_url` on a free local port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path != "/jwks.json":
                self.send_error(404)
                return
            body = json.dumps(issuer.jwks()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    issuer.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
