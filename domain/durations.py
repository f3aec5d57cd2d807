"""ISO-8601 durations (`PnYnMnWnDTnHnMnS`) as used by timers, timeouts and retry intervals.

Calendar units have fixed lengths here: a year is 365 days and a month 30 days, so a duration
is always an exact `timedelta`. Any component may carry a fraction (`PT1.5S`, `PT0.5H`);
`,` is accepted as the decimal mark as ISO-8601 allows. Negative durations are rejected.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from functools import lru_cache

_NUMBER = r"(\d+(?:[.,]\d+)?)"
_PATTERN = re.compile(
    rf"P(?:{_NUMBER}Y)?(?:{_NUMBER}M)?(?:{_NUMBER}W)?(?:{_NUMBER}D)?"
    rf"(?:T(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?"
)
_DAY = 86_400
# Seconds per unit, in the order of the pattern's groups: Y, M, W, D, H, M, S.
_UNIT_SECONDS = (365 * _DAY, 30 * _DAY, 7 * _DAY, _DAY, 3_600, 60, 1)
_MICROS = 1_000_000
_EXAMPLES = "e.g. 'PT30S', 'PT1H30M', 'P1D', 'P1DT12H', 'PT0.5S'"

# The longest duration a definition may publish (timers, timeouts): ten 365-day years. Due
# times stay far inside what PostgreSQL and `datetime` hold; retry intervals are bounded
# tighter (`domain.engine.retry`).
MAX_DURATION = timedelta(days=3650)


_LITERAL = re.compile(r"-?P(?:T|[0-9]).*", re.DOTALL)


def looks_like_duration(text: str) -> bool:
    """True for text written as an ISO-8601 duration literal (valid or not): `PT5M`, `P1X`
    is a (bad) literal, `vars.delay` an expression."""
    return _LITERAL.fullmatch(text.strip()) is not None


def parse_duration(text: str) -> timedelta:
    """Parse an ISO-8601 duration; raise `ValueError` saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(
            f"a duration must be an ISO-8601 string ({_EXAMPLES}), got {type(text).__name__}"
        )
    return _parse(text)


@lru_cache(maxsize=1024)
def _parse(text: str) -> timedelta:
    # Cached: every scheduled activity parses its node's timeout, a timer its delay, and a
    # definition has few distinct literals (timedelta is immutable; errors are not cached).
    match = _PATTERN.fullmatch(text)
    if match is None or not any(match.groups()) or text.endswith("T"):
        raise ValueError(
            f"invalid ISO-8601 duration {text!r}: expected PnYnMnWnDTnHnMnS ({_EXAMPLES})"
        )
    seconds = sum(
        (Decimal(group.replace(",", ".")) * unit)
        for group, unit in zip(match.groups(), _UNIT_SECONDS, strict=True)
        if group
    )
    try:
        return timedelta(microseconds=int(seconds * _MICROS))
    except OverflowError:
        raise ValueError(f"duration {text!r} is too large") from None


def format_duration(td: timedelta) -> str:
    """Format as a canonical ISO-8601 duration in days, hours, minutes and seconds.

    `parse_duration(format_duration(td)) == td` for any non-negative `td`; zero is `PT0S`
    and a negative duration is prefixed with `-`.
    """
    total = (td.days * _DAY + td.seconds) * _MICROS + td.microseconds
    sign = "-" if total < 0 else ""
    days, rest = divmod(abs(total), _DAY * _MICROS)
    hours, rest = divmod(rest, 3_600 * _MICROS)
    minutes, rest = divmod(rest, 60 * _MICROS)
    seconds, micros = divmod(rest, _MICROS)
    time = ""
    if hours:
        time += f"{hours}H"
    if minutes:
        time += f"{minutes}M"
    if micros:
        time += f"{seconds}.{micros:06d}".rstrip("0") + "S"
    elif seconds:
        time += f"{seconds}S"
    if not days and not time:
        return "PT0S"
    return f"{sign}P{f'{days}D' if days else ''}{f'T{time}' if time else ''}"
