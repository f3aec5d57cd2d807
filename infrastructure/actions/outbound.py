"""Outbound calls of actions: the egress guard and retries of transient errors in one attempt.

The egress guard keeps a tenant's definitions from reaching the deployment's own network:
in production every address a host name resolves to must be public (not loopback, private,
link-local, cloud metadata, multicast, reserved or unspecified) unless an allow-list entry
(`WAYMARK_EGRESS_ALLOW`: host names or CIDRs) names it. Development allows loopback, so a
laptop can call a local server. The check runs before every request, redirects included
(`guarded_client` hooks every request httpx sends), on all the resolved addresses: one bad
address refuses the call, so a name resolving to a public and a private address cannot be
used to reach the private one.

Actions that call out with a client of their own (slack, teams, sms) call `check_url(url)`
before each call: it applies the policy of the action registry running the call (set around
each handler call, `egress_scope`), else the process default (development's rule).
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import tenacity

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# resolver(host, port) -> the addresses the host name resolves to (textual IPs).
Resolver = Callable[[str, int], Sequence[str]]

# Cloud metadata endpoints. Most are link-local already; named here so that no allow-list
# of a wider range lets them through by accident (they need an exact entry).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class EgressRefusedError(Exception):
    """The URL's host is, or resolves to, an address actions may not reach."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"egress refused: {reason} ({_host_of(url)})")
        self.url = url
        self.reason = reason


def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class EgressPolicy:
    """Which addresses outbound calls may reach."""

    guard: bool = True  # False: every address is allowed (an explicit opt-out)
    allow_loopback: bool = False
    allow_hosts: frozenset[str] = frozenset()
    allow_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def parse(
        cls,
        allow: str | Iterable[str] = "",
        *,
        production: bool,
        guard: bool | None = None,
        resolver: Resolver = system_resolver,
    ) -> EgressPolicy:
        """From the `WAYMARK_EGRESS_ALLOW` text (comma-separated hosts and CIDRs)."""
        entries = allow.split(",") if isinstance(allow, str) else list(allow)
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(
            guard=True if guard is None else guard,
            allow_loopback=not production,
            allow_hosts=frozenset(hosts),
            allow_networks=tuple(networks),
            resolver=resolver,
        )

    def check(self, url: str) -> None:
        """Raise `EgressRefusedError` unless `url` may be called."""
        if not self.guard:
            return
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        if not host:
            raise EgressRefusedError(url, "the URL names no host")
        if host in self.allow_hosts:
            return
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal]
        else:
            try:
                port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 443)
            except ValueError:
                raise EgressRefusedError(url, "the URL has an invalid port") from None
            try:
                resolved = self.resolver(host, port)
            except OSError as exc:
                raise EgressRefusedError(url, f"cannot resolve the host: {exc}") from None
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolved]
            if not addresses:
                raise EgressRefusedError(url, "the host resolves to no address")
        for address in addresses:
            reason = self._refusal(address)
            if reason is not None:
                raise EgressRefusedError(url, f"{address} is {reason}")

    def _refusal(self, address: IPAddress) -> str | None:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        if address in METADATA_ADDRESSES:
            # Only an entry naming exactly this address lets a metadata endpoint through.
            if any(n.num_addresses == 1 and address in n for n in self.allow_networks):
                return None
            return "a cloud metadata address"
        if any(address in network for network in self.allow_networks):
            return None
        if address.is_unspecified or address.is_multicast:
            return "not a routable public address"  # 0.0.0.0 reaches this very host
        if address.is_loopback:
            return None if self.allow_loopback else "a loopback address"
        if address.is_link_local:
            return "a link-local address"
        if address.is_private:
            return "a private address"
        if address.is_reserved or not address.is_global:
            return "not a routable public address"
        return None


# The policy `check_url` applies: the one of the action registry running the current call
# (`egress_scope`, set around each handler call in that thread), else the process default.
# A scope per call, not one global, so two registries in one process (tests) never mix.
_scoped: contextvars.ContextVar[EgressPolicy | None] = contextvars.ContextVar(
    "waymark_egress_policy", default=None
)
# Outside any registry call: the development rule (loopback only), never "everything".
_default = EgressPolicy(allow_loopback=True)
_default_lock = threading.Lock()


