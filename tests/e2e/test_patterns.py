"""The Workflow Control-Flow Patterns (Russell et al. 2006) Waymark supports, each run over
HTTP against `waymark serve` with its edge conditions (docs/patterns.md is the table).

One test per pattern: WCP-1 to WCP-11, 20, 21, 29 and 43, the stalled-join guard, the
publish-time refusals, and a sub-workflow tree 25 levels deep that cancels cleanly.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    instance,
    open_bookmark,
    open_tasks,
    publish,
    start,
    unique,
    wait_for,
    wait_for_status,
)
from tests.e2e.flow_support import define, history_types, refusals
from tests.patterns_support import routes, skipping_gateway, skipping_routes, wait

pytestmark = pytest.mark.e2e


def resume(client: httpx.Client, instance_id: str, node_id: str) -> dict[str, Any]:
    bookmark = open_bookmark(instance(client, instance_id), node_id)
    response = client.post(
        f"/v1/instances/{instance_id}/bookmarks/{bookmark['id']}/resume",
        json={"payload": {"from": node_id}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["resumed"] is True
    return instance(client, instance_id)


def waiting_at(view: dict[str, Any]) -> list[str]:
    return sorted(b["node_id"] for b in view["bookmarks"])


def entered(client: httpx.Client, instance_id: str, node_id: str) -> int:
    response = client.get(f"/v1/instances/{instance_id}/history")
    return sum(
        1
        for e in response.json()["items"]
        if e["type"] == "NodeEntered" and e["data"]["node_id"] == node_id
    )


def test_wcp1_sequence(acme: httpx.Client) -> None:
    name = define(
        acme,
        [
            {"id": "first", "type": "set", "variables": {"a": "1"}},
            {"id": "second", "type": "set", "variables": {"b": "vars.a + 1"}},
            {"id": "done", "type": "end", "output": {"b": "vars.b"}},
        ],
        routes("first>second second>done"),
    )
    view = start(acme, name)
    assert (view["status"], view["output"]) == ("completed", {"b": 2})


def test_wcp2_wcp3_parallel_split_and_synchronisation(acme: httpx.Client) -> None:
    name = define(
        acme,
        [
            {"id": "fork", "type": "parallel"},
            wait("legal"),
            wait("finance"),
            {"id": "both", "type": "join"},
            {"id": "done", "type": "end"},
        ],
        routes("fork>legal fork>finance legal>both finance>both both>done"),
    )
    view = start(acme, name)
    assert waiting_at(view) == ["finance", "legal"]  # both branches started
    assert resume(acme, view["id"], "legal")["status"] == "suspended"  # the join waits
    assert resume(acme, view["id"], "finance")["status"] == "completed"


def test_wcp4_wcp5_exclusive_choice_and_simple_merge(acme: httpx.Client) -> None:
    name = define(
        acme,
        [
            {"id": "route", "type": "gateway"},
            {"id": "big", "type": "set", "variables": {"path": "'big'"}},
            {"id": "small", "type": "set", "variables": {"path": "'small'"}},
            {"id": "merge", "type": "set", "variables": {"merged": "true"}},
            {"id": "done", "type": "end", "output": {"path": "vars.path"}},
        ],
        routes(
            {"from": "route", "to": "big", "condition": "input.amount > 100"},
            {"from": "route", "to": "small", "default": True},
            "big>merge small>merge merge>done",
        ),
    )
    assert start(acme, name, input={"amount": 500})["output"] == {"path": "big"}
    small = start(acme, name, input={"amount": 5})
    assert small["output"] == {"path": "small"}
    assert entered(acme, small["id"], "big") == 0 and entered(acme, small["id"], "merge") == 1


def inclusive_checks(client: httpx.Client) -> str:
    return define(
        client,
        [
            {"id": "checks", "type": "inclusive"},
            wait("credit"),
            wait("fraud"),
            wait("manual"),
            {"id": "checked", "type": "join"},
            {"id": "done", "type": "end"},
        ],
        routes(
            {"from": "checks", "to": "credit", "condition": "input.amount > 1000"},
            {"from": "checks", "to": "fraud", "condition": "input.country != 'DE'"},
            {"from": "checks", "to": "manual", "default": True},
            "credit>checked fraud>checked manual>checked checked>done",
        ),
    )


def test_wcp6_wcp7_multi_choice_and_the_or_join_waiting_only_for_started_branches(
    acme: httpx.Client,
) -> None:
    name = inclusive_checks(acme)
    # Given both conditions hold: two branches, and the OR-join waits for both
    view = start(acme, name, input={"amount": 5000, "country": "FR"})
    assert waiting_at(view) == ["credit", "fraud"]
    assert resume(acme, view["id"], "credit")["status"] == "suspended"
    assert resume(acme, view["id"], "fraud")["status"] == "completed"
    assert "InclusiveSplit" in history_types(acme, view["id"])

    # Given one condition holds: one branch, and the join does not wait for the others
    one = start(acme, name, input={"amount": 5000, "country": "DE"})
    assert waiting_at(one) == ["credit"]
    assert resume(acme, one["id"], "credit")["status"] == "completed"

    # Given none holds: the default branch
    none = start(acme, name, input={"amount": 5, "country": "DE"})
    assert waiting_at(none) == ["manual"]


def test_wcp8_multi_merge_runs_the_merged_step_once_per_branch(acme: httpx.Client) -> None:
    name = define(
        acme,
        [
            {"id": "fork", "type": "parallel"},
            {"id": "a", "type": "set", "variables": {"a": "1"}},
            wait("b"),
            {"id": "log", "type": "service_task", "action": {"type": "noop"}},
            {"id": "logged", "type": "end", "terminate": False},
        ],
        routes("fork>a fork>b a>log b>log log>logged"),
    )
    view = start(acme, name)
    wait_for(lambda: entered(acme, view["id"], "logged") == 1 or None, what="the first branch")
    assert instance(acme, view["id"])["status"] == "suspended"  # b still waits
    resume(acme, view["id"], "b")
    wait_for_status(acme, view["id"], "completed")
    assert entered(acme, view["id"], "log") == 2  # no synchronisation: once per branch


def discriminator(client: httpx.Client, cancel_remaining: bool) -> str:
    return define(
        client,
        [
            {"id": "ask", "type": "parallel"},
            wait("quote_a"),
            wait("quote_b"),
            wait("quote_c"),
            {"id": "first", "type": "join", "wait_for": 1, "cancel_remaining": cancel_remaining},
            {"id": "decide", "type": "user_task", "role": "buyer"},
            {"id": "done", "type": "end"},
        ],
        routes(
            "ask>quote_a ask>quote_b ask>quote_c quote_a>first quote_b>first",
            "quote_c>first first>decide decide>done",
        ),
    )


def test_wcp9_discriminator_continues_after_the_first_branch_and_ignores_the_rest(
    acme: httpx.Client,
) -> None:
    view = start(acme, discriminator(acme, cancel_remaining=False))
    after_first = resume(acme, view["id"], "quote_b")
    assert waiting_at(after_first) == ["decide", "quote_a", "quote_c"]
    resume(acme, view["id"], "quote_a")
    later = resume(acme, view["id"], "quote_c")
    assert waiting_at(later) == ["decide"]  # the join did not fire again
    assert history_types(acme, view["id"]).count("JoinArrivalIgnored") == 2
    assert len(open_tasks(acme, view["id"])) == 1


def test_wcp29_cancelling_discriminator_withdraws_the_other_branches(acme: httpx.Client) -> None:
    view = start(acme, discriminator(acme, cancel_remaining=True))
    after_first = resume(acme, view["id"], "quote_c")
    assert waiting_at(after_first) == ["decide"]
    types = history_types(acme, view["id"])
    assert "PartialJoinCompleted" in types and types.count("BookmarkCancelled") == 2


def test_wcp10_arbitrary_cycle(acme: httpx.Client) -> None:
    name = define(
        acme,
        [
            {"id": "init", "type": "set", "variables": {"n": "0"}},
            {"id": "step", "type": "set", "variables": {"n": "vars.n + 1"}},
            {"id": "again", "type": "gateway"},
            {"id": "done", "type": "end", "output": {"n": "vars.n"}},
        ],
        routes(
            "init>step step>again",
            {"from": "again", "to": "step", "condition": "vars.n < 3"},
            {"from": "again", "to": "done", "default": True},
        ),
    )
    assert start(acme, name)["output"] == {"n": 3}


def test_wcp11_implicit_termination_when_the_last_branch_ends(acme: httpx.Client) -> None:
    name = define(
        acme,
        [
            {"id": "fork", "type": "parallel"},
            {"id": "quick", "type": "set", "variables": {"quick": "true"}},
            wait("slow"),
            {"id": "quick_end", "type": "end", "terminate": False},
            {"id": "slow_end", "type": "end", "terminate": False},
        ],
        routes("fork>quick fork>slow quick>quick_end slow>slow_end"),
        output={"quick": "vars.quick"},
    )
    view = start(acme, name)
    assert view["status"] == "suspended"  # one branch ended, the other still waits
    done = resume(acme, view["id"], "slow")
    assert (done["status"], done["output"]) == ("completed", {"quick": True})
    assert history_types(acme, view["id"]).count("BranchEnded") == 2


def test_a_join_that_can_no_longer_fire_fails_the_instance_with_a_clear_error(
    acme: httpx.Client,
) -> None:
    name = define(
        acme,
        [
            {"id": "fork", "type": "parallel"},
            wait("a"),
            *skipping_gateway(),
            {"id": "meet", "type": "join", "wait_for": 2},
            {"id": "done", "type": "end"},
        ],
        routes(
            "fork>a fork>check",
            *skipping_routes("meet"),
            "a>meet meet>done",
        ),
    )
    view = start(acme, name, input={"go": False})
    failed = resume(acme, view["id"], "a")
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "stalled"
    assert "join meet waits (1 of 2 branches arrived)" in failed["error"]["message"]
    assert start(acme, name, input={"go": True})["status"] == "suspended"  # control


def test_wcp20_cancel_case(acme: httpx.Client) -> None:
    name = define(
        acme,
        [{"id": "fork", "type": "parallel"}, wait("a"), wait("b"), {"id": "done", "type": "end"}],
        routes("fork>a fork>b a>done b>done"),
    )
    view = start(acme, name)
    cancelled = acme.post(f"/v1/instances/{view['id']}/cancel", json={"reason": "customer left"})
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["status"], cancelled.json()["bookmarks"]) == ("cancelled", [])


def test_wcp21_structured_loop_around_a_task(acme: httpx.Client) -> None:
    name = define(
        acme,
        [
            {
                "id": "review",
                "type": "user_task",
                "role": "editor",
                "outcomes": ["revise", "accept"],
            },
            {
                "id": "rework",
                "type": "set",
                "variables": {"rounds": "get(vars, 'rounds', default=0) + 1"},
            },
            {"id": "done", "type": "end", "output": {"rounds": "vars.rounds"}},
        ],
        routes("review>rework:revise rework>review review>done:accept"),
    )
    view = start(acme, name)
    for outcome in ("revise", "revise", "accept"):
        [task] = open_tasks(acme, view["id"])
        response = acme.post(f"/v1/tasks/{task['id']}/complete", json={"outcome": outcome})
        assert response.status_code == 200, response.text
    assert instance(acme, view["id"])["output"] == {"rounds": 2}


def test_wcp43_explicit_termination_ends_every_branch(acme: httpx.Client) -> None:
    name = define(
        acme,
        [
            {"id": "fork", "type": "parallel"},
            wait("slow"),
            {"id": "stop", "type": "end"},
            {"id": "done", "type": "end"},
        ],
        routes("fork>slow fork>stop slow>done"),
    )
    view = start(acme, name)
    assert (view["status"], view["bookmarks"]) == ("completed", [])
    assert "BookmarkCancelled" in history_types(acme, view["id"])


def test_publish_refuses_broken_splits_with_json_paths(acme: httpx.Client) -> None:
    # An inclusive split closed by something other than a join
    assert refusals(
        acme,
        [
            {"id": "choose", "type": "inclusive"},
            {"id": "a", "type": "set", "variables": {"a": "1"}},
            {"id": "done", "type": "end"},
        ],
        routes(
            {"from": "choose", "to": "a", "condition": "input.a"},
            {"from": "choose", "to": "done", "default": True},
            "a>done",
        ),
    ) == [("join_mismatch", "$.nodes[0]")]
    # A branch routed around its join to a branch end, and a duplicated parallel route
    assert refusals(
        acme,
        [
            {"id": "fork", "type": "parallel"},
            {"id": "a", "type": "set", "variables": {"a": "1"}},
            *skipping_gateway(),
            {"id": "meet", "type": "join"},
            {"id": "done", "type": "end"},
        ],
        routes(
            "fork>a fork>check fork>a a>meet",
            *skipping_routes("meet"),
            "meet>done",
        ),
    ) == [("join_bypassed", "$.routes[1]"), ("duplicate_route", "$.routes[2]")]


def test_a_sub_workflow_tree_25_levels_deep_cancels_in_one_request(acme: httpx.Client) -> None:
    # Given two definitions that start each other after a short timer, one level per command
    ping, pong = unique("ping"), unique("pong")
    for name, other in ((ping, pong), (pong, ping)):
        publish(
            acme,
            {
                "name": name,
                "nodes": [
                    # A timer duration expression: quick down to level 25, then an hour.
                    {
                        "id": "tick",
                        "type": "timer",
                        "duration": "'PT0.05S' if input.level < 25 else 'PT1H'",
                    },
                    {
                        "id": "call",
                        "type": "sub_workflow",
                        "definition": other,
                        "input": {"level": "input.level + 1"},
                    },
                    {"id": "done", "type": "end"},
                ],
                "routes": routes("tick>call call>done"),
            },
        )
    correlation = unique("deep")
    root = start(acme, ping, input={"level": 0}, correlation_id=correlation)

    def tree() -> list[dict[str, Any]]:
        response = acme.get("/v1/instances", params={"correlation_id": correlation, "limit": 500})
        return list(response.json()["items"])

    wait_for(lambda: len(tree()) == 26 or None, timeout=60, what="a tree 25 levels deep")
    assert {i["status"] for i in tree()} == {"suspended"}

    # When the root is cancelled over HTTP
    response = acme.post(f"/v1/instances/{root['id']}/cancel", json={"reason": "enough"})

    # Then it answers 200 (never 500) and the whole tree is cancelled in that request
    assert response.status_code == 200, response.text
    statuses = {i["status"] for i in tree()}
    assert statuses == {"cancelled"}, statuses
