"""PEP 562 lazy exports: a package names what it offers without importing it until first use.

``import mbrlax`` must stay cheap (the CLI imports it before every command, and JAX alone takes
seconds), so the top-level package and the packages whose modules pull in heavy dependencies
(``algorithms``, ``utils``) re-export their names this way.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` from ``{name: "module"}`` or ``{name: "module:attribute"}``.

    ``"module"`` alone exports the module itself; relative modules (``".presets"``) resolve
    against ``package``. A name is imported on first access and then cached in the package.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, _, attribute = exports[name].partition(":")
        module = importlib.import_module(module_name, package)
        value = getattr(module, attribute) if attribute else module
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(exports) | set(vars(importlib.import_module(package))))

    return __getattr__, __dir__