def install_policy(policy: EgressPolicy) -> None:
    """Make `policy` the default of this process (calls outside any registry's scope)."""
    global _default
    with _default_lock:
        _default = policy


def current_policy() -> EgressPolicy:
    scoped = _scoped.get()
    if scoped is not None:
        return scoped
    with _default_lock:
        return _default


@contextlib.contextmanager
def egress_scope(policy: EgressPolicy | None) -> Iterator[None]:
    """`check_url` applies `policy` inside the block (in this thread and what it awaits)."""
    if policy is None:
        yield
        return
    token = _scoped.set(policy)
    try:
        yield
    finally:
        _scoped.reset(token)


def check_url(url: str, policy: EgressPolicy | None = None) -> None:
    """Raise `EgressRefusedError` unless actions may call `url` (call it before each call)."""
    (policy or current_policy()).check(url)


def guarded_client(
    policy: EgressPolicy | Callable[[], EgressPolicy | None] | None = None, **options: Any
) -> httpx.Client:
    """An httpx client that checks every request it sends, redirects included.

    `policy` may be a callable giving the policy at each request; None: the installed one."""

    def check(request: httpx.Request) -> None:
        check_url(str(request.url), policy() if callable(policy) else policy)

    hooks = options.pop("event_hooks", {}) or {}
    hooks = {**hooks, "request": [check, *hooks.get("request", [])]}
    return httpx.Client(event_hooks=hooks, **options)


@dataclass(frozen=True)
class RetryPolicy:
    """Tries of one attempt for transient errors (SPEC §6: 3 tries, 1 s, ×1.5)."""

    attempts: int = 3
    initial: float = 1.0
    backoff: float = 1.5


TRANSIENT_STATUSES = frozenset({502, 503, 504})
# Errors of the connection, not of the request: another try may not meet them. An egress
# refusal is raised from a request hook and is not among them: it never gets a second try.
TRANSIENT_ERRORS = (
    httpx.ConnectError,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
    httpx.TimeoutException,
)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The delay a 429 (or 503) asks for in `Retry-After`, in seconds; None when absent."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def is_transient_response(response: httpx.Response) -> bool:
    if response.status_code in TRANSIENT_STATUSES:
        return True
    return response.status_code == 429 and retry_after_seconds(response) is not None


def send_with_retries(
    send: Callable[[float], httpx.Response],
    *,
    timeout: float,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> httpx.Response:
    """`send(seconds_left)`, tried again on transient errors within `timeout` in all.

    Returns the last response (a transient one when the tries ran out) or raises the last
    error. A wait that would end past the deadline is not started: the attempt fails at once
    and the node's durable retry policy takes over.
    """
    deadline = time.monotonic() + timeout

    def wait(state: tenacity.RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            asked = retry_after_seconds(outcome.result())
            if asked is not None:
                return asked
        return float(policy.initial * policy.backoff ** (state.attempt_number - 1))

    def stop(state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= policy.attempts:
            return True
        return time.monotonic() + state.upcoming_sleep >= deadline

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(TRANSIENT_ERRORS)
        | tenacity.retry_if_result(is_transient_response),
        wait=wait,
        stop=stop,
        sleep=sleep,
        reraise=True,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        before_sleep=_log_retry,
    )
    return retrying(lambda: send(max(0.001, deadline - time.monotonic())))


def _log_retry(state: tenacity.RetryCallState) -> None:
    outcome = state.outcome
    what = "?"
    if outcome is not None:
        what = type(outcome.exception()).__name__ if outcome.failed else str(outcome.result())
    logger.info("outbound call: try %d failed (%s), trying again", state.attempt_number, what)


def _host_of(url: str) -> str:
    try:
        return urlsplit(url).hostname or url[:100]
    except ValueError:
        return url[:100]
