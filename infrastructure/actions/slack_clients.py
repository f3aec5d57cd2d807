"""slack-sdk clients that never follow an HTTP redirect (the egress guard's redirect rule).

slack-sdk sends with `urllib.request.urlopen`, whose default opener follows `301/302/303`
(turning the POST into a GET) to wherever `Location` points — past `outbound.check_url`,
which only saw the first URL. Slack's API and incoming webhooks never answer with a redirect,
so the `slack` action does not follow one: a `3xx` raises `SlackRedirectRefusedError` naming
the `Location`, before any connection to it, and the attempt fails, not retryable.

slack-sdk has no supported hook for the opener (only `proxy` and `ssl`), so this overrides
the one private method per client that opens the connection
(`WebClient._perform_urllib_http_request_internal(url, req)`,
`WebhookClient._perform_http_request_internal(url, req)`, slack-sdk 3.x); the SDK's headers,
retries (off here) and response parsing stay the SDK's. tests/unit/test_slack_clients.py pins
that these methods exist with that signature, so an SDK upgrade that renames them fails a test
instead of silently following redirects again. No `proxy` support: the action passes none.
"""

from __future__ import annotations

import ssl
import urllib.request
from email.message import Message
from typing import IO, Any, NoReturn
from urllib.request import HTTPRedirectHandler, HTTPSHandler, OpenerDirector, Request

from slack_sdk import WebClient
from slack_sdk.errors import SlackRequestError
from slack_sdk.webhook import WebhookClient, WebhookResponse


class SlackRedirectRefusedError(Exception):
    """Slack's side answered with a redirect; it is not followed."""

    def __init__(self, url: str, status: int, location: str):
        self.url, self.status, self.location = url, status, location
        super().__init__(
            f"HTTP {status} redirect to {location[:200]!r} not followed"
            " (the slack action follows no redirects)"
        )


class _RefuseRedirects(HTTPRedirectHandler):
    def redirect_request(
        self,
        req: Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> NoReturn:
        raise SlackRedirectRefusedError(req.full_url, code, str(newurl))


def _opener(context: ssl.SSLContext | None) -> OpenerDirector:
    # A subclass of HTTPRedirectHandler replaces build_opener's default one.
    return urllib.request.build_opener(HTTPSHandler(context=context), _RefuseRedirects())


def _read(url: str, req: Request, context: ssl.SSLContext | None, timeout: int) -> Any:
    if not url.lower().startswith("http"):  # the SDK's own rule (BAN-B310)
        raise SlackRequestError(f"Invalid URL detected: {url}")
    return _opener(context).open(req, timeout=timeout)


class NoRedirectWebClient(WebClient):
    """`WebClient` whose requests never follow a redirect."""

    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> dict[str, Any]:
        with _read(url, req, self.ssl, self.timeout) as resp:
            charset = resp.headers.get_content_charset() or "utf-8"
            body = resp.read().decode(charset)
            return {"status": resp.code, "headers": resp.headers, "body": body}


class NoRedirectWebhookClient(WebhookClient):
    """`WebhookClient` whose requests never follow a redirect."""

    def _perform_http_request_internal(self, url: str, req: Request) -> WebhookResponse:
        with _read(url, req, self.ssl, self.timeout) as resp:
            charset = resp.headers.get_content_charset() or "utf-8"
            return WebhookResponse(
                url=url,
                status_code=resp.status,
                body=resp.read().decode(charset),
                headers=resp.headers,
            )
