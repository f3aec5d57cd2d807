"""The one gate every outbound HTTP URL of an action passes: `check_url(url)`.

The `http`, `slack`, `teams` and `sms` actions call `check_url` before every request (and
the egress guard will call it on every redirect hop). On this branch it is a placeholder
that allows everything; the egress guard (loopback, private, link-local and metadata
addresses refused in production unless allow-listed) replaces its body, keeping the
signature. It raises to refuse a URL; callers turn that into a failed, non-retried attempt.
"""

from __future__ import annotations


def check_url(url: str) -> None:
    """Raise when `url` may not be called; return None when it may."""
    return None
