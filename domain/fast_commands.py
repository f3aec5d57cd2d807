"""Command methods that trigger their event without eventsourcing's per-call argument work.

An `@event(SomeEvent)` method of an aggregate is, in eventsourcing 9.5, a descriptor that
makes a bound object on every attribute access and, on every call, maps the positional
arguments to names against the method's signature, adds the defaults, filters the names by
the event class's signature and only then calls `trigger_event` — ~5.5 µs of the ~14 µs an
event costs to trigger (measured on `enter_node`), and an instance triggers ~15 events per
three-step workflow. `fast_commands(cls)` replaces each such method of `cls` by a plain
function with the method's own signature (its defaults included) whose body is that one
`trigger_event` call, with the arguments the event class takes: Python binds the arguments
(same errors), the library still makes and applies the event (the method's body runs in
`apply`, as before). Generated once per method when the class is built, as `dataclasses`
generates `__init__`. `tests/unit/test_fast_commands.py` checks that every replaced method
triggers exactly what the library's decorator triggers, positionally and by keyword.

Methods this cannot express (positional-only or variadic parameters, properties,
`__init__`) keep the library's decorator.

The other half, `fast_apply`, is the event's side: the library's `DecoratedFuncCaller.apply`
looks the method up by event class, filters the event's whole `__dict__` by the method's
signature, binds the method and calls it, then calls the (no-op) base `apply` — on every
event applied, replays included. The generated `apply` passes the method's parameters from
the event's `__dict__` by name, the same ones the filter would pass (a parameter the event
lacks, as an event stored before a field was added may, is left to its default, as there).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from eventsourcing.domain import (
    CanMutateAggregate,
    CommandMethodDecorator,
    DecoratedFuncCaller,
    decorated_func_callers,
    decorated_funcs,
)

T = TypeVar("T", bound=type)

_PLAIN = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def fast_commands(cls: T) -> T:
    """Replace the `@event` command methods of `cls` (see the module docstring)."""
    for name, attribute in list(vars(cls).items()):
        if isinstance(attribute, CommandMethodDecorator) and name != "__init__":
            fast = fast_command(attribute)
            if fast is not None:
                setattr(cls, name, fast)
            event_cls = decorated_func_callers[attribute]
            applier = fast_apply(event_cls, decorated_funcs[event_cls])
            if applier is not None:
                setattr(event_cls, "apply", applier)  # noqa: B010 (a class attribute of its own)
    return cls


def fast_command(decorator: CommandMethodDecorator) -> Callable[..., None] | None:
    """The plain function standing for one `@event` method, or None when it cannot."""
    if decorator.decorated_property is not None:
        return None
    func = decorator.decorated_func
    event_cls = decorated_func_callers[decorator]
    parameters = list(inspect.signature(func).parameters.values())[1:]  # after `self`
    if any(p.kind not in _PLAIN for p in parameters):
        return None
    accepted = set(inspect.signature(event_cls).parameters)
    spelled, keyword_only = [], False
    for p in parameters:
        if p.kind is inspect.Parameter.KEYWORD_ONLY and not keyword_only:
            spelled.append("*")
            keyword_only = True
        # The real defaults are set below (`__defaults__`, `__kwdefaults__`).
        spelled.append(p.name if p.default is inspect.Parameter.empty else f"{p.name}=None")
    passed = ", ".join(f"{p.name}={p.name}" for p in parameters if p.name in accepted)
    source = (
        f"def {func.__name__}(self, {', '.join(spelled)}):\n"
        f"    self.trigger_event(_event_cls, {passed})\n"
    )
    namespace: dict[str, Any] = {"_event_cls": event_cls}
    exec(source, namespace)  # noqa: S102 - generated from the method's own signature
    fast: Callable[..., None] = namespace[func.__name__]
    fast.__defaults__ = func.__defaults__
    fast.__kwdefaults__ = func.__kwdefaults__
    fast.__doc__ = func.__doc__
    fast.__module__ = func.__module__
    fast.__qualname__ = func.__qualname__
    fast.__wrapped__ = func  # type: ignore[attr-defined]
    return fast


def fast_apply(event_cls: type, func: Callable[..., Any]) -> Callable[..., None] | None:
    """The `apply` for `event_cls` calling `func` (its `@event` method), or None when the
    library's must stay: an `apply` of the event's own or of another base in between, or a
    signature the generated call cannot spell."""
    owners = [
        k
        for k in event_cls.__mro__
        if "apply" in vars(k) and not getattr(vars(k)["apply"], "generated", False)
    ]
    if owners != [DecoratedFuncCaller, CanMutateAggregate]:
        return None
    parameters = list(inspect.signature(func).parameters.values())[1:]  # after `self`
    if any(p.kind not in _PLAIN for p in parameters):
        return None
    names = tuple(p.name for p in parameters)
    passed = ", ".join(f"{n}=d[{n!r}]" for n in names)
    source = (
        "def apply(self, aggregate):\n"
        "    d = self.__dict__\n"
        "    if _names <= d.keys():\n"
        f"        _func(aggregate, {passed})\n"
        "    else:\n"
        "        _func(aggregate, **{k: d[k] for k in _names if k in d})\n"
    )
    namespace: dict[str, Any] = {"_func": func, "_names": frozenset(names)}
    exec(source, namespace)  # noqa: S102 - generated from the method's own signature
    applier: Callable[..., None] = namespace["apply"]
    applier.__qualname__ = f"{event_cls.__qualname__}.apply"
    applier.__module__ = event_cls.__module__
    applier.generated = True  # type: ignore[attr-defined]
    return applier
