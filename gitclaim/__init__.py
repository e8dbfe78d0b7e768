"""gitclaim: a git-native task store for teams of agents.

``from gitclaim import Store`` gives the Python API (see README.md and docs/design.md).
Names are imported lazily so that ``gitclaim --help`` stays fast.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing at start-up

__version__ = "0.1.0"

__all__ = ["RetryPolicy", "State", "Store", "Task", "__version__", "errors"]

if TYPE_CHECKING:
    from typing import Any

    from . import errors
    from .api import Store
    from .cas import RetryPolicy
    from .model import State, Task


def __getattr__(name: str) -> Any:
    if name == "Store":
        from .api import Store

        return Store
    if name in ("Task", "State"):
        from . import model

        return getattr(model, name)
    if name == "RetryPolicy":
        from .cas import RetryPolicy

        return RetryPolicy
    if name == "errors":
        # import_module, not `from . import errors`: that form asks this very
        # function for the attribute again and never ends
        import importlib

        return importlib.import_module(f"{__name__}.errors")
    raise AttributeError(f"module 'gitclaim' has no attribute {name!r}")
