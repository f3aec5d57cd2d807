"""Audit entries leave with the outbox as `waymark.audit.recorded` CloudEvents (a second
source of the publisher), each once acknowledged marked exported."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest

from application import audit
from tests.integration.outbox_support import WAIT_THEN_END, Consumer, wait_for
from tests.integration.test_outbox import settings_for

pytestmark = pytest.mark.integration


def test_audit_entries_are_published_once_as_cloudevents(
    database_url: str, kafka_broker: Any
) -> None:
    from infrastructure.bootstrap import build_api
    from infrastructure.worker_bootstrap import build_outbox_worker
    from workers.outbox_worker import OutboxWorker

    topic = f"audit-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=1)
    settings = settings_for(database_url, kafka_broker.bootstrap, topic)
    api = build_api(settings)
    worker = OutboxWorker(build_outbox_worker(settings), listen=False)
    try:
        with audit.acting_as("key:ops", "10.1.2.3", "curl/8"):
            api.definitions.publish("acme", WAIT_THEN_END)
            api.definitions.set_enabled("acme", "wait-then-end", False)
        with Consumer(kafka_broker.bootstrap, topic, audit=True) as consumer:
            assert worker.tick() == 2
            assert worker.tick() == 0  # exported: not sent again
            records = wait_for(
                lambda: len(consumer.snapshot()) >= 2 and consumer.snapshot(), 30, "2 records"
            )
        types = [r.headers["ce_type"].decode() for r in records]
        assert types == ["waymark.audit.recorded"] * 2
        bodies = [json.loads(r.value) for r in records]
        assert [(b["action"], b["actor"], b["client_ip"]) for b in bodies] == [
            ("definition.published", "key:ops", "10.1.2.3"),
            ("definition.disabled", "key:ops", "10.1.2.3"),
        ]
        assert [r.headers["ce_id"].decode() for r in records] == [
            f"audit:{b['id']}" for b in bodies
        ]
        assert {r.headers["waymark_tenant"] for r in records} == {b"acme"}
        with psycopg.connect(database_url) as conn:
            assert conn.execute(
                "SELECT count(*) FROM audit_log WHERE exported_at IS NULL"
            ).fetchone() == (0,)
    finally:
        worker.runner.stop(10)
        worker.close()
        worker.container.close()
        api.close()
