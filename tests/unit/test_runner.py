"""WorkerRunner: the loop every worker shares."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from workers.runner import WorkerRunner

DEADLINE = 5.0  # generous upper bound; every wait below ends as soon as its condition holds


def _wait_for(condition, timeout=DEADLINE):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.fixture
def runners():
    started = []
    yield started
    for runner in started:
        assert runner.stop(DEADLINE), "runner did not stop"


def _start(runners, tick, poll_interval=60.0, **kwargs):
    runner = WorkerRunner(tick, name="test", poll_interval=poll_interval, **kwargs)
    runners.append(runner)
    runner.start_in_thread()
    return runner


def test_calls_tick_until_idle_then_waits_and_records_a_heartbeat(runners):
    calls = []
    work = [3, 2, 0]  # items handled per tick: busy twice, then idle

    def tick():
        calls.append(1)
        return work.pop(0) if work else 0

    runner = _start(runners, tick)

    assert _wait_for(lambda: len(calls) >= 3)
    assert _wait_for(lambda: runner.last_tick_at is not None)
    # Idle now with a 60 s poll interval: no more ticks until woken.
    assert not _wait_for(lambda: len(calls) > 3, timeout=0.2)
    assert runner.seconds_since_tick() < DEADLINE


def test_stop_ends_an_idle_loop_promptly(runners):
    ticked = threading.Event()

    def tick():
        ticked.set()
        return 0

    runner = _start(runners, tick, poll_interval=60.0)
    assert ticked.wait(DEADLINE)

    started = time.monotonic()
    assert runner.stop(DEADLINE)
    assert time.monotonic() - started < 1.0
    assert runner.stopping


def test_stop_waits_for_the_running_tick_to_finish(runners):
    inside, release, finished = threading.Event(), threading.Event(), threading.Event()

    def tick():
        inside.set()
        release.wait(DEADLINE)
        finished.set()
        return 1

    runner = _start(runners, tick)
    assert inside.wait(DEADLINE)
    assert not runner.stop(timeout=0.05)  # still inside the tick
    release.set()
    assert runner.stop(DEADLINE)
    assert finished.is_set()


def test_survives_a_failing_tick_with_backoff(runners):
    calls = []

    def tick():
        calls.append(1)
        if len(calls) <= 2:
            raise RuntimeError("database down")
        return 0

    runner = _start(runners, tick, poll_interval=0.01)

    assert _wait_for(lambda: len(calls) >= 3)
    assert _wait_for(lambda: runner.consecutive_failures == 0 and runner.last_tick_at is not None)


def test_a_failing_tick_is_logged(runners, caplog):
    failed = threading.Event()

    def tick():
        failed.set()
        raise RuntimeError("database down")

    runner = _start(runners, tick, poll_interval=60.0)

    assert failed.wait(DEADLINE)
    assert _wait_for(lambda: any("tick failed" in r.message for r in caplog.records))
    assert runner.last_tick_at is None
    started = time.monotonic()
    assert runner.stop(DEADLINE)  # stop interrupts the backoff too
    assert time.monotonic() - started < 1.0


def test_backoff_doubles_up_to_the_cap():
    runner = WorkerRunner(lambda: 0, poll_interval=1.0, max_backoff=30.0)

    assert [runner.backoff(n) for n in (1, 2, 3, 5, 6, 20)] == [1, 2, 4, 16, 30, 30]


def test_wake_makes_it_tick_before_the_poll_interval(runners):
    calls = []

    def tick():
        calls.append(1)
        return 0

    runner = _start(runners, tick, poll_interval=60.0)
    assert _wait_for(lambda: len(calls) == 1)

    runner.wake()

    assert _wait_for(lambda: len(calls) == 2, timeout=2.0)


def test_a_wake_during_a_tick_is_not_lost(runners):
    calls = []
    inside, release = threading.Event(), threading.Event()

    def tick():
        calls.append(1)
        if len(calls) == 1:
            inside.set()
            release.wait(DEADLINE)
        return 0

    runner = _start(runners, tick, poll_interval=60.0)
    assert inside.wait(DEADLINE)
    runner.wake()  # arrives while the first tick is still running
    release.set()

    assert _wait_for(lambda: len(calls) == 2, timeout=2.0)


def test_run_forever_in_the_calling_thread_returns_after_stop():
    runner = WorkerRunner(lambda: 0, poll_interval=60.0)
    thread = threading.Thread(target=runner.run_forever, daemon=True)
    thread.start()
    assert _wait_for(lambda: runner.last_tick_at is not None)

    runner.stop()
    thread.join(DEADLINE)

    assert not thread.is_alive()


def test_an_alarm_makes_it_tick_when_due_not_at_the_poll_interval(runners):
    calls = []
    runner = _start(runners, lambda: calls.append(time.monotonic()) or 0, poll_interval=60.0)
    assert _wait_for(lambda: len(calls) == 1)

    armed = time.monotonic()
    runner.wake_in(0.3)
    runner.wake_in(5.0)  # a later alarm does not push the earlier one back

    assert _wait_for(lambda: len(calls) == 2, timeout=2.0)
    assert 0.25 <= calls[1] - armed < 1.0
    assert not _wait_for(lambda: len(calls) > 2, timeout=0.3)  # the alarm rang once


def test_stop_starts_the_grace_period():
    runner = WorkerRunner(lambda: 0, shutdown_grace=10.0)
    assert runner.time_left() is None

    runner.stop()
    first = runner.time_left()
    runner.stop()  # a second request does not extend it

    assert first is not None and 9.0 < first <= 10.0
    assert runner.time_left() <= first


def test_a_side_task_that_fails_is_restarted_and_reported_meanwhile(runners):
    attempts = []
    healthy_again = threading.Event()

    def flaky(stop):
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("connection refused")
        healthy_again.set()
        stop.wait()

    runner = WorkerRunner(lambda: 0, name="test", poll_interval=60.0)
    task = runner.supervise("listener", flaky)
    runners.append(runner)
    runner.start_in_thread()

    assert healthy_again.wait(DEADLINE)  # restarted after a 1 s backoff
    assert task.restarts == 1 and task.last_error == "RuntimeError: connection refused"
    assert _wait_for(lambda: task.up and runner.healthy)


def test_a_side_task_that_returns_early_counts_as_failed(runners):
    runs = []

    def quits(stop):
        runs.append(1)
        if len(runs) > 1:
            stop.wait()

    runner = WorkerRunner(lambda: 0, name="test", poll_interval=60.0)
    task = runner.supervise("quitter", quits)
    runners.append(runner)
    runner.start_in_thread()

    assert _wait_for(lambda: len(runs) == 2)
    assert task.restarts == 1 and "returned before the worker stopped" in task.last_error


def test_side_tasks_end_with_the_runner(runners):
    runner = WorkerRunner(lambda: 0, name="test", poll_interval=60.0)
    task = runner.supervise("waits", lambda stop: stop.wait())
    runner.start_in_thread()
    assert _wait_for(lambda: task.up)

    assert runner.stop(DEADLINE)
    assert task.thread is not None and not task.thread.is_alive()


def test_a_notification_wakes_now_or_sets_the_alarm_for_its_due_time():
    from datetime import timedelta

    from workers.wakeups import _wake_for

    class Clock:
        def now(self):
            return datetime.now(UTC)

    runner = WorkerRunner(lambda: 0, poll_interval=60.0)
    later = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    _wake_for(runner, Clock(), later)
    assert not runner._woken and 29 < runner._alarm - time.monotonic() <= 30.1

    for payload in ((datetime.now(UTC) - timedelta(seconds=1)).isoformat(), "not a time"):
        runner._woken = False
        _wake_for(runner, Clock(), payload)
        assert runner._woken


def test_the_scheduler_sets_its_alarm_for_the_next_tick():
    from workers.schedule_worker import ScheduleWorker

    class Schedules:
        fired = 0

        def fire_due(self):
            self.fired += 1
            return 1

        def seconds_until_next(self):
            return 42.0

    schedules = Schedules()
    worker = ScheduleWorker(schedules, poll_interval=30.0)  # type: ignore[arg-type]

    # A tick reports nothing left to repeat at once (the started ticks are behind the
    # cursor), and wakes at the next tick rather than the poll interval.
    assert worker.tick() == 0
    assert schedules.fired == 1
    assert 41.9 < worker.runner._alarm - time.monotonic() <= 42.1
