"""The MCP server: the store's operations as tools over stdio (``gitclaim mcp``).

One tool per operation. Every tool answers with the object the CLI prints
with ``--json``: ``{"ok": true, "command", "result"}`` or ``{"ok": false,
"command", "error": {"code", "exit", "message", "hint", "details"}}``, as
structured content and as JSON text. A refusal is a result with ``is_error``
set, never a crash of the server: arguments that fail the tool's schema
come back as ``bad_input``, and an unexpected exception as ``internal``.

This is the only module that imports ``mcp``; nothing else in gitclaim
pays for it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from typing import Annotated, Any, NotRequired, Protocol, cast

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import CallToolResult, InputRequiredResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from typing_extensions import TypedDict  # pydantic reads only this one on Python < 3.12

from .api import Store
from .errors import BadInput, GitclaimError

_logger = logging.getLogger("gitclaim.mcp")


class _Jsonable(Protocol):
    def to_json(self) -> dict[str, Any]: ...


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


# --- argument types (the SDK turns them into the JSON schema) -------------------

TaskId = Annotated[str, Field(description="The task's id (a slug such as fix-login, or a generated id).")]
Agent = Annotated[
    str | None,
    Field(description="Act as this agent (default: the server's agent, given by `gitclaim mcp --agent`)."),
]
Offline = Annotated[bool, Field(description="Read the clone's local copy without fetching first.")]
Ttl = Annotated[
    int | None,
    Field(description="Lease in seconds; renew it with heartbeat (0: no lease; default: the store's)."),
]
SilentAfter = Annotated[
    int | None,
    Field(description="Also count claims whose holder has not sent a heartbeat for this many seconds."),
]
EditValue = str | int | float | bool | list[str]


# --- descriptions -----------------------------------------------------------------

_MEANING = {
    "bad_input": "an argument is invalid (wrong type, missing, illegal id or agent name, unknown state,"
    " dependency cycle); details name it; fix the call",
    "not_found": "no task has that id",
    "lost_race": "another agent holds the task (details: holder, claimed_at, commit); pick another task",
    "not_claimable": "the task's state refuses this verb (details: state); the message names the legal verbs",
    "blocked": "some dependencies are not done (details: blockers, each with id and state)",
    "nothing_ready": "no task is claimable now",
    "not_holder": "only the holder may do this (details: holder)",
    "already_exists": "a task with that id exists",
    "retries_exhausted": "the store kept changing under the call; nothing changed; call again",
    "push_rejected": "a hook on the remote refused the change (its text is in details); nothing changed",
}
_COMMON = (
    "Any tool may also answer remote_unreachable (fetch or push failed; nothing changed, or the message says"
    " it cannot tell: retry later; claim and the verbs on one task then recognise their own landed change),"
    " auth_failed or untrusted_remote (credentials refused, or the server's host key or certificate not"
    " trusted; nothing sent; a person must fix it, retrying will not help), local_io (the clone cannot be"
    " written; nothing pushed),"
    " not_initialized (no store on the remote: call init), store_corrupt (a file on the store branch is"
    " unreadable; details: path), schema_too_new (upgrade gitclaim) or internal (a bug in gitclaim)."
)
_OP_RESULT = (
    "{op, task, from, to, commit, changed, retries, previous_holder, also}: task is the task after the"
    " change (id, title, state, priority, depends_on, tags, description, acceptance, created_at,"
    " created_by, claim {holder, claimed_at, lease_seconds} or null, waiting_for, fail_reason, extra)"
)
_LISTING = "{tasks: [task], problems: [{path, message, code}], commit}"


def _describe(what: str, returns: str, errors: Sequence[str], mutates: bool = True) -> str:
    codes = [*errors, *(("retries_exhausted", "push_rejected") if mutates else ())]
    lines = [
        what,
        "",
        f'Returns {{"ok": true, "command", "result"}} with result = {returns}.',
        'On failure {"ok": false, "command", "error": {code, exit, message, hint, details}}; error.code is:',
        *(f"- {c}: {_MEANING[c]}" for c in ["bad_input", *codes]),
        _COMMON,
    ]
    return "\n".join(lines)


_SERVER_INSTRUCTIONS = """\
gitclaim: a task queue shared by many agents through a git remote. Each change is one commit
pushed with compare-and-swap, so exactly one agent wins a task; the others get lost_race naming
the holder. Typical loop: next (or ready, then claim) -> work -> done (or release / fail / wait /
handoff); heartbeat renews leases. Every tool returns {"ok", "command", "result" | "error"};
error.code is stable (same as the gitclaim CLI's --json). Mutating tools take an optional agent;
by default the server acts as {agent}."""


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

    async def run(command: str, op: Callable[[Store], _Jsonable]) -> CallToolResult:
        def work() -> Envelope:
            try:
                store = Store(path, remote=remote, branch=branch, agent=default_agent)
                return {"ok": True, "command": command, "result": op(store).to_json()}
            except GitclaimError as e:
                return _envelope_error(command, e)
            except Exception as e:
                _logger.exception("tool %s failed", command)
                return _envelope_error(command, _internal(e))

        if not limiter:
            limiter.append(anyio.CapacityLimiter(1))
        return _result(await anyio.to_thread.run_sync(work, limiter=limiter[0]))

    server = _Server(
        "gitclaim",
        instructions=_SERVER_INSTRUCTIONS.replace("{agent}", default_agent),
        log_level="WARNING",
    )
    read = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    change = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
    drop = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)

    def tool(
        name: str, description: str, annotations: ToolAnnotations
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return server.tool(name=name, description=description, annotations=annotations, structured_output=True)

    # --- reading ---------------------------------------------------------------

    @tool(
        "list",
        _describe(
            "List tasks, filtered by state(s), holder and tag, by priority then age.",
            _LISTING + "; problems are files on the branch that could not be read",
            [],
            mutates=False,
        ),
        read,
    )
    async def list_(
        state: Annotated[
            list[str] | None,
            Field(
                description="Only tasks in these states (backlog, todo, someday, active, waiting, review, done,"
                " failed, cancelled)."
            ),
        ] = None,
        holder: Annotated[str | None, Field(description="Only tasks held by this agent.")] = None,
        tag: Annotated[str | None, Field(description="Only tasks with this tag.")] = None,
        offline: Offline = False,
    ) -> ToolOutput:
        return await run("list", lambda s: s.list(state=state, holder=holder, tag=tag, offline=offline))

    @tool(
        "ready",
        _describe(
            "Tasks claimable now (claimable state, every dependency done, or an expired lease),"
            " by priority then age. Claim one with claim, or let next pick.",
            _LISTING,
            [],
            mutates=False,
        ),
        read,
    )
    async def ready(offline: Offline = False) -> ToolOutput:
        return await run("ready", lambda s: s.ready(offline=offline))

    @tool(
        "show",
        _describe(
            "One task: its fields, what blocks it, and its history (newest first).",
            "{task, blockers: [{id, state}], history: [entry], commit}; an entry is"
            " {commit, time, author, subject, op, agent, tasks, from, to, trailers}",
            ["not_found"],
            mutates=False,
        ),
        read,
    )
    async def show(task_id: TaskId, offline: Offline = False) -> ToolOutput:
        return await run("show", lambda s: s.show(task_id, offline=offline))

    @tool(
        "log",
        _describe(
            "The audit trail, newest first: who did what to which task, when (one entry per commit).",
            "{entries: [{commit, time, author, subject, op, agent, tasks, from, to, trailers}], commit}",
            [],
            mutates=False,
        ),
        read,
    )
    async def log(
        task_id: Annotated[str | None, Field(description="Only entries about this task.")] = None,
        limit: Annotated[int | None, Field(description="At most this many entries.")] = None,
        offline: Offline = False,
    ) -> ToolOutput:
        return await run("log", lambda s: s.log(task_id, limit=limit, offline=offline))

    @tool(
        "stale",
        _describe(
            "Claims whose lease expired and, with silent_after, claims whose holder went quiet.",
            "{claims: [{task, state, holder, claimed_at, lease_expires, last_seen, reason}], commit, now}",
            [],
            mutates=False,
        ),
        read,
    )
    async def stale(silent_after: SilentAfter = None, offline: Offline = False) -> ToolOutput:
        return await run("stale", lambda s: s.stale(silent_after=silent_after, offline=offline))

    # --- adding ----------------------------------------------------------------

    @tool(
        "init",
        _describe(
            "Create the store branch on the remote, or attach this clone to the existing one.",
            "{remote, branch, commit, created}",
            [],
        ),
        change,
    )
    async def init(agent: Agent = None) -> ToolOutput:
        return await run("init", lambda s: s.init(agent=agent))

    @tool(
        "add",
        _describe(
            "Add one task (one commit). It starts in todo.",
            "{tasks: [task], commit, retries}",
            ["already_exists"],
        ),
        change,
    )
    async def add(
        title: Annotated[str, Field(description="Title of the new task.")],
        task_id: Annotated[str | None, Field(description="Task id (a slug); default: a short random id.")] = None,
        priority: Annotated[int | None, Field(description="0 (most urgent) to 9; default 2.")] = None,
        depends_on: Annotated[list[str] | None, Field(description="Ids of tasks this one waits for.")] = None,
        tags: list[str] | None = None,
        description: str = "",
        acceptance: Annotated[list[str] | None, Field(description="Acceptance criteria.")] = None,
        agent: Agent = None,
    ) -> ToolOutput:
        return await run(
            "add",
            lambda s: s.add(
                title,
                task_id=task_id,
                priority=priority,
                depends_on=depends_on or (),
                tags=tags or (),
                description=description,
                acceptance=acceptance or (),
                agent=agent,
            ),
        )

    @tool(
        "add_many",
        _describe(
            "Add many tasks in one commit. They may depend on each other (by id) and on existing tasks;"
            " either all are added or none.",
            "{tasks: [task], commit, retries}",
            ["already_exists"],
        ),
        change,
    )
    async def add_many(
        tasks: Annotated[list[NewTask], Field(description="The new tasks.", min_length=1)],
        agent: Agent = None,
    ) -> ToolOutput:
        entries = [t.model_dump(exclude_none=True) for t in tasks]
        return await run("add_many", lambda s: s.add_many(entries, agent=agent))

    # --- claiming ----------------------------------------------------------------

    claim_errors = ["not_found", "lost_race", "not_claimable", "blocked"]

    @tool(
        "claim",
        _describe(
            "Claim one task for the agent: one commit, pushed with compare-and-swap, so exactly one agent"
            " wins. Claiming a task you already hold succeeds with changed=false. A task whose lease"
            " expired is taken over (previous_holder names whom from).",
            _OP_RESULT,
            claim_errors,
        ),
        change,
    )
    async def claim(task_id: TaskId, ttl: Ttl = None, agent: Agent = None) -> ToolOutput:
        return await run("claim", lambda s: s.claim(task_id, ttl=ttl, agent=agent))

    @tool(
        "next",
        _describe(
            "Claim the best ready task (by priority, then age); having lost a race for it, go on to"
            " another. The usual way to get work.",
            _OP_RESULT,
            ["nothing_ready", "lost_race", "not_claimable", "blocked"],
        ),
        change,
    )
    async def next_(ttl: Ttl = None, agent: Agent = None) -> ToolOutput:
        return await run("next", lambda s: s.next(ttl=ttl, agent=agent))

    # --- the other verbs ---------------------------------------------------------

    verb_errors = ["not_found", "not_claimable", "not_holder"]

    def verb(
        name: str, what: str, annotations: ToolAnnotations = change
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return server.tool(
            name=name,
            description=_describe(what, _OP_RESULT, verb_errors),
            annotations=annotations,
            structured_output=True,
        )

    @verb("release", "Give your claimed (active) task back to the queue (state todo). Holder only.")
    async def release_(task_id: TaskId, agent: Agent = None) -> ToolOutput:
        return await run("release", lambda s: s.release(task_id, agent=agent))

    @verb("done", "Finish a task: the holder of an active task, or anyone approving a task in review.")
    async def done_(task_id: TaskId, agent: Agent = None) -> ToolOutput:
        return await run("done", lambda s: s.done(task_id, agent=agent))

    @verb("handoff", "Pass your active task to another agent, who becomes its holder. Holder only.")
    async def handoff_(
        task_id: TaskId,
        to: Annotated[str, Field(description="The agent who takes the task over.")],
        agent: Agent = None,
    ) -> ToolOutput:
        return await run("handoff", lambda s: s.handoff(task_id, to, agent=agent))

    @verb("wait", "Park your active task until something outside the queue happens; you keep it. Holder only.")
    async def wait_(
        task_id: TaskId,
        waiting_for: Annotated[str, Field(description="What the task waits for.")],
        agent: Agent = None,
    ) -> ToolOutput:
        return await run("wait", lambda s: s.wait(task_id, waiting_for, agent=agent))

    @verb("resume", "Continue your waiting task (back to active). Holder only.")
    async def resume_(task_id: TaskId, agent: Agent = None) -> ToolOutput:
        return await run("resume", lambda s: s.resume(task_id, agent=agent))

    @verb("review", "Ask for review of your active task; you stay the holder; anyone may then done or reopen it.")
    async def review_(task_id: TaskId, agent: Agent = None) -> ToolOutput:
        return await run("review", lambda s: s.review(task_id, agent=agent))

    @verb("fail", "Give up on your active task, saying why (state failed). Holder only.")
    async def fail_(
        task_id: TaskId,
        reason: Annotated[str, Field(description="Why the task failed.")],
        agent: Agent = None,
    ) -> ToolOutput:
        return await run("fail", lambda s: s.fail(task_id, reason, agent=agent))

    @verb("cancel", "Drop a task: anyone if it is unheld, only the holder if it is held.", drop)
    async def cancel_(task_id: TaskId, agent: Agent = None) -> ToolOutput:
        return await run("cancel", lambda s: s.cancel(task_id, agent=agent))

    @verb("reopen", "Put a done, cancelled, failed or reviewed task back in the queue (todo).")
    async def reopen_(task_id: TaskId, agent: Agent = None) -> ToolOutput:
        return await run("reopen", lambda s: s.reopen(task_id, agent=agent))

    @verb(
        "reset",
        "Clear anyone's claim and put the task back in todo (an operator's override); the commit and"
        " previous_holder record whom it was taken from.",
        drop,
    )
    async def reset_(task_id: TaskId, agent: Agent = None) -> ToolOutput:
        return await run("reset", lambda s: s.reset(task_id, agent=agent))

    @verb(
        "retry",
        "Run a failed or done task again (todo); in the same commit, clear the claims of every task"
        " downstream of it (listed in also).",
    )
    async def retry_(task_id: TaskId, agent: Agent = None) -> ToolOutput:
        return await run("retry", lambda s: s.retry(task_id, agent=agent))

    @tool(
        "edit",
        _describe(
            "Change plain fields of a task (title, description, priority, tags, depends_on, acceptance,"
            " fields of your own); state may move only among backlog, todo and someday. Claims change"
            " only through the verbs.",
            _OP_RESULT,
            ["not_found", "not_claimable"],
        ),
        change,
    )
    async def edit(
        task_id: TaskId,
        changes: Annotated[
            dict[str, EditValue],
            Field(
                description="Field -> new value. Text is read as a TOML value when it parses as one"
                " (lists also as comma-separated text).",
                min_length=1,
            ),
        ],
        agent: Agent = None,
    ) -> ToolOutput:
        as_text = {k: _edit_text(v) for k, v in changes.items()}
        return await run("edit", lambda s: s.edit(task_id, as_text, agent=agent))

    # --- leases --------------------------------------------------------------------

    @tool(
        "heartbeat",
        _describe(
            "Renew every lease the agent holds (no commit on the store branch). Call it every few minutes"
            " while working on a task claimed with a lease.",
            "{agent, at, holding: [task id]}",
            [],
            mutates=False,
        ),
        change,
    )
    async def heartbeat(agent: Agent = None) -> ToolOutput:
        return await run("heartbeat", lambda s: s.heartbeat(agent=agent))

    @tool(
        "reap",
        _describe(
            "Return every expired (and, with silent_after, silent) claim to the queue, in one commit"
            " that records whom each was taken from.",
            "{reaped: [{task, state, holder, claimed_at, lease_expires, last_seen, reason}], commit, retries}",
            [],
        ),
        drop,
    )
    async def reap(silent_after: SilentAfter = None, agent: Agent = None) -> ToolOutput:
        return await run("reap", lambda s: s.reap(silent_after=silent_after, agent=agent))

    return server


def serve(repo: str = ".", remote: str | None = None, branch: str | None = None, agent: str | None = None) -> None:
    """Serve the store of the clone at ``repo`` over stdio until the client
    closes it. Raises :class:`GitclaimError` before serving if the clone or
    the agent name is unusable."""
    build_server(repo, remote, branch, agent).run("stdio")


# --- helpers -------------------------------------------------------------------------


def _envelope_error(command: str, e: GitclaimError) -> Envelope:
    return {"ok": False, "command": command, "error": cast(ErrorInfo, e.to_json())}


def _internal(e: BaseException) -> GitclaimError:
    return GitclaimError(
        f"internal error: {type(e).__name__}: {e}",
        hint="this is a bug in gitclaim; the server's stderr has the traceback",
    )


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
