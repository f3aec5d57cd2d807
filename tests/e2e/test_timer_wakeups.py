"""Timers between polls (issue 8): a standalone `waymark worker timers` armed for a later
timer wakes for an earlier one created by another process, and the in-process timer worker
for one created in its own process, within 1 s of the due time although both poll only
every 30 s. The negative control of the cross-process case (LISTEN off) is in
test_worker_processes.py; the in-process one takes the commit hook out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import API_KEYS, terminate, unique, wait_for
from tests.e2e.timer_processes import (
    POLL,
    build_container,
    env_of,
    lateness,
    start_one,
    status_of,
    wait_completed,
)
from tests.e2e.worker_processes import start_worker, timer_definition

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def container(module_database_url: str) -> Iterator[Any]:
    built = build_container(module_database_url)
    yield built
    built.close()


def test_a_worker_armed_for_a_later_timer_wakes_for_an_earlier_one_from_another_process(
    module_database_url: str, container: Any, tmp_path: Path
) -> None:
    worker = start_worker("timers", env_of(module_database_url, tmp_path), tmp_path / "w.log")
    try:
        # Its alarm is set for a timer a minute away (and its next poll is 30 s away) ...
        start_one(container, timer_definition(unique("later"), "PT60S"))
        # ... when another process creates one due in 2 s.
        instance_id, due = start_one(container, timer_definition(unique("sooner"), "PT2S"))
        wait_completed(container, instance_id, timeout=10.0)
    finally:
        assert terminate(worker.process) == 0, worker.text()
    late = lateness(container, instance_id, due)
    print(f"fired {late:.3f} s after its due time")
    assert 0 <= late < 1.0


@pytest.mark.parametrize("woken", [True, False], ids=["on-commit-wake", "control-no-wake"])
def test_the_in_process_worker_wakes_for_a_timer_its_own_process_created(
    module_database_url: str, container: Any, woken: bool
) -> None:
    from infrastructure.bootstrap import build_api
    from infrastructure.settings import Settings
    from workers.in_process import InProcessWorkers

    settings = Settings(
        database_url=module_database_url,
        api_keys=API_KEYS,
        db_pool_size=4,
        timer_poll_interval=float(POLL),
        worker_listen=False,
    )
    own = build_api(settings)
    workers = InProcessWorkers.start(own.core)
    try:
        wait_for(lambda: workers.timers.runner.last_tick_at, what="the first tick")
        if not woken:
            # Negative control: the commit hook that wakes the worker, taken out.
            own.core.runner.on_commit.remove(workers._wake)
        instance_id, due = start_one(own, timer_definition(unique("own"), "PT1S"))
        if woken:
            wait_completed(own, instance_id, timeout=10.0)
        else:
            wait_for(lambda: datetime.now(UTC) > due + timedelta(seconds=2), what="2 s past due")
            assert status_of(own, instance_id) == "suspended"
            return
    finally:
        workers.stop()
        own.close()
    late = lateness(container, instance_id, due)
    print(f"fired {late:.3f} s after its due time")
    assert 0 <= late < 1.0
