"""A tiny name -> factory registry (timm's idea, minus the global sprawl).

Names are explicit strings so that renaming a function never breaks a saved checkpoint,
a duplicate name raises, and an unknown name lists what is available.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class UnknownNameError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._fns: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[F], F]:
        def deco(fn: F) -> F:
            if name in self._fns:
                raise KeyError(f"{self.kind} '{name}' already registered by {self._fns[name].__module__}")
            self._fns[name] = fn
            return fn

        return deco

    def create(self, name: str, **kwargs: Any) -> T:
        if name not in self._fns:
            raise UnknownNameError(f"unknown {self.kind} '{name}'; available: {', '.join(self.names())}")
        return self._fns[name](**{k: v for k, v in kwargs.items() if v is not None})

    def names(self) -> list[str]:
        return sorted(self._fns)

    def __contains__(self, name: str) -> bool:
        return name in self._fns
