from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT30S", timedelta(seconds=30)),
        ("PT1H30M", timedelta(hours=1, minutes=30)),
        ("P1D", timedelta(days=1)),
        ("P2W", timedelta(days=14)),
        ("P1M", timedelta(days=30)),
        ("P1Y", timedelta(days=365)),
        ("P1Y2M3W4DT5H6M7S", timedelta(days=365 + 60 + 21 + 4, hours=5, minutes=6, seconds=7)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("PT1.25S", timedelta(seconds=1, milliseconds=250)),
        ("PT0,5H", timedelta(minutes=30)),
        ("PT0S", timedelta(0)),
        ("P0D", timedelta(0)),
    ],
)
def test_parse_valid_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "P",
        "PT",
        "P1DT",
        "1D",
        "PT1H30",
        "-PT1S",
        "P1S",
        "pt1s",
        "PT1.S",
        "PT 1S",
        "P1H",
        "PT1D",
        "PT1S ",
        "P1M1Y",
    ],
)
def test_parse_rejects_invalid_durations_with_a_clear_message(text):
    with pytest.raises(ValueError, match="invalid ISO-8601 duration"):
        parse_duration(text)


def test_parse_rejects_non_strings():
    with pytest.raises(ValueError, match="must be an ISO-8601 string"):
        parse_duration(30)  # type: ignore[arg-type]


def test_parse_rejects_durations_too_large_for_timedelta():
    with pytest.raises(ValueError, match="too large"):
        parse_duration("P99999999999Y")


@pytest.mark.parametrize(
    ("td", "expected"),
    [
        (timedelta(0), "PT0S"),
        (timedelta(seconds=30), "PT30S"),
        (timedelta(hours=1, minutes=30), "PT1H30M"),
        (timedelta(days=1), "P1D"),
        (timedelta(days=1, hours=12), "P1DT12H"),
        (timedelta(milliseconds=1500), "PT1.5S"),
        (timedelta(microseconds=1), "PT0.000001S"),
        (timedelta(seconds=-90), "-PT1M30S"),
    ],
)
def test_format_duration(td, expected):
    assert format_duration(td) == expected


@given(st.timedeltas(min_value=timedelta(0)))
def test_format_then_parse_round_trips(td):
    assert parse_duration(format_duration(td)) == td
