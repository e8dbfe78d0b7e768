"""The command line: parse arguments, call the API, render. Nothing else.

Exit codes and the JSON shapes are a contract (docs/cli.md). With ``--json``
every command prints exactly one JSON object on stdout:
``{"ok": true, "command": ..., "result": {...}}`` or
``{"ok": false, "command": ..., "error": {"code", "exit", "message", "hint", "details"}}``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, Protocol

import typer

from .errors import BadInput, ExitCode, GitclaimError, Interrupted

if TYPE_CHECKING:
    from .api import Store

app = typer.Typer(
    name="gitclaim",
    help="A git-native task store for teams of agents: claim work with compare-and-swap pushes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object (stable shape) on stdout.")]
AgentOpt = Annotated[
    str | None,
    typer.Option("--agent", "-a", help="Agent name (default: $GITCLAIM_AGENT, git config gitclaim.agent, user-host)."),
]
OfflineOpt = Annotated[bool, typer.Option("--offline", help="Read the local copy; do not fetch.")]


@dataclass
class Globals:
    repo: str = "."
    remote: str | None = None
    branch: str | None = None
    progress: bool = False  # a progress bar for long work: only on a terminal, never with --json


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class _Jsonable(Protocol):
    def to_json(self) -> dict[str, Any]: ...


_globals = Globals()


@app.callback()
def _root(
    repo: Annotated[str, typer.Option("-C", "--repo", help="Run as if started in this folder.")] = ".",
    remote: Annotated[str | None, typer.Option("--remote", help="Remote holding the store (default: origin).")] = None,
    branch: Annotated[str | None, typer.Option("--branch", help="Store branch (default: gitclaim).")] = None,
) -> None:
    _globals.repo, _globals.remote, _globals.branch = repo, remote, branch


def _store() -> Store:
    from .api import Store

    progress = None
    if _globals.progress:
        from .render import progress_sink

        progress = progress_sink()
    return Store(_globals.repo, remote=_globals.remote, branch=_globals.branch, progress=progress)


def _run(command: str, as_json: bool, fn: Callable[[], _Jsonable], human: str) -> NoReturn:
    """Call ``fn`` and print its result: as JSON, or with ``render.<human>``.

    rich is imported only for human output: agents calling with --json pay
    for neither it nor the renderers.
    """
    try:
        result = fn()
    except GitclaimError as e:
        _fail(command, as_json, e)
    if as_json:
        _print_json({"ok": True, "command": command, "result": result.to_json()})
    else:
        from . import render

        getattr(render, human)(result)
    raise _Exit(0)


def _fail(command: str, as_json: bool, e: GitclaimError) -> NoReturn:
    if as_json:
        _print_json({"ok": False, "command": command, "error": e.to_json()})
    else:
        from . import render

        render.error(e)
    raise _Exit(int(e.exit_code))


def _print_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


# --- commands ------------------------------------------------------------------


@app.command()
def init(agent: AgentOpt = None, as_json: JsonOpt = False) -> None:
    """Create the store branch on the remote, or attach to an existing one."""
    _run("init", as_json, lambda: _store().init(agent=agent), "init")


@app.command()
def add(
    title: Annotated[str | None, typer.Argument(help="Title of the new task.")] = None,
    task_id: Annotated[str | None, typer.Option("--id", help="Task id (slug); default: a short random id.")] = None,
    priority: Annotated[int | None, typer.Option("--priority", "-p", help="0 (most urgent) to 9; default 2.")] = None,
    depends_on: Annotated[
        list[str] | None, typer.Option("--depends-on", "-d", help="A task this one waits for (repeat).")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="A tag (repeat).")] = None,
    description: Annotated[str, typer.Option("--description", help="Longer description.")] = "",
    acceptance: Annotated[
        list[str] | None, typer.Option("--acceptance", help="An acceptance criterion (repeat).")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Add many tasks from a TOML or JSON file, in one commit.")
    ] = None,
    agent: AgentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add one task, or many from a file (one commit either way)."""

    def go() -> _Jsonable:
        if file is not None:
            if title is not None or task_id is not None:
                raise BadInput("give either a TITLE or --file, not both")
            from .batch import read_batch

            return _store().add_many(read_batch(file), agent=agent)
        if title is None:
            raise BadInput("give a TITLE, or --file PATH for many tasks")
        return _store().add(
            title,
            task_id=task_id,
            priority=priority,
            depends_on=depends_on or (),
            tags=tag or (),
            description=description,
            acceptance=acceptance or (),
            agent=agent,
        )

    _run("add", as_json, go, "added")


