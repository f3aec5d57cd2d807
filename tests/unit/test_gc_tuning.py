"""infrastructure/gc_tuning.settle: the start-up heap frozen, the young threshold raised."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from infrastructure.gc_tuning import settle


@pytest.fixture
def restored() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_settle_freezes_what_survived_start_up_and_raises_the_young_threshold(
    restored: None,
) -> None:
    _gen0, gen1, gen2 = gc.get_threshold()
    survivor = [object() for _ in range(100)]
    settle(10_000)
    assert gc.get_freeze_count() >= len(survivor)
    assert gc.get_threshold() == (10_000, gen1, gen2)
    # A frozen object is out of the scanned generations, yet still alive and tracked
    assert not any(survivor is o for o in gc.get_objects())


def test_zero_keeps_cpythons_threshold(restored: None) -> None:
    before = gc.get_threshold()
    settle(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() > 0
