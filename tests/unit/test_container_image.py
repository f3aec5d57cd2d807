"""The Dockerfile and docker-compose.yml, checked without Docker (not available here): the
final image stage runs as a non-root user without build tools, and the local stack has every
process, started with commands the CLI accepts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from api.cli import WORKERS, build_parser

ROOT = Path(__file__).resolve().parents[2]
BUILD_TOOLS = re.compile(
    r"\b(build-essential|gcc|g\+\+|clang|make|cmake|libpq-dev|python3-dev|[a-z0-9.+-]+-dev)\b"
)


def stages(text: str) -> list[list[str]]:
    """The Dockerfile's instructions per stage (continuation lines joined, comments dropped)."""
    joined = re.sub(r"\\\n", " ", text)
    result: list[list[str]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            result.append([])
        if result:
            result[-1].append(line)
    return result


def test_the_final_stage_runs_as_non_root_without_build_tools() -> None:
    build, final = stages((ROOT / "Dockerfile").read_text())[-2:]
    assert any(BUILD_TOOLS.search(i) for i in build)  # the pattern finds the build stage's
    users = [i.split(None, 1)[1] for i in final if i.upper().startswith("USER ")]
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"} and int(user) >= 1000
    for instruction in final:
        assert not BUILD_TOOLS.search(instruction), instruction
        assert not instruction.upper().startswith(("ADD ", "RUN PIP", "RUN APT-GET INSTALL"))
    copies = [i for i in final if i.upper().startswith("COPY ")]
    assert copies and all("--from=build" in i for i in copies)  # only the built virtualenv
    assert final[0].endswith("AS runtime") and "latest" not in final[0]
    entrypoint = next(i for i in final if i.startswith("ENTRYPOINT"))
    assert '"waymark"' in entrypoint
    command = next(i for i in final if i.startswith("CMD "))
    build_parser().parse_args(yaml.safe_load(command[len("CMD ") :]))


def test_the_build_context_leaves_out_secrets_and_local_state() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".waymark", ".env"} <= ignored


def test_the_compose_stack_runs_every_process() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    workers = {f"worker-{kind}" for kind in WORKERS}
    assert {"postgres", "kafka", "kafka-topics", "migrate", "api", *workers} == set(services)
    parser = build_parser()
    for name in ("migrate", "api", *workers):
        service = services[name]
        command = service["command"]
        parser.parse_args(command if isinstance(command, list) else shlex.split(command))
        assert service["read_only"] is True and "/tmp" in service["tmpfs"]
        assert service["deploy"]["resources"]["limits"]["memory"]
        assert service["environment"]["DATABASE_URL"].startswith("postgresql://")
    assert services["worker-outbox"]["command"] == ["worker", "outbox"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", *workers):
        after = services[name]["depends_on"]
        assert after["migrate"]["condition"] == "service_completed_successfully"
