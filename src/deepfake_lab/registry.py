"""A generic name -> class registry, used for every pluggable kind (models, detectors, ...)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from deepfake_lab.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to constructors.

    ``build`` records the registry name and constructor arguments on the built object as
    ``registry_name`` and ``init_kwargs``, so that exports can rebuild it from JSON alone.

    Example:
        >>> GENERATORS = Registry("generator")
        >>> @GENERATORS.register("dcgan")
        ... class DCGAN: ...
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator that registers ``obj`` under ``name`` (names are unique)."""

        def decorator(obj: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> Callable[..., T]:
        """The constructor registered under ``name``; a UserError listing the choices if none."""
        try:
            return self._entries[name]
        except KeyError:
            choices = ", ".join(self.names()) or "(none registered)"
            raise UserError(f"unknown {self.kind} {name!r}; choose one of: {choices}") from None

    def build(self, name: str, **kwargs: Any) -> T:
        """Construct ``name`` with ``kwargs`` and remember both on the object."""
        obj = self.get(name)(**kwargs)
        try:
            obj.registry_name = name  # type: ignore[attr-defined]
            obj.init_kwargs = dict(kwargs)  # type: ignore[attr-defined]
        except AttributeError:  # objects with __slots__ simply do not get the record
            pass
        return obj

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
