"""The README's configuration table names every setting, and nothing that is not one.

A row's first cell holds one or more environment names (`WAYMARK_A`, `WAYMARK_B`); each
`Settings` field is read from `WAYMARK_<FIELD>` or from its alias (`DATABASE_URL`, ...).
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices

from infrastructure.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def _documented() -> set[str]:
    names: set[str] = set()
    for cell in re.findall(
        r"^\| (`[A-Z][A-Z0-9_]*`(?:, `[A-Z][A-Z0-9_]*`)*) \|", README.read_text(), re.M
    ):
        names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", cell))
    return names


def _environment_names() -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for field, info in Settings.model_fields.items():
        accepted = {f"WAYMARK_{field.upper()}"}
        if isinstance(info.validation_alias, AliasChoices):
            accepted |= {str(a) for a in info.validation_alias.choices if str(a).isupper()}
        names[field] = accepted
    return names


def test_every_setting_has_a_row() -> None:
    documented = _documented()
    missing = [f for f, names in _environment_names().items() if not names & documented]
    assert not missing, f"settings without a README row: {missing}"


def test_every_row_is_a_setting() -> None:
    known = set().union(*_environment_names().values())
    # OTEL_*: OpenTelemetry's own variables, read by its SDK (infrastructure/settings.py).
    unknown = sorted(n for n in _documented() - known if not n.startswith("OTEL_"))
    assert not unknown, f"README rows naming no setting: {unknown}"


def test_the_check_sees_a_missing_row() -> None:
    # Negative control: the parser finds the rows (a broken regex would pass both tests).
    documented = _documented()
    assert "WAYMARK_OUTBOX_BATCH_SIZE" in documented and "DATABASE_URL" in documented
    assert len(documented) > 100
