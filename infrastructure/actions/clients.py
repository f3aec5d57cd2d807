"""A lazily made, shared `httpx.Client` for the actions that speak HTTP through httpx."""

from __future__ import annotations

import threading

import httpx


class PooledClient:
    """One pooled client for every worker thread (httpx.Client is thread-safe), made on
    first use so processes that never call out never open one. Redirects are not followed."""

    def __init__(self, transport: httpx.BaseTransport | None = None):
        self._transport = transport
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def get(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(follow_redirects=False, transport=self._transport)
            return self._client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
