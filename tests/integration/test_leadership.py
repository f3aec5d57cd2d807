"""Leadership over a session advisory lock, with real processes and a real PostgreSQL."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from infrastructure.postgres.leadership import Leadership, leader_only

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 10.0


class Candidate:
    """A `leader_candidate` subprocess and the lines it printed."""

    def __init__(self, database_url: str, name: str) -> None:
        self.process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "tests.integration.leader_candidate", database_url, name],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def expect(self, line: str, timeout: float = DEADLINE) -> float:
        """Wait for `line`; the seconds it took."""
        started = time.monotonic()
        deadline = started + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                if self.lines.get(timeout=left) == line:
                    return time.monotonic() - started
            except queue.Empty:
                break
        raise AssertionError(f"no {line!r} within {timeout} s")

    def says_nothing_for(self, seconds: float) -> bool:
        try:
            self.lines.get(timeout=seconds)
        except queue.Empty:
            return True
        return False

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(DEADLINE)


@pytest.fixture
def candidates() -> Iterator[list[Candidate]]:
    started: list[Candidate] = []
    yield started
    for candidate in started:
        candidate.kill()


def test_one_of_two_processes_leads_and_the_other_takes_over_when_it_is_killed(
    database_url: str, candidates: list[Candidate]
) -> None:
    name = f"outbox-{uuid.uuid4().hex[:6]}"
    first = Candidate(database_url, name)
    candidates.append(first)
    first.expect("STARTED")
    first.expect("LEADER")

    second = Candidate(database_url, name)
    candidates.append(second)
    second.expect("STARTED")
    # Ten retry intervals: the standby keeps trying and never leads beside the leader.
    assert second.says_nothing_for(2.0)

    # When the leader dies hard (no clean-up of its own), the standby takes over.
    first.kill()
    took = second.expect("LEADER", timeout=5.0)
    print(f"takeover after kill -9: {took:.2f} s")


def test_a_leader_that_loses_its_connection_steps_down_and_a_standby_takes_over(
    postgres_admin_url: str, database_url: str
) -> None:
    name = f"cron-{uuid.uuid4().hex[:6]}"
    leader = Leadership(database_url, name, retry_interval=0.0)
    standby = Leadership(database_url, name, retry_interval=0.0)
    try:
        assert leader.try_acquire() and leader.is_leader
        assert not standby.try_acquire()
        assert leader.check()

        with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (f"waymark-leader:{name}",),
            )

        assert not leader.check()  # the next check notices and steps down
        assert not leader.is_leader
        assert standby.try_acquire()
        assert not leader.ensure()  # and it does not get it back while the standby leads
    finally:
        leader.release()
        standby.release()


def test_release_hands_leadership_over_and_leader_only_guards_a_tick(database_url: str) -> None:
    name = f"pub-{uuid.uuid4().hex[:6]}"
    calls: list[int] = []
    with Leadership(database_url, name, retry_interval=0.0) as first:
        second = Leadership(database_url, name, retry_interval=0.0)
        tick = leader_only(second, lambda: calls.append(1) or 1)
        assert first.try_acquire()
        assert tick() == 0 and calls == []

        first.release()
        assert tick() == 1 and calls == [1]
        second.release()
