"""The JSON envelope every surface answers with (CLI ``--json``, MCP tools).

``{"ok": true, "command": NAME, "result": {...}}`` or
``{"ok": false, "command": NAME, "error": {"code", "exit", "message", "hint", "details"}}``.
"""

from __future__ import annotations

from typing import Any, Protocol

from .errors import GitclaimError


class Jsonable(Protocol):
    def to_json(self) -> dict[str, Any]: ...


def ok(command: str, result: Jsonable) -> dict[str, Any]:
    return {"ok": True, "command": command, "result": result.to_json()}


def failure(command: str, e: GitclaimError) -> dict[str, Any]:
    return {"ok": False, "command": command, "error": e.to_json()}


def internal(e: BaseException, hint: str) -> GitclaimError:
    """An unexpected exception as the ``internal`` error: a bug in gitclaim."""
    return GitclaimError(f"internal error: {type(e).__name__}: {e}", hint=hint)
