"""`waymark definitions apply|validate`: definitions kept as files, published only when
changed, validated for CI (issue 9). Real `waymark` processes against a real database."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.e2e.conftest import REPO_ROOT, server_env

pytestmark = pytest.mark.e2e

FLOW = {
    "name": "files-flow",
    "nodes": [{"id": "s", "type": "set", "variables": {"x": "1"}}, {"id": "done", "type": "end"}],
    "routes": [{"from": "s", "to": "done"}],
}
YAML_FLOW = """\
name: files-yaml
description: kept as YAML
nodes:
  - {id: call, type: service_task, action: {type: noop}}
  - {id: done, type: end}
routes:
  - {from: call, to: done}
"""


def waymark(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "api.cli", "definitions", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def versions(database_url: str, tenant: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT name, max(version) FROM definitions WHERE tenant = %s GROUP BY name",
            (tenant,),
        ).fetchall()
    return dict(rows)


def test_apply_publishes_changed_files_only(module_database_url: str, tmp_path: Path) -> None:
    # Given a folder with a JSON and a YAML definition (one in a subfolder)
    folder = tmp_path / "defs"
    (folder / "sub").mkdir(parents=True)
    (folder / "flow.json").write_text(json.dumps(FLOW))
    (folder / "sub" / "flow.yaml").write_text(YAML_FLOW)
    env = server_env(module_database_url, tmp_path)

    # When it is applied twice
    first = waymark("apply", str(folder), "--tenant", "files-co", env=env)
    second = waymark("apply", str(folder), "--tenant", "files-co", env=env)

    # Then the first run published both, the second nothing, and each said what it did
    assert first.returncode == 0, first.stderr
    assert "published files-flow v1" in " ".join(first.stdout.split())
    assert "published files-yaml v1" in " ".join(first.stdout.split())
    assert second.returncode == 0, second.stderr
    assert "unchanged files-flow v1" in " ".join(second.stdout.split())
    assert "0 published, 2 unchanged" in second.stderr
    assert versions(module_database_url, "files-co") == {"files-flow": 1, "files-yaml": 1}

    # When one file changes, only it gets a new version
    (folder / "flow.json").write_text(json.dumps({**FLOW, "description": "changed"}))
    third = waymark("apply", str(folder), "--tenant", "files-co", env=env)
    assert third.returncode == 0, third.stderr
    assert "updated files-flow v2" in " ".join(third.stdout.split())
    assert versions(module_database_url, "files-co") == {"files-flow": 2, "files-yaml": 1}


def test_validate_exits_1_listing_every_problem_with_file_and_path(tmp_path: Path) -> None:
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "good.json").write_text(json.dumps(FLOW))
    bad = {**FLOW, "name": "bad-flow", "routes": [{"from": "s", "to": "nowhere"}]}
    (folder / "bad.json").write_text(json.dumps(bad))
    (folder / "broken.yaml").write_text("name: [unclosed\n")
    (folder / "twin.yaml").write_text(json.dumps(FLOW))  # JSON is YAML: same name twice

    result = waymark("validate", str(folder), env=server_env(None, tmp_path))

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith(f"{folder / 'bad.json'}: $.routes[0].to:") for line in lines)
    assert any(line.startswith(f"{folder / 'broken.yaml'}: $: not valid YAML") for line in lines)
    assert any(f"{folder / 'twin.yaml'}: $.name:" in line for line in lines), lines
    assert not any(line.startswith(str(folder / "good.json")) for line in lines)
    # And a folder without problems passes
    (folder / "bad.json").unlink()
    (folder / "broken.yaml").unlink()
    (folder / "twin.yaml").unlink()
    assert waymark("validate", str(folder), env=server_env(None, tmp_path)).returncode == 0


def test_apply_publishes_nothing_when_a_file_has_a_problem(
    module_database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "defs"
    folder.mkdir()
    (folder / "good.json").write_text(json.dumps({**FLOW, "name": "all-or-nothing"}))
    (folder / "bad.json").write_text(json.dumps({"name": "bad", "nodes": []}))
    env = server_env(module_database_url, tmp_path)

    result = waymark("apply", str(folder), "--tenant", "files-none", env=env)

    assert result.returncode == 1
    assert "nothing published" in result.stderr
    assert str(folder / "bad.json") in result.stdout
    assert versions(module_database_url, "files-none") == {}
