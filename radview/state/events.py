"""A tiny Qt-free event system (the shape of napari's EmitterGroup, without its weight).

    ev = Emitter("study")
    ev.connect(callback)          # callback(*args)
    ev.emit(study)                # calls every callback in order; a callback's exception
                                  # propagates (tests and the GUI see it; nothing is swallowed)
    with ev.blocked(): ...        # emit() does nothing inside

`Events(["study", "view", ...])` holds one Emitter per field: `events.study.connect(cb)`.
Callbacks bound to objects are held weakly (a widget that is gone is simply skipped), plain
functions and lambdas strongly.
"""
from __future__ import annotations

import contextlib
import weakref
from typing import Any, Callable, Iterable, Iterator


class Emitter:
    __slots__ = ("name", "_callbacks", "_blocked")

    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[Any] = []
        self._blocked = 0

    def connect(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        if getattr(callback, "__self__", None) is not None and hasattr(callback, "__func__"):
            ref: Any = weakref.WeakMethod(callback)
        else:
            ref = _Strong(callback)
        self._callbacks.append(ref)
        return callback

    def disconnect(self, callback: Callable[..., Any] | None = None) -> None:
        if callback is None:
            self._callbacks.clear()
            return
        self._callbacks = [r for r in self._callbacks if r() is not None and r() != callback]

    def emit(self, *args: Any) -> None:
        if self._blocked:
            return
        dead = False
        for ref in list(self._callbacks):
            cb = ref()
            if cb is None:
                dead = True
                continue
            cb(*args)
        if dead:
            self._callbacks = [r for r in self._callbacks if r() is not None]

    @contextlib.contextmanager
    def blocked(self) -> Iterator[None]:
        self._blocked += 1
        try:
            yield
        finally:
            self._blocked -= 1

    def __len__(self) -> int:
        return sum(1 for r in self._callbacks if r() is not None)


class _Strong:
    __slots__ = ("fn",)

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self) -> Callable[..., Any]:
        return self.fn


class Events:
    """One Emitter per name, as attributes."""

    def __init__(self, names: Iterable[str]) -> None:
        self._names = tuple(names)
        for n in self._names:
            setattr(self, n, Emitter(n))

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def __getitem__(self, name: str) -> Emitter:
        if name not in self._names:
            raise KeyError(name)
        return getattr(self, name)
