"""A Griffe extension for the docs: Sphinx roles in docstrings (:class:`~a.b.C`) become inline code (`C`).

The docstrings use Sphinx cross-reference roles, which Markdown would show verbatim; a ``~``
keeps the last dotted name only, as in Sphinx.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|mod|meth|attr|data|obj|exc):`(~?)([^`]+)`")


def _code(match: re.Match) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


class SphinxRoles(griffe.Extension):
    """Rewrite every object's docstring once it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(_code, obj.docstring.value)
