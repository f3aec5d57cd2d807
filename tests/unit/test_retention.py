"""The `retention` field of a definition (validated at publish) and how it overrides the
retention settings."""

from datetime import UTC, datetime, timedelta

import pytest

from domain.retention import Retention
from tests.unit.validation_support import assert_only, found, minimal

DEFAULTS = Retention(
    completed=timedelta(days=90), failed=timedelta(days=365), cancelled=timedelta(days=365)
)


@pytest.mark.parametrize(
    "retention",
    ["forever", {"completed": "P3650D"}, {"failed": "forever", "cancelled": "P30D"}, {}],
)
def test_valid_retention_fields(retention):
    assert found({**minimal(), "retention": retention}) == []


@pytest.mark.parametrize(
    ("retention", "code", "path"),
    [
        ("always", "invalid_value", "$.retention"),
        (7, "invalid_type", "$.retention"),
        ({"completed": "90 days"}, "invalid_duration", "$.retention.completed"),
        ({"completed": "P36501D"}, "invalid_duration", "$.retention.completed"),
        ({"completed": 90}, "invalid_type", "$.retention.completed"),
        ({"running": "P1D"}, "unknown_field", "$.retention.running"),
    ],
)
def test_invalid_retention_fields_name_their_path(retention, code, path):
    assert_only({**minimal(), "retention": retention}, code, path)


def test_a_definition_overrides_only_the_statuses_it_names():
    kept = DEFAULTS.overridden_by({"completed": "P3650D", "failed": "forever"})
    assert kept == Retention(timedelta(days=3650), None, timedelta(days=365))
    assert DEFAULTS.overridden_by("forever").cutoffs(datetime.now(UTC)) == {}
    assert DEFAULTS.overridden_by(None) == DEFAULTS


def test_cutoffs_leave_out_what_is_kept_forever():
    now = datetime(2030, 1, 1, tzinfo=UTC)
    cutoffs = Retention(timedelta(days=1), None, timedelta(days=2)).cutoffs(now)
    assert cutoffs == {"completed": now - timedelta(days=1), "cancelled": now - timedelta(days=2)}