@app.command("list")
def list_(
    state: Annotated[list[str] | None, typer.Option("--state", "-s", help="Only tasks in this state (repeat).")] = None,
    holder: Annotated[str | None, typer.Option("--holder", help="Only tasks held by this agent.")] = None,
    tag: Annotated[str | None, typer.Option("--tag", "-t", help="Only tasks with this tag.")] = None,
    offline: OfflineOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """List tasks, filtered by state, holder or tag."""
    _run("list", as_json, lambda: _store().list(state=state, holder=holder, tag=tag, offline=offline), "listing")


@app.command()
def ready(offline: OfflineOpt = False, as_json: JsonOpt = False) -> None:
    """Tasks claimable now, by priority, then age."""
    _run("ready", as_json, lambda: _store().ready(offline=offline), "listing")


@app.command()
def show(
    task_id: Annotated[str, typer.Argument(metavar="ID")],
    offline: OfflineOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """One task: its fields, what blocks it, and its history."""
    _run("show", as_json, lambda: _store().show(task_id, offline=offline), "task_view")


TtlOpt = Annotated[
    int | None,
    typer.Option("--ttl", help="Lease in seconds; renew with `heartbeat` (0: none; default: the store's)."),
]
IdArg = Annotated[str, typer.Argument(metavar="ID")]


@app.command()
def claim(task_id: IdArg, agent: AgentOpt = None, ttl: TtlOpt = None, as_json: JsonOpt = False) -> None:
    """Claim a task: one commit, pushed with compare-and-swap. Exactly one agent wins."""
    _run("claim", as_json, lambda: _store().claim(task_id, agent=agent, ttl=ttl), "op")


@app.command("next")
def next_(agent: AgentOpt = None, ttl: TtlOpt = None, as_json: JsonOpt = False) -> None:
    """Claim the best ready task; having lost a race, go on to the next."""
    _run("next", as_json, lambda: _store().next(agent=agent, ttl=ttl), "op")


@app.command()
def release(
    task_id: Annotated[str, typer.Argument(metavar="ID")], agent: AgentOpt = None, as_json: JsonOpt = False
) -> None:
    """Give your claimed task back to the queue."""
    _run("release", as_json, lambda: _store().release(task_id, agent=agent), "op")


@app.command()
def done(
    task_id: Annotated[str, typer.Argument(metavar="ID")], agent: AgentOpt = None, as_json: JsonOpt = False
) -> None:
    """Mark your claimed task done."""
    _run("done", as_json, lambda: _store().done(task_id, agent=agent), "op")


@app.command()
def handoff(
    task_id: IdArg,
    to: Annotated[str, typer.Option("--to", help="The agent who takes the task over.")],
    agent: AgentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Pass your active task to another agent; the commit records both."""
    _run("handoff", as_json, lambda: _store().handoff(task_id, to, agent=agent), "op")


@app.command()
def wait(
    task_id: IdArg,
    waiting_for: Annotated[str, typer.Option("--for", help="What the task waits for.")],
    agent: AgentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Park your task until something outside the queue happens (you keep it)."""
    _run("wait", as_json, lambda: _store().wait(task_id, waiting_for, agent=agent), "op")


@app.command()
def resume(task_id: IdArg, agent: AgentOpt = None, as_json: JsonOpt = False) -> None:
    """Continue your waiting task."""
    _run("resume", as_json, lambda: _store().resume(task_id, agent=agent), "op")


@app.command()
def review(task_id: IdArg, agent: AgentOpt = None, as_json: JsonOpt = False) -> None:
    """Ask for review of your task; anyone may then `done` or `reopen` it."""
    _run("review", as_json, lambda: _store().review(task_id, agent=agent), "op")


@app.command()
def fail(
    task_id: IdArg,
    reason: Annotated[str, typer.Option("--reason", help="Why the task failed.")],
    agent: AgentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Give up on your task, saying why."""
    _run("fail", as_json, lambda: _store().fail(task_id, reason, agent=agent), "op")


@app.command()
def cancel(task_id: IdArg, agent: AgentOpt = None, as_json: JsonOpt = False) -> None:
    """Drop a task (anyone if unheld; the holder if held)."""
    _run("cancel", as_json, lambda: _store().cancel(task_id, agent=agent), "op")


@app.command()
def reopen(task_id: IdArg, agent: AgentOpt = None, as_json: JsonOpt = False) -> None:
    """Put a done, cancelled, failed or reviewed task back in the queue."""
    _run("reopen", as_json, lambda: _store().reopen(task_id, agent=agent), "op")


@app.command()
def reset(task_id: IdArg, agent: AgentOpt = None, as_json: JsonOpt = False) -> None:
    """Clear anyone's claim on a task and put it back (records whom it was taken from)."""
    _run("reset", as_json, lambda: _store().reset(task_id, agent=agent), "op")


@app.command()
def retry(task_id: IdArg, agent: AgentOpt = None, as_json: JsonOpt = False) -> None:
    """Run a failed or done task again, clearing claims downstream of it in the same commit."""
    _run("retry", as_json, lambda: _store().retry(task_id, agent=agent), "op")


@app.command()
def edit(
    task_id: IdArg,
    sets: Annotated[list[str], typer.Option("--set", help="FIELD=VALUE (repeat).")],
    agent: AgentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change plain fields (title, priority, tags, depends_on, your own fields...)."""

    def go() -> _Jsonable:
        changes: dict[str, str] = {}
        for item in sets:
            key, eq, value = item.partition("=")
            if not eq:
                raise BadInput(f"--set takes FIELD=VALUE, got {item!r}")
            changes[key.strip()] = value
        return _store().edit(task_id, changes, agent=agent)

    _run("edit", as_json, go, "op")


@app.command()
def heartbeat(agent: AgentOpt = None, as_json: JsonOpt = False) -> None:
    """Renew the leases you hold (no commit on the store branch)."""
    _run("heartbeat", as_json, lambda: _store().heartbeat(agent=agent), "heartbeat")


SilentOpt = Annotated[
    int | None, typer.Option("--silent-after", help="Also count claims whose holder was silent this many seconds.")
]


@app.command()
def stale(silent_after: SilentOpt = None, offline: OfflineOpt = False, as_json: JsonOpt = False) -> None:
    """Claims whose lease expired (and, with --silent-after, whose holder went quiet)."""
    _run("stale", as_json, lambda: _store().stale(silent_after=silent_after, offline=offline), "stale")


@app.command()
def reap(silent_after: SilentOpt = None, agent: AgentOpt = None, as_json: JsonOpt = False) -> None:
    """Return every stale claim to the queue, in one commit."""
    _run("reap", as_json, lambda: _store().reap(silent_after=silent_after, agent=agent), "reaped")


@app.command()
def board(offline: OfflineOpt = False, as_json: JsonOpt = False) -> None:
    """Every task, in columns by state."""
    _run("board", as_json, lambda: _store().board(offline=offline), "board")


@app.command()
def who(offline: OfflineOpt = False, as_json: JsonOpt = False) -> None:
    """Who holds what, since when, and whether each lease is live."""
    _run("who", as_json, lambda: _store().who(offline=offline), "who")


@app.command()
def blocked(offline: OfflineOpt = False, as_json: JsonOpt = False) -> None:
    """What waits on what: dependencies not done, and tasks waiting on the outside."""
    _run("blocked", as_json, lambda: _store().blocked(offline=offline), "blocked")


@app.command()
def graph(
    fmt: Annotated[str, typer.Option("--format", "-f", help="dot or mermaid.")] = "mermaid",
    offline: OfflineOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The dependency graph as Graphviz DOT or Mermaid."""
    _run("graph", as_json, lambda: _store().graph(fmt, offline=offline), "graph")


@app.command()
def mcp(agent: AgentOpt = None) -> None:
    """Serve the store to MCP clients over stdio (needs the `mcp` extra)."""
    try:
        from . import mcp_server
    except ImportError:
        raise BadInput(
            "the MCP server needs the mcp package",
            hint="pip install 'gitclaim[mcp]'",
        ) from None
    mcp_server.serve(_globals.repo, remote=_globals.remote, branch=_globals.branch, agent=agent)
    raise _Exit(0)


hooks_app = typer.Typer(help="Hooks that enforce the store's rules on every push.", no_args_is_help=True)
app.add_typer(hooks_app, name="hooks")


@hooks_app.command("install")
def hooks_install(
    server: Annotated[
        Path | None, typer.Option("--server", help="Install pre-receive into this bare repository (the shared remote).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Install the client pre-push hook in this clone, or with --server the
    pre-receive hook in the shared bare repository. An existing hook is kept
    and chained, never overwritten."""

    def go() -> _Jsonable:
        from .enforce import install_client, install_server

        if server is not None:
            return install_server(server, _globals.branch)
        return install_client(_globals.repo)

    _run("hooks", as_json, go, "installed")


@app.command()
def log(
    task_id: Annotated[str | None, typer.Argument(metavar="[ID]")] = None,
    limit: Annotated[int | None, typer.Option("--limit", "-n", help="At most this many entries.")] = None,
    offline: OfflineOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The audit trail, newest first: who did what to which task, when."""
    _run("log", as_json, lambda: _store().log(task_id, limit=limit, offline=offline), "history")


@app.command()
def demo(
    agents: Annotated[int, typer.Option("--agents", help="Agent processes to start.")] = 4,
    tasks: Annotated[int, typer.Option("--tasks", help="Tasks to seed.")] = 24,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the temporary folder and print its path.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run a team of agent processes on a fresh local store and show who did what."""
    from . import demo as demo_mod

    _run("demo", as_json, lambda: demo_mod.run(agents=agents, tasks=tasks, keep=keep, progress=not as_json), "demo")


# --- entry point ---------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    _globals.progress = not as_json and sys.stderr.isatty()
    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    names |= {g.name for g in app.registered_groups if g.name}
    command = next((a for a in args if a in names), "")
    try:
        rv = app(args=args, prog_name="gitclaim", standalone_mode=False)
        if rv == ExitCode.INTERRUPTED:  # typer turns Ctrl-C into an exit code of 130
            raise KeyboardInterrupt
    except _Exit as e:
        return e.code
    except GitclaimError as e:  # raised outside _run (e.g. while opening the repository)
        try:
            _fail(command, as_json, e)
        except _Exit as x:
            return x.code
    except KeyboardInterrupt:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the report short
        try:
            _fail(command, as_json, Interrupted("interrupted (Ctrl-C) before the command finished"))
        except _Exit as x:
            return x.code
    except Exception as e:
        if _is_usage_error(e):
            return _usage_error(command, as_json, e)
        if os.environ.get("GITCLAIM_DEBUG"):
            raise
        err = GitclaimError(
            f"internal error: {type(e).__name__}: {e}",
            hint="this is a bug in gitclaim; rerun with GITCLAIM_DEBUG=1 for a traceback and report it",
        )
        try:
            _fail(command, as_json, err)
        except _Exit as x:
            return x.code
    return 0


def _is_usage_error(e: BaseException) -> bool:
    # typer vendors click; its ClickException carries exit_code and format_message
    return hasattr(e, "format_message") and hasattr(e, "exit_code")


def _usage_error(command: str, as_json: bool, e: Exception) -> int:
    code = getattr(e, "exit_code", 2)
    if code == 0:  # --help
        return 0
    msg = e.format_message()  # type: ignore[attr-defined]
    err = BadInput(f"usage: {msg}", hint="see `gitclaim --help` or `gitclaim COMMAND --help`")
    if as_json:
        _print_json({"ok": False, "command": command, "error": err.to_json()})
    else:
        show = getattr(e, "show", None)
        if callable(show):
            show()
        else:
            sys.stderr.write(f"error: {msg}\n")
    return int(ExitCode.BAD_INPUT)
