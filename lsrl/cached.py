"""`cached`: functools.cached_property without the lock that Python 3.11 takes on every first access."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class cached(Generic[T]):  # noqa: N801 - used as a decorator, like cached_property
    """A lazily computed attribute stored in the instance __dict__ (later reads never reach this descriptor).

    functools.cached_property serialises first accesses through a lock in Python < 3.12 (removed in 3.12,
    gh-87634), which costs more than most of the values the compiler caches (shapes, flags, small sums),
    and compiling touches thousands of fresh objects. Values are pure functions of immutable objects, so
    two threads computing one at once store equal values."""

    def __init__(self, fn: Callable[[Any], T]):
        self.fn, self.name = fn, fn.__name__
        self.__doc__ = fn.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> T:
        if obj is None:
            return self  # type: ignore[return-value]
        value = obj.__dict__[self.name] = self.fn(obj)
        return value
