"""The daily-report template's `schedule` trigger, instantiated from the library and fired
by the real scheduler on PostgreSQL with a clock the test moves: one start per working day
at 07:00 in Berlin, none at the weekend, each with the empty input a scheduled start has."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.integration.test_schedules import (
    TENANT,
    SteppedClock,
    scheduler_replica,
    ticks_of,
    utc,
)

pytestmark = pytest.mark.integration


def test_daily_report_fires_on_working_days_at_seven_in_berlin(
    database_url: str, tmp_path: Path
) -> None:
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings

    connections = tmp_path / "connections.json"
    mail = {"type": "smtp", "host": "mail.acme.example", "from": "reports@acme.example"}
    connections.write_text(json.dumps({TENANT: {"mail": mail}}))
    api = build_api(
        Settings(
            database_url=database_url,
            api_keys="k=acme:admin",
            db_pool_size=3,
            connections_file=connections,
        )
    )
    clock = SteppedClock(utc(2027, 1, 1, 12))  # Friday 13:00 in Berlin
    scheduler = scheduler_replica(database_url, clock)
    try:
        # Given the template instantiated (as if at the clock's time)
        published = api.templates.instantiate(TENANT, "daily-report")
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "UPDATE definitions SET created_at = %s WHERE tenant = %s AND name = %s",
                (clock.at, TENANT, published.name),
            )

        # When ten days pass, the scheduler looking every hour
        for _ in range(10 * 24):
            clock.advance(hours=1)
            scheduler.schedules.fire_due()

        # Then one start at 07:00 Berlin (06:00 UTC) per working day, none at the weekend
        ticks = ticks_of(api, database_url, "daily-report")
        assert ticks == [f"2027-01-{day:02d}T06:00:00+00:00" for day in (4, 5, 6, 7, 8, 11)]
        with psycopg.connect(database_url) as conn:
            (instance_id,) = conn.execute(
                "SELECT id FROM instances WHERE tenant = %s LIMIT 1", (TENANT,)
            ).fetchone() or (None,)
        view: dict[str, Any] = api.instances.get(TENANT, str(instance_id))
        assert view["input"] == {}
        assert view["started_by"]["cron"] == "0 7 * * 1-5"
    finally:
        scheduler.close()
        api.close()
