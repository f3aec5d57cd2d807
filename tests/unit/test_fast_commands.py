"""`domain.fast_commands`: every `@event` method of `WorkflowInstance` that was replaced
triggers exactly the event class and arguments the library's own decorator triggers, called
positionally, by keyword, and with its defaults left out."""

from __future__ import annotations

import inspect
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.domain import CommandMethodDecorator, decorated_func_callers

from domain.fast_commands import fast_command, fast_commands
from domain.instance import WorkflowInstance

Call = tuple[type, dict[str, Any]]


def _library_decorators() -> dict[str, CommandMethodDecorator]:
    """The library's decorators of WorkflowInstance's command methods (the class now holds
    the fast functions; the library keeps its decorators in its registry)."""
    found = {}
    for decorator in decorated_func_callers:
        func = decorator.decorated_func
        if func.__qualname__.startswith("WorkflowInstance.") and func.__name__ != "__init__":
            found[func.__name__] = decorator
    return found


DECORATORS = _library_decorators()


def _recording_instance() -> tuple[WorkflowInstance, list[Call]]:
    instance = WorkflowInstance(
        id=uuid4(),
        tenant="acme",
        definition="d",
        definition_version=1,
        input={},
        correlation_id=None,
        idempotency_key=None,
        parent=None,
        started_by=None,
    )
    calls: list[Call] = []
    # An instance attribute shadows the method: both paths call self.trigger_event.
    instance.trigger_event = lambda cls, **kwargs: calls.append((cls, kwargs))  # type: ignore[method-assign,assignment]
    return instance, calls


def _both(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[list[Call], ...]:
    library, library_calls = _recording_instance()
    DECORATORS[name].__get__(library, WorkflowInstance)(*args, **kwargs)
    fast, fast_calls = _recording_instance()
    getattr(fast, name)(*args, **kwargs)
    return library_calls, fast_calls


def test_the_command_methods_were_replaced() -> None:
    assert len(DECORATORS) > 30
    replaced = [n for n in DECORATORS if inspect.isfunction(vars(WorkflowInstance)[n])]
    assert sorted(replaced) == sorted(DECORATORS)


@pytest.mark.parametrize("name", sorted(DECORATORS))
def test_a_fast_command_triggers_what_the_library_triggers(name: str) -> None:
    parameters = list(inspect.signature(DECORATORS[name].decorated_func).parameters.values())[1:]
    values = {p.name: f"<{p.name}>" for p in parameters}
    positional = tuple(
        values[p.name] for p in parameters if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    )
    keyword_only = {
        p.name: values[p.name] for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    required = {p.name: values[p.name] for p in parameters if p.default is inspect.Parameter.empty}
    for args, kwargs in ((positional, keyword_only), ((), values), ((), required)):
        library, fast = _both(name, args, kwargs)
        assert len(library) == 1
        assert fast == library, (name, args, kwargs)


def test_a_wrong_call_is_refused_as_python_refuses_it() -> None:
    instance, calls = _recording_instance()
    with pytest.raises(TypeError):
        instance.enter_node("n1")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        instance.enter_node("n1", "wait", None, unknown=1)  # type: ignore[call-arg]
    assert calls == []


def test_a_method_it_cannot_express_keeps_the_library_decorator() -> None:
    """A variadic method is left to the library's decorator (None: not replaced)."""

    def variadic(self: Any, *values: Any) -> None:
        return None

    decorator = DECORATORS["enter_node"]
    original = decorator.decorated_func
    try:
        decorator.decorated_func = variadic
        assert fast_command(decorator) is None
    finally:
        decorator.decorated_func = original


def test_defaults_and_keyword_only_parameters_are_kept() -> None:
    """WorkflowInstance's defaults are all None: an aggregate of the test's own has others
    (and a keyword-only parameter), so that forgetting a default fails here."""
    from eventsourcing.domain import Aggregate, event

    class Counter(Aggregate):
        @event("Counted")
        def count(self, by: int = 2, note: str = "n", *, label: str) -> None:
            self.last = (by, label, note)

    library = vars(Counter)["count"]
    fast_counter = fast_commands(type("FastCounter", (Counter,), {}))
    fast_counter.count = fast_command(library)  # type: ignore[attr-defined]

    for args, kwargs in (
        ((), {"label": "x"}),
        ((5,), {"label": "y", "note": "z"}),
        ((7, "w"), {"label": "v"}),
    ):
        plain, fast = Counter(), fast_counter()
        library.__get__(plain, Counter)(*args, **kwargs)
        fast.count(*args, **kwargs)  # type: ignore[attr-defined]
        assert fast.last == plain.last
        assert [type(e).__name__ for e in fast.collect_events()][-1] == "Counted"


def _event_classes() -> dict[str, type]:
    return {name: decorated_func_callers[d] for name, d in DECORATORS.items()}


def test_the_stored_topics_name_the_classes_whose_apply_was_replaced() -> None:
    """A replayed event is made from its topic's class: that class has the fast apply."""
    from eventsourcing.utils import get_topic, resolve_topic

    replaced = 0
    for cls in _event_classes().values():
        assert resolve_topic(get_topic(cls)) is cls
        replaced += getattr(vars(cls).get("apply"), "generated", False)
    assert replaced == len(DECORATORS)


@pytest.mark.parametrize("name", sorted(DECORATORS))
@pytest.mark.parametrize("complete", [True, False], ids=["all-fields", "a-field-missing"])
def test_a_fast_apply_calls_the_method_with_what_the_library_passes(
    name: str, complete: bool
) -> None:
    from eventsourcing.domain import DecoratedFuncCaller, decorated_funcs

    from domain.fast_commands import fast_apply

    cls = _event_classes()[name]
    func = decorated_funcs[cls]
    calls: list[tuple[Any, dict[str, Any]]] = []

    def recorder(aggregate: Any, **kwargs: Any) -> None:
        calls.append((aggregate, kwargs))

    recorder.__signature__ = inspect.signature(func)  # type: ignore[attr-defined]
    fields = [p for p in inspect.signature(cls).parameters if p != "self"]
    event = object.__new__(cls)
    state = {f: f"<{f}>" for f in fields}
    if not complete:  # as an event stored before a field was added
        params = [p for p in list(inspect.signature(func).parameters)[1:] if p in state]
        if not params:
            pytest.skip("the method takes no field of the event")
        del state[params[-1]]
    event.__dict__.update(state)
    aggregate = object()
    applier = fast_apply(cls, recorder)
    assert applier is not None
    applier(event, aggregate)
    fast = calls.pop()
    decorated_funcs[cls] = recorder
    try:
        DecoratedFuncCaller.apply(event, aggregate)  # the library's, on the same event
    finally:
        decorated_funcs[cls] = func
    assert fast == calls.pop()
