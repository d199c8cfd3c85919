"""The optional dependencies (pyproject's extras): a task that needs one that is not installed says which extra
to install instead of failing with a bare ImportError."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import LnnedgeError


class MissingExtra(LnnedgeError, ImportError):
    pass


def require(module: str, extra: str, why: str) -> ModuleType:
    """`import module`, or MissingExtra naming the extra that installs it (`why`: what needs it)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module.startswith(exc.name):
            raise  # the module is there but one of its own imports is broken: a real bug, keep the traceback
        raise MissingExtra(f"{why} needs {module.split('.')[0]}, which is not installed: "
                           f"pip install 'lnnedge[{extra}]'") from None
