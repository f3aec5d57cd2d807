"""bench/bulk_load.py's templates: a stored row becomes a format string whose ids, tenant and
times are fields, so that every copy gets its own and nothing of the template leaks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from bench.bulk_load import Template, _Tokens

INSTANCE = "9a684055-0e53-4202-a496-d726be09ae32"
BOOKMARK = "3d173ff9-1a0b-4fa7-b047-b7f1ea8bfc11"
CREATED = datetime(2026, 12, 2, 4, 17, 20, 890423, tzinfo=UTC)


def _tokens() -> tuple[Template, _Tokens]:
    template = Template(UUID(INSTANCE), "completed", CREATED)
    tokens = _Tokens(template, "acme")
    tokens.ids[INSTANCE] = 0
    template.uuids = 1
    return template, tokens


def _values(template: Template, base: datetime, ids: list[str], tenant: str) -> dict[str, str]:
    values = {"tenant": tenant, **{f"u{k}": v for k, v in enumerate(ids)}}
    for k, offset in enumerate(template.offsets):
        values[f"s{k}"] = (base + offset).isoformat(" ")
        values[f"t{k}"] = (base + offset).isoformat()
    return values


def test_a_copy_line_gets_its_own_ids_tenant_and_times() -> None:
    template, tokens = _tokens()
    line = (
        f"{BOOKMARK}\tacme\t{INSTANCE}\tacme-approve\ttask\tconsumed\t\\N\t"
        "2026-12-02 04:17:20.920756+00\t2026-12-02 04:17:21+00\n"
    )
    pattern = tokens.copy_line(line)
    assert pattern == "{u1}\t{tenant}\t{u0}\tacme-approve\ttask\tconsumed\t\\N\t{s0}\t{s1}"
    assert template.uuids == 2
    assert template.offsets == [timedelta(microseconds=30333), timedelta(microseconds=109577)]
    base = CREATED - timedelta(days=3)
    copy = pattern.format_map(_values(template, base, ["i-new", "b-new"], "globex"))
    cells = copy.split("\t")
    # The definition's name contains the tenant's but is a name, not the tenant: untouched.
    assert cells[:4] == ["b-new", "globex", "i-new", "acme-approve"]
    assert datetime.fromisoformat(cells[7]) == base + timedelta(microseconds=30333)
    assert INSTANCE not in copy and BOOKMARK not in copy and "2026-12-02" not in copy


def test_event_state_keeps_its_json_and_replaces_only_the_tenant_key() -> None:
    template, tokens = _tokens()
    state = (
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2026-12-02T04:17:20.890423+00:00"},'
        '"tenant":"acme","definition":"acme-noop","activity":{"idempotency_key":"'
        + INSTANCE
        + ':call:1"}}'
    )
    pattern = tokens.state(state)
    copy = pattern.format_map(_values(template, CREATED + timedelta(hours=1), ["new-id"], "globex"))
    assert copy == (
        '{"timestamp":{"_type_":"datetime_iso","_data_":"2026-12-02T05:17:20.890423+00:00"},'
        '"tenant":"globex","definition":"acme-noop","activity":{"idempotency_key":"new-id:call:1"}}'
    )
