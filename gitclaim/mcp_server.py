"""The MCP server: the store's operations as tools over stdio (``gitclaim mcp``).

One tool per operation of the table in :mod:`gitclaim.operations`,
registered from it in one loop; only ``add_many`` (a list of task objects)
and ``edit`` (a map of fields) are written by hand. Every tool answers with the object the CLI prints
with ``--json``: ``{"ok": true, "command", "result"}`` or ``{"ok": false,
"command", "error": {"code", "exit", "message", "hint", "details"}}``, as
structured content and as JSON text. A refusal is a result with ``is_error``
set, never a crash of the server: arguments that fail the tool's schema
come back as ``bad_input``, and an unexpected exception as ``internal``.

This is the only module that imports ``mcp``; nothing else in gitclaim
pays for it.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, NotRequired, cast

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import CallToolResult, InputRequiredResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from typing_extensions import TypedDict  # pydantic reads only this one on Python < 3.12

from . import envelope
from .api import Store
from .envelope import Jsonable
from .errors import ANY_OPERATION, BadInput, GitclaimError
from .operations import Effect, Operation, Param, Surface, carried, invoke, result_text

_logger = logging.getLogger("gitclaim.mcp")


class ErrorInfo(TypedDict):
    code: str
    exit: int
    message: str
    hint: str | None
    details: dict[str, Any]


class Envelope(TypedDict):
    """What every tool returns (the CLI's ``--json`` object)."""

    ok: bool
    command: str
    result: NotRequired[dict[str, Any]]
    error: NotRequired[ErrorInfo]


ToolOutput = Annotated[CallToolResult, Envelope]


# --- descriptions, from the table and the error catalogue ---------------------------------


def describe(op: Operation) -> str:
    """The tool's description: what it does, what it returns, what it may answer."""
    common = ", ".join(c.code for c in ANY_OPERATION)
    return "\n".join(
        [
            " ".join(filter(None, [op.summary, op.details])),
            "",
            f'Returns {{"ok": true, "command", "result"}} with result = {result_text(op)}.',
            'On failure {"ok": false, "command", "error": {code, exit, message, hint, details}}; error.code is:',
            *(f"- {c.code}: {c.meaning}" for c in op.all_errors()),
            f"Any tool may also answer {common}: the server's instructions say what each means.",
        ]
    )


_SERVER_INSTRUCTIONS = """\
gitclaim: a task queue shared by many agents through a git remote. Each change is one commit
pushed with compare-and-swap, so exactly one agent wins a task; the others get lost_race naming
the holder. Typical loop: next (or ready, then claim) -> work -> done (or release / fail / wait /
handoff); heartbeat renews leases. Every tool returns {"ok", "command", "result" | "error"};
error.code is stable (same as the gitclaim CLI's --json). Mutating tools take an optional agent;
by default the server acts as {agent}. Any tool may also answer:"""


def instructions(agent: str) -> str:
    lines = [_SERVER_INSTRUCTIONS.replace("{agent}", agent)]
    lines += [f"- {c.code}: {c.meaning}" for c in ANY_OPERATION]
    return "\n".join(lines)


class NewTask(BaseModel):
    """One task of a batch (``add_many``). Fields of your own are kept as given."""

    model_config = ConfigDict(extra="allow")

    title: str
    id: str | None = Field(None, description="Task id (a slug); default: a short random id.")
    priority: int | None = Field(None, description="0 (most urgent) to 9; default: the store's (2).")
    depends_on: list[str] = Field(default_factory=list, description="Ids of tasks (in the store or this batch).")
    tags: list[str] = Field(default_factory=list)
    description: str = ""
    acceptance: list[str] = Field(default_factory=list, description="Acceptance criteria.")
    state: str | None = Field(None, description="todo (default), backlog or someday.")


EditValue = str | int | float | bool | list[str]


@dataclass(frozen=True)
class _Custom:
    """A tool argument that MCP clients send in a shape of its own."""

    type: Any
    convert: Callable[[Any], Any]
    field: Mapping[str, Any]


#: The hand-written part of the tools the table marks custom for MCP.
_CUSTOM: dict[tuple[str, str], _Custom] = {
    ("add_many", "entries"): _Custom(
        list[NewTask], lambda tasks: [t.model_dump(exclude_none=True) for t in tasks], {"min_length": 1}
    ),
    ("edit", "changes"): _Custom(
        dict[str, EditValue],
        lambda changes: {k: _edit_text(v) for k, v in changes.items()},
        {
            "description": "Field -> new value. Text is read as a TOML value when it parses as one"
            " (lists also as comma-separated text).",
            "min_length": 1,
        },
    ),
}


def _annotation(op: Operation, p: Param) -> Any:
    custom = _CUSTOM.get((op.name, p.name))
    field = {"description": p.mcp_help or p.help, **(custom.field if custom else {})}
    kind = custom.type if custom else (p.mcp_type or p.type)
    return Annotated[kind, Field(**field)]


def _signature(op: Operation) -> inspect.Signature:
    params = [
        inspect.Parameter(
            p.mcp_name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=_annotation(op, p),
            default=inspect.Parameter.empty if p.required else p.default,
        )
        for p in op.params
    ]
    return inspect.Signature(params, return_annotation=ToolOutput)


def _arguments(op: Operation, given: Mapping[str, Any]) -> dict[str, Any]:
    """The Store method's keywords from the tool's arguments."""
    args = {}
    for p in op.params:
        if p.mcp_name in given:
            custom = _CUSTOM.get((op.name, p.name))
            value = given[p.mcp_name]
            args[p.name] = custom.convert(value) if custom else value
    return args


# --- the server -------------------------------------------------------------------


class _Server(MCPServer[Any]):
    """MCPServer whose argument and lookup failures come back as gitclaim errors."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError as e:  # the tools catch everything; this is a bug
            _logger.error("tool %s failed", name, exc_info=e.__cause__ or e)
            return _result(_envelope_error(name, _internal(e.__cause__ or e)))
        except ToolError as e:
            cause = e.__cause__
            if isinstance(cause, ValidationError):
                errors = [
                    {"field": ".".join(str(p) for p in err["loc"]) or "(arguments)", "message": err["msg"]}
                    for err in cause.errors()
                ]
                text = "; ".join(f"{x['field']}: {x['message']}" for x in errors)
                err = BadInput(f"invalid arguments for {name}: {text}", errors=errors)
            else:  # an unknown tool name
                err = BadInput(str(e), hint="list the tools to see their names", tool=name)
            return _result(_envelope_error(name, err))


def build_server(
    repo: str = ".", remote: str | None = None, branch: str | None = None, agent: str | None = None
) -> MCPServer[Any]:
    """The server with every tool registered. Opens the clone once to check it
    and to fix the default agent; each call then opens its own :class:`Store` on
    a worker thread (pygit2 objects never cross threads). Raises
    :class:`GitclaimError` (not a git repository, an illegal agent name).
    """
    path = os.path.abspath(repo)
    probe = Store(path, remote=remote, branch=branch, agent=agent)
    default_agent = probe.whoami()
    del probe
    # One call at a time: the calls share one clone, and a second change from the
    # same agent could only race the first.
    limiter: list[anyio.CapacityLimiter] = []

    async def run(command: str, op: Callable[[Store], Jsonable]) -> CallToolResult:
        def work() -> Envelope:
            try:
                store = Store(path, remote=remote, branch=branch, agent=default_agent)
                return cast(Envelope, envelope.ok(command, op(store)))
            except GitclaimError as e:
                return _envelope_error(command, e)
            except Exception as e:
                _logger.exception("tool %s failed", command)
                return _envelope_error(command, _internal(e))

        if not limiter:
            limiter.append(anyio.CapacityLimiter(1))
        return _result(await anyio.to_thread.run_sync(work, limiter=limiter[0]))

    server = _Server("gitclaim", instructions=instructions(default_agent), log_level="WARNING")
    for op in carried(Surface.MCP):
        _register(server, op, run)
    return server


_HINTS = {
    Effect.READ: ToolAnnotations(read_only_hint=True, open_world_hint=False),
    Effect.CHANGE: ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False),
    Effect.DROP: ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False),
}

Run = Callable[[str, Callable[[Store], Jsonable]], Any]


#: ``next`` with ``wait`` holds the server's one worker: bounded, unlike the CLI's (seconds).
WAIT_DEFAULT, WAIT_MOST = 30, 120


def _bounded_wait(args: dict[str, Any]) -> dict[str, Any]:
    if not args.get("wait"):
        return args
    from .ops.wait import timeout_seconds

    asked = timeout_seconds(args.get("timeout"))
    return {**args, "timeout": int(min(WAIT_MOST, WAIT_DEFAULT if asked is None else asked))}


def _register(server: MCPServer[Any], op: Operation, run: Run) -> None:
    async def tool(**given: Any) -> ToolOutput:
        args = _arguments(op, given)
        bound = _bounded_wait if op.name == "next" else dict
        result: ToolOutput = await run(op.name, lambda store: invoke(store, op, bound(args)))
        return result

    tool.__signature__ = _signature(op)  # type: ignore[attr-defined]
    tool.__name__ = tool.__qualname__ = op.name
    server.tool(name=op.name, description=describe(op), annotations=_HINTS[op.effect], structured_output=True)(tool)


def serve(repo: str = ".", remote: str | None = None, branch: str | None = None, agent: str | None = None) -> None:
    """Serve the store of the clone at ``repo`` over stdio until the client
    closes it. Raises :class:`GitclaimError` before serving if the clone or
    the agent name is unusable."""
    build_server(repo, remote, branch, agent).run("stdio")


# --- helpers -------------------------------------------------------------------------


def _envelope_error(command: str, e: GitclaimError) -> Envelope:
    return cast(Envelope, envelope.failure(command, e))


def _internal(e: BaseException) -> GitclaimError:
    return envelope.internal(e, "this is a bug in gitclaim; the server's stderr has the traceback")


def _result(envelope: Envelope) -> CallToolResult:
    text = json.dumps(envelope, ensure_ascii=False)
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=envelope,
        is_error=not envelope["ok"],
    )


def _edit_text(value: EditValue) -> str:
    """A value as the text ``Store.edit`` reads (a TOML value, or plain text)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)  # numbers, booleans and lists of strings are valid TOML
