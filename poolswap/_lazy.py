"""One helper for the packages that import their public names on first use.

A package whose names pull in torch or onnx (the top level, ``kernels``, ``export``,
``data``) lists them in a ``{name: module}`` table and lets this module define its
``__getattr__`` and ``__dir__``, so that importing the package, and the CLI's
``--help``, stays cheap until a name is used. The import-graph test reads these
tables as imports, so a lazy name cannot hide a dependency cycle.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Iterable, Mapping


def lazy_exports(package: str, table: Mapping[str, str], eager: Iterable[str] = ()
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: each name of ``table`` imported from its module on first use.

    Module names may be relative to ``package`` (``"._exporter"``); ``eager`` lists the
    names the package defines itself, for ``dir()``. A value is cached in the package's
    namespace, so each name is looked up once.
    """
    names = sorted({*table, *eager})

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__() -> list[str]:
        return list(names)

    return __getattr__, __dir__
