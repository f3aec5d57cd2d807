"""Schemathesis over the OpenAPI document of a real `waymark serve`: no request, valid or
not, is answered with a 5xx (issue 5). Bounded and derandomized, so the run is short and the
same on every machine: a few examples per operation, generation only (no shrinking).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.e2e.conftest import Server

pytestmark = pytest.mark.e2e

EXAMPLES_PER_OPERATION = 6
BUDGET_SECONDS = 90.0  # a loaded 2-core machine runs it in well under this


def test_no_operation_answers_a_server_error(server: Server) -> None:
    schema = schemathesis.openapi.from_url(server.base_url + "/openapi.json")
    failures: list[str] = []
    requests_sent = 0
    started = time.monotonic()
    with requests.Session() as session:
        session.headers["Authorization"] = "Bearer k-acme"
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(
                    max_examples=EXAMPLES_PER_OPERATION,
                    derandomize=True,
                    database=None,
                    deadline=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                def probe(case: Any) -> None:
                    nonlocal requests_sent
                    response = case.call(base_url=server.base_url, session=session)
                    requests_sent += 1
                    try:
                        case.validate_response(response, checks=[not_a_server_error])
                    except Exception as error:  # collected, not raised: no shrinking
                        failures.append(f"{operation.label} ({mode.value}): {error}")

                try:
                    probe()
                except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
                    assert mode is GenerationMode.NEGATIVE
    elapsed = time.monotonic() - started
    print(f"schemathesis: {requests_sent} requests in {elapsed:.1f} s")
    assert not failures, "\n\n".join(failures[:10])
    assert requests_sent > 50
    assert elapsed < BUDGET_SECONDS
