"""Dry-run simulation (application/simulation.py) over the purchase-approval example."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from application.errors import InvalidDefinitionError
from application.simulation import SimulationService
from tests.unit.engine_support import T0

PURCHASE = json.loads((Path(__file__).parents[2] / "examples/purchase-approval.json").read_text())

CASES: list[dict[str, Any]] = [
    {"name": "small", "input": {"amount": 500, "po_id": "PO-1"},
     "script": {"notify": {"result": {"status": 200}}}},
    {"name": "large", "input": {"amount": 50000, "po_id": "PO-2"},
     "script": {"cfo_approval": {"outcome": "approved", "by": "cfo"}}},
    {"name": "manager says no", "input": {"amount": 50, "po_id": "PO-3"},
     "script": {"manager_approval": {"outcome": "rejected"}}},
]  # fmt: skip


def service() -> SimulationService:
    return SimulationService(definitions=None, now=lambda: T0)  # type: ignore[arg-type]


def test_three_cases_report_their_paths_and_the_route_never_taken() -> None:
    report = service().simulate("t1", document=PURCHASE, cases=CASES)
    small, large, rejected = report["cases"]
    assert small["path"] == ["manager_approval", "amount_check", "notify", "done"]
    assert (small["status"], small["output"]) == ("completed", {"po_id": "PO-1", "amount": 500})
    assert large["path"] == ["manager_approval", "amount_check", "cfo_approval", "notify", "done"]
    assert rejected["path"] == ["manager_approval", "rejected"]
    assert rejected["status"] == "failed"
    # cfo_approval → rejected (route 5) is the one route no case took.
    assert report["never_taken"] == [
        {"index": 5, "from": "cfo_approval", "to": "rejected", "outcome": "rejected",
         "condition": None, "default": False}
    ]  # fmt: skip
    assert report["stored"] is False


def test_a_scripted_failure_retries_then_fails_the_instance() -> None:
    case = {"input": {"amount": 1, "po_id": "P"}, "script": {"notify": {"error": "HTTP 503"}}}
    (result,) = service().simulate("t1", document=PURCHASE, cases=[case])["cases"]
    assert result["status"] == "failed"
    assert "HTTP 503 (after 5 attempt(s))" in result["error"]["message"]


def test_list_steps_are_used_in_turn_and_timers_fire() -> None:
    doc = {
        "name": "loop",
        "nodes": [
            {"id": "ask", "type": "user_task", "outcomes": ["again", "done"], "start": True},
            {"id": "pause", "type": "timer", "duration": "PT1H"},
            {"id": "end", "type": "end"},
        ],
        "routes": [
            {"from": "ask", "to": "pause", "outcome": "again"},
            {"from": "pause", "to": "ask"},
            {"from": "ask", "to": "end", "outcome": "done"},
        ],
    }
    script = {"ask": [{"outcome": "again"}, {"outcome": "again"}, {"outcome": "done"}]}
    (result,) = service().simulate("t1", document=doc, cases=[{"script": script}])["cases"]
    assert result["path"] == ["ask", "pause", "ask", "pause", "ask", "end"]
    assert result["status"] == "completed"


def test_an_invalid_inline_document_is_refused_with_its_problems() -> None:
    with pytest.raises(InvalidDefinitionError):
        service().simulate("t1", document={"name": "x", "nodes": []}, cases=[{}])


def test_a_script_step_the_node_refuses_stops_that_case_with_the_reason() -> None:
    case = {"input": {"amount": 1}, "script": {"manager_approval": {"outcome": "maybe"}}}
    (result,) = service().simulate("t1", document=PURCHASE, cases=[case])["cases"]
    assert result["status"] == "suspended"
    assert "the script was refused: outcome 'maybe' is not allowed" in result["stopped"]
