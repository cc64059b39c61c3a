"""Lazy package exports (PEP 562): importing a package costs nothing, and each name it exports
is imported from its module on first access. ``luzia`` and ``controllers`` both need this: the
``luzia`` command imports them on every run and most runs use little of either."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(
    package: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose ``homes`` maps each exported
    name to the module defining it. A name, once imported, is kept in the package."""
    namespace = vars(sys.modules[package])

    def __getattr__(name: str) -> Any:
        module_name = homes.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module_name), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *homes})

    return __getattr__, __dir__
