"""One generic registry for every family of methods (fault models, mitigations, transforms,
attacks, watermark schemes, samplers, oracles, shifts, ...).

A method is one file: its implementation, its own pydantic ``Params`` model (fields with
docstrings, bounds on every number) and its citation (the paper and the formula it
implements). The file registers the method under a name with its family's registry::

    FAULT_MODELS: Registry[FaultModel] = Registry("fault model", "faultlab.workers.faults.models")

    @FAULT_MODELS.register("bitflip", citation="Li et al., SC 2017: x' = x XOR 2^b")
    class BitFlip(FaultModel): ...

Families are discovered lazily: the first read of a registry imports every public module of
its package once (``base``, ``registry`` and ``_private`` modules excepted). Unknown names
raise :class:`~faultlab.errors.SpecError` naming the spec field with the allowed names, and
:meth:`Registry.parse_params` validates a method's parameters with its own model, so errors
name ``<field>.params.<parameter>``. This module imports neither torch nor any method.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from faultlab.errors import SpecError

T = TypeVar("T")

_IMPORTED: set[str] = set()
_LOCK = threading.RLock()
_SKIP = frozenset({"base", "registry"})


def import_submodules(package: str) -> None:
    """Imports every public module of ``package`` once per process (thread-safe)."""
    if package in _IMPORTED:
        return
    with _LOCK:
        if package in _IMPORTED:
            return
        module = importlib.import_module(package)
        for info in pkgutil.iter_modules(module.__path__):
            if info.name not in _SKIP and not info.name.startswith("_"):
                importlib.import_module(f"{package}.{info.name}")
        _IMPORTED.add(package)


class NoParams(BaseModel):
    """The parameters of a method that takes none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Method(Generic[T]):
    """One registered method."""

    name: str
    """The name a spec uses."""
    impl: T
    """The implementation: a function, a class or an instance, as the family defines."""
    params: type[BaseModel]
    """The pydantic model of the method's parameters."""
    citation: str
    """The paper (or standard) and the formula the method implements."""
    summary: str
    """The first line of the implementation's docstring (for ``faultlab zoo`` and docs)."""


def pydantic_error(exc: ValidationError, prefix: str) -> SpecError:
    """The first error of a pydantic validation as a :class:`SpecError` under ``prefix``."""
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"] if not str(p).startswith("function-after")]
    field = ".".join([prefix, *loc]) if loc else prefix
    if err["type"] == "extra_forbidden":
        return SpecError(field, "unknown parameter")
    value = err.get("input")
    problem = str(err["msg"]).removeprefix("Value error, ")
    if not isinstance(value, dict | list) and err["type"] != "missing":
        shown = repr(value[:60]) if isinstance(value, str) else repr(value)[:74]
        problem += f", got {shown}"
    allowed = (err.get("ctx") or {}).get("expected")
    return SpecError(field, problem, allowed)


class Registry(Generic[T]):
    """Methods of one family, by name."""

    def __init__(self, family: str, package: str | None = None, field: str = "") -> None:
        self.family = family
        """What a method of this family is called in messages (``fault model``)."""
        self.package = package
        """The package whose modules register the methods (imported on first read)."""
        self.field = field
        """The default spec field named by errors (``faults.fault_model``)."""
        self._methods: dict[str, Method[T]] = {}

    def register(
        self, name: str, *, params: type[BaseModel] = NoParams, citation: str = ""
    ) -> Callable[[T], T]:
        """Decorator: registers ``impl`` under ``name`` with its params model and citation."""

        def deco(impl: T) -> T:
            if name in self._methods and self._methods[name].impl is not impl:
                raise ValueError(f"{self.family} {name!r} is registered twice")
            doc = (getattr(impl, "__doc__", None) or "").strip()
            summary = doc.splitlines()[0] if doc else ""
            self._methods[name] = Method(name, impl, params, citation, summary)
            return impl

        return deco

    def entries(self) -> dict[str, Method[T]]:
        if self.package:
            import_submodules(self.package)
        return dict(self._methods)

    def names(self) -> list[str]:
        return sorted(self.entries())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.entries()

    def get(self, name: Any, field: str | None = None) -> Method[T]:
        """The method called ``name``; unknown names raise :class:`SpecError` on ``field``."""
        entries = self.entries()
        if not isinstance(name, str) or name not in entries:
            shown = str(name)[:60]
            raise SpecError(
                field or self.field, f"unknown {self.family} {shown!r}", sorted(entries)
            )
        return entries[name]

    def parse_params(
        self, name: str, params: Mapping[str, Any] | BaseModel | None, field: str | None = None
    ) -> BaseModel:
        """``params`` validated by the method's own model; errors name ``<field>.<param>``."""
        method = self.get(name, field)
        if isinstance(params, method.params):
            return params
        data = params.model_dump() if isinstance(params, BaseModel) else dict(params or {})
        try:
            return method.params.model_validate(data)
        except ValidationError as exc:
            raise pydantic_error(exc, field or self.field) from None
