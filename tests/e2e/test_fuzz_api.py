"""Schemathesis over the OpenAPI document of a real `waymark serve`: no request, valid or
not, is answered with a 5xx (issue 5), and every answer is one the document declares: its
status, its content type (problem+json for errors) and its body's schema (issue 6).

The run is schemathesis' own engine (what `schemathesis run` executes): the deterministic
coverage phase (boundary and invalid values for every parameter and body field) and a
bounded fuzzing phase with a fixed seed, checked with the four checks below. About 900
requests, ~10 s on an idle machine; the same cases on every run.
"""

from __future__ import annotations

import time

import pytest
import schemathesis
from schemathesis import engine
from schemathesis.engine import Status, events

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

SEED = 20260501
EXAMPLES_PER_OPERATION = 6
STREAMS = ["/v1/feed/stream"]


def _config() -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "workers": 1,
            # No crash cache on disk: every run is exactly the seeded cases, nothing replayed.
            "cache": {"enabled": False},
            "headers": {"Authorization": "Bearer k-acme"},
            "generation": {"max-examples": EXAMPLES_PER_OPERATION},
            "checks": {
                "enabled": False,
                "not_a_server_error": {"enabled": True},
                # The response models in api/responses.py are declared, not enforced on the
                # way out: these keep them true to what the routes send.
                "status_code_conformance": {"enabled": True},
                "content_type_conformance": {"enabled": True},
                "response_schema_conformance": {"enabled": True},
            },
            # Stateful links would chain on our responses; the phases above are enough.
            "phases": {"stateful": {"enabled": False}},
        }
    )


def _failures(event: events.ScenarioFinished) -> list[str]:
    found = []
    for checks in event.recorder.checks.values():
        for check in checks:
            if check.status != Status.SUCCESS and check.failure_info is not None:
                info = check.failure_info
                found.append(f"{event.label}: {info.failure.title}\n  {info.code_sample}")
    return found or [f"{event.label}: {event.status.value}"]


def test_no_operation_answers_a_server_error(server: Server) -> None:
    started = time.monotonic()
    schema = schemathesis.openapi.from_url(server.base_url + "/openapi.json", config=_config())
    # A Server-Sent Events stream never ends by itself: its answers are checked in
    # tests/e2e/test_event_feed.py (status, content type, problems for bad positions).
    schema = schema.exclude(path=STREAMS)
    cases, failures, phases = 0, [], {}
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            cases += len(event.recorder.cases)
            if event.status in (Status.FAILURE, Status.ERROR):
                failures.extend(_failures(event))
        elif isinstance(event, events.NonFatalError | events.FatalError):
            failures.append(f"schemathesis error: {event.info}")
        elif isinstance(event, events.PhaseFinished):
            phases[event.phase.name.value] = event.status
    elapsed = time.monotonic() - started
    # The run is bounded by EXAMPLES_PER_OPERATION, not by a clock: how long it takes is
    # reported, never asserted (a loaded machine must not fail the suite).
    print(f"schemathesis: {cases} cases in {elapsed:.1f} s; phases {phases}")

    assert not failures, "\n".join(failures[:20])
    assert phases.get("coverage") == Status.SUCCESS and phases.get("fuzzing") == Status.SUCCESS
    assert cases > 300, "the run generated far fewer cases than expected"
