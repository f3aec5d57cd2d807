"""The real FastAPI app on a stub container: what authentication and the route table decide
is real; a route that gets past them and touches the container meets `StubReached` (a 500).
Requests go through httpx's ASGI transport (no server, no lifespan)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI

from api.app import create_app
from api.auth import build_token_verifier
from infrastructure.container import Principal
from infrastructure.settings import Settings

ROLE_KEYS = {
    role: Principal(f"key-{role}", "acme", frozenset({role}))
    for role in ("viewer", "operator", "designer", "admin")
}


class StubReached(Exception):
    """A route passed authentication and asked the container for `name`."""


class StubContainer:
    def __init__(self, settings: Settings, api_keys: dict[str, Principal]):
        self.settings = settings
        self.api_keys = api_keys

    def close(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        raise StubReached(name)


def stub_app(
    settings: Settings | None = None, api_keys: dict[str, Principal] | None = None
) -> FastAPI:
    """The app as the lifespan would leave it, on a stub container."""
    keys = {f"k-{role}": p for role, p in ROLE_KEYS.items()} if api_keys is None else api_keys
    settings = settings or Settings()
    container = StubContainer(settings, keys)
    app = create_app(lambda: container)  # type: ignore[arg-type,return-value]
    app.state.container = container
    app.state.token_verifier = build_token_verifier(settings)
    return app


class AsgiClient:
    """A synchronous face on httpx.AsyncClient + ASGITransport."""

    def __init__(self, app: FastAPI):
        self.app = app

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(send())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)
