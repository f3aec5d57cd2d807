"""What the e2e tests of the `waymark` command share: run it to its end, and a database
with no schema at all."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator

from tests.conftest import _create_database, _drop_database
from tests.e2e.conftest import REPO_ROOT


def run(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`waymark <args>` (as `python -m api.cli`) to its end, its output captured."""
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "api.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextlib.contextmanager
def empty_database(postgres_admin_url: str, prefix: str) -> Iterator[str]:
    """A fresh database named `<prefix>_<random>`, with no schema at all; dropped after."""
    from infrastructure.embedded_postgres import database_url_for

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _create_database(postgres_admin_url, name)
    try:
        yield database_url_for(postgres_admin_url, name)
    finally:
        _drop_database(postgres_admin_url, name)
