"""`application.instance_cache.clone`: the copy every command gets of a cached
instance is equal to it and independent of it (a for_each of items, activities, results);
a value pickle cannot take falls back to `copy.deepcopy`."""

from __future__ import annotations

from application.instance_cache import clone
from tests.unit.engine_support import FakeEnv, definition, start, state


def running_for_each() -> object:
    node = {
        "id": "each",
        "type": "service_task",
        "action": {"type": "noop", "n": "{{ item }}"},
        "for_each": {"items": "input.items"},
    }
    d = definition([node, {"id": "done", "type": "end"}], [{"from": "each", "to": "done"}])
    instance = start(d, FakeEnv(), {"items": list(range(20))})
    instance.collect_events()
    return instance


def test_the_clone_is_equal_and_independent() -> None:
    instance = running_for_each()
    copied = clone(instance)
    assert copied is not instance
    assert state(copied) == state(instance)
    copied.for_each["each"].results[0] = "changed"  # type: ignore[attr-defined]
    copied.activities.clear()  # type: ignore[attr-defined]
    assert instance.for_each["each"].results == {}  # type: ignore[attr-defined]
    assert len(instance.activities) == 20  # type: ignore[attr-defined]


def test_what_pickle_refuses_is_deep_copied() -> None:
    instance = running_for_each()
    instance.odd = lambda: 1  # type: ignore[attr-defined]  # not picklable
    copied = clone(instance)
    assert copied is not instance and copied.odd() == 1  # type: ignore[attr-defined]
    assert state(copied).keys() == state(instance).keys()
