"""Registration by discovery: every registry imports the modules of its package once.

Methods live one per file and register themselves with a decorator when their module is
imported; :func:`import_submodules` imports a package's modules (except ``base``,
``registry`` and private ones) the first time any registry of that package is read.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading

_IMPORTED: set[str] = set()
_LOCK = threading.Lock()
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
