"""The typer app: every command of the table in :mod:`gitclaim.operations`,
registered from it in one loop; only ``add`` and ``done`` (which also read a file),
``edit`` (which parses FIELD=VALUE), ``hooks``, ``mcp`` and ``demo`` have a
body of their own. Parse arguments, call the API, render. Nothing else.

Loaded by :func:`gitclaim.cli.main` only for a command line the fast read
path (:mod:`gitclaim.fastread`) does not answer.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
import typer.core

from . import envelope
from .cli import _Exit, _fail, _print_json
from .errors import BadInput, GitclaimError
from .operations import AGENT, JSON, PAGES, SHOW_ALL, Operation, Param, Surface, carried, invoke

if TYPE_CHECKING:
    from .api import Store
    from .envelope import Jsonable

app = typer.Typer(
    name="gitclaim",
    help="A git-native task store for teams of agents: claim work with compare-and-swap pushes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@dataclass
class Globals:
    repo: str = "."
    remote: str | None = None
    branch: str | None = None
    progress: bool = False  # a progress bar for long work: only on a terminal, never with --json
    as_json: bool = False
    pager: bool = True


_globals = Globals()


@app.callback()
def _root(
    repo: Annotated[str, typer.Option("-C", "--repo", help="Run as if started in this folder.")] = ".",
    remote: Annotated[str | None, typer.Option("--remote", help="Remote holding the store (default: origin).")] = None,
    branch: Annotated[str | None, typer.Option("--branch", help="Store branch (default: gitclaim).")] = None,
    no_pager: Annotated[bool, typer.Option("--no-pager", help="Never page a listing on a terminal.")] = False,
) -> None:
    _globals.repo, _globals.remote, _globals.branch = repo, remote, branch
    _globals.pager = not no_pager


def _store() -> Store:
    from .api import Store

    progress = None
    if _globals.progress:
        from .render import progress_sink

        progress = progress_sink()
    return Store(_globals.repo, remote=_globals.remote, branch=_globals.branch, progress=progress)


def _run(op: Operation, as_json: bool, fn: Callable[[], Jsonable]) -> NoReturn:
    """Call ``fn`` and print its result: as JSON, or with the operation's renderer.

    rich is imported only for human output: agents calling with --json pay
    for neither it nor the renderers.
    """
    try:
        result = fn()
    except GitclaimError as e:
        _fail(op.name, as_json, e)
    if as_json:
        _print_json(envelope.ok(op.name, result))
    elif op.name in PAGES and _globals.pager:
        from .render import RENDERERS, paged

        paged(lambda: RENDERERS[op.result](result), os.environ)
    else:
        from .render import RENDERERS

        RENDERERS[op.result](result)
    raise _Exit(0)


def page_limit(op: Operation, limit: int | None, show_all: bool, as_json: bool) -> int | None:
    """The listing's limit: --limit, else everything with --all, --json or when piped, else a page."""
    if show_all and limit is not None:
        raise BadInput("give --all or --limit N, not both")
    if limit is not None or show_all or as_json or not sys.stdout.isatty():
        return limit
    return PAGES[op.name]


# --- commands from the table ------------------------------------------------------


def _info(p: Param) -> Any:
    """typer's description of one parameter: an option with its flags, or an argument."""
    if not p.flags:
        return typer.Argument(metavar=p.metavar, help=p.help, show_default=False)
    text = f"{p.help.rstrip('.')} (repeat)." if "list[" in str(p.type) else p.help
    return typer.Option(*p.flags, help=text, metavar=p.metavar)


def _option(p: Param) -> Any:
    return Annotated[p.type, _info(p)]


def _signature(params: tuple[Param, ...]) -> inspect.Signature:
    return inspect.Signature(
        [
            inspect.Parameter(
                p.name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=_option(p),
                default=inspect.Parameter.empty if p.required else p.default,
            )
            for p in params
        ]
    )


def register(
    op: Operation,
    body: Callable[[dict[str, Any]], Jsonable] | None = None,
    extra: tuple[Param, ...] = (),
    *,
    group: typer.Typer = app,
    name: str | None = None,
    help: str | None = None,
) -> None:
    """A typer command for ``op``: its parameters, ``extra`` ones and ``--json``;
    ``body`` (default: the Store method) gets the parsed arguments."""
    run: Callable[[dict[str, Any]], Jsonable] = body or (lambda args: invoke(_store(), op, args))

    paged = op.name in PAGES and group is app

    def command(**kwargs: Any) -> None:
        _globals.as_json = kwargs.pop("as_json")
        if paged:
            show_all = kwargs.pop("show_all")
            _run(
                op,
                _globals.as_json,
                lambda: run({**kwargs, "limit": page_limit(op, kwargs["limit"], show_all, _globals.as_json)}),
            )
        _run(op, _globals.as_json, lambda: run(kwargs))

    params = (*op.params, *extra, *((SHOW_ALL,) if paged else ()), JSON)
    sig = _signature(params)
    command.__signature__ = sig  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in sig.parameters.values()}
    command.__name__ = command.__qualname__ = (name or op.name).replace("-", "_")
    command.__doc__ = help or op.help
    words = op.command.split()
    if group is app and len(words) == 2:  # "signers add": a subcommand of a group
        group, name = _group(words[0]), name or words[1]
    group.command(name or op.name)(command)


_GROUP_HELP = {
    "signers": "The store's allowed signers: who signs as whom (docs/identity.md).",
    "access": "The store's roles and pusher map (docs/identity.md).",
}
_groups: dict[str, typer.Typer] = {}


def _group(word: str) -> typer.Typer:
    if word not in _groups:
        _groups[word] = typer.Typer(help=_GROUP_HELP.get(word, ""), no_args_is_help=True)
        app.add_typer(_groups[word], name=word)
    return _groups[word]


# --- the hand-written ones ---------------------------------------------------------


def _register_add(op: Operation) -> None:
    """``add TITLE`` as the table says, or ``add --file FILE`` for many tasks."""
    title = replace(op.params[0], type=str | None, default=None)  # absent with --file
    file = Param("file", Path | None, "Add many tasks from a TOML or JSON file, in one commit.", None, ("--file", "-f"))

    def body(args: dict[str, Any]) -> Jsonable:
        path = args.pop("file")
        if path is not None:
            if args.get("title") is not None or args.get("task_id") is not None:
                raise BadInput("give either a TITLE or --file, not both")
            from .batch import read_batch

            return _store().add_many(read_batch(path), agent=args.get("agent"))
        if args.get("title") is None:
            raise BadInput("give a TITLE, or --file PATH for many tasks")
        return invoke(_store(), op, args)

    help = f"{op.summary} With --file, many tasks from a TOML or JSON file, in one commit."
    register(replace(op, params=(title, *op.params[1:])), body, (file,), help=help)


def _register_edit(op: Operation) -> None:
    """``--set FIELD=VALUE``, repeated, for the table's map of changes."""
    sets = Param("changes", list[str], "FIELD=VALUE.", flags=("--set",))

    def body(args: dict[str, Any]) -> Jsonable:
        changes: dict[str, str] = {}
        for item in args["changes"]:
            key, eq, value = item.partition("=")
            if not eq:
                raise BadInput(f"--set takes FIELD=VALUE, got {item!r}")
            changes[key.strip()] = value
        return invoke(_store(), op, {**args, "changes": changes})

    register(replace(op, params=tuple(sets if p.name == "changes" else p for p in op.params)), body)


def _register_done(op: Operation) -> None:
    """``done`` as the table says, and ``--result-file FILE`` for a result kept in a file."""
    file = Param(
        "result_file", Path | None, "Read the result from this file ('-': standard input).", None, ("--result-file",),
        "FILE",
    )  # fmt: skip

    def body(args: dict[str, Any]) -> Jsonable:
        path = args.pop("result_file")
        if path is not None:
            if args.get("result") is not None:
                raise BadInput("give --result TEXT or --result-file FILE, not both")
            args["result"] = _read_text(path)
        return invoke(_store(), op, args)

    register(op, body, (file,))


def _read_text(path: Path) -> str:
    try:
        if str(path) == "-":
            return sys.stdin.read()
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"{path}: cannot read: {e}", path=str(path)) from None


def _register_mcp(op: Operation) -> None:
    """``mcp`` serves JSON-RPC on stdio until the client leaves: no result, no --json."""

    def mcp(agent: Annotated[str | None, _info(AGENT)] = None) -> None:
        try:
            from . import mcp_server
        except ImportError:
            raise BadInput("the MCP server needs the mcp package", hint="pip install 'gitclaim[mcp]'") from None
        mcp_server.serve(_globals.repo, remote=_globals.remote, branch=_globals.branch, agent=agent)
        raise _Exit(0)

    app.command(help=op.help)(mcp)


def _register_hooks(op: Operation) -> None:
    """``hooks install``: a group, for the client hook or the server's."""
    hooks_app = typer.Typer(help=op.help, no_args_is_help=True)
    app.add_typer(hooks_app, name="hooks")
    server = Param(
        "server", Path | None, "Install pre-receive into this bare repository (the shared remote).", None, ("--server",)
    )
    vref = Param(
        "vref", bool, "With --server on a gitolite repository: install a VREF, not a repo-specific hook.", False,
        ("--vref",),
    )  # fmt: skip

    def body(args: dict[str, Any]) -> Jsonable:
        from .install import install_client, install_server

        if args["server"] is not None:
            return install_server(args["server"], _globals.branch, vref=args["vref"])
        if args["vref"]:
            raise BadInput("--vref goes with --server PATH (a repository gitolite manages)")
        return install_client(_globals.repo)

    help = (
        "Install the client pre-push hook in this clone, or with --server the pre-receive hook in the shared"
        " bare repository. An existing hook is kept and chained, never overwritten. In a repository gitolite"
        " manages, gitolite's hooks stay as they are: the hook goes into gitolite's LOCAL_CODE and the"
        " output names the rc and conf lines that switch it on."
    )
    register(op, body, (server, vref), group=hooks_app, name="install", help=help)


def _register_demo(op: Operation) -> None:
    params = (
        Param("agents", int, "Agent processes to start.", 4, ("--agents",)),
        Param("tasks", int, "Tasks to seed.", 24, ("--tasks",)),
        Param("keep", bool, "Keep the temporary folder and print its path.", False, ("--keep",)),
    )

    def body(args: dict[str, Any]) -> Jsonable:
        from . import demo

        return demo.run(agents=args["agents"], tasks=args["tasks"], keep=args["keep"], progress=not _globals.as_json)

    register(op, body, params)


class _RunCommand(typer.core.TyperCommand):
    """``run``'s words after ``--`` are COMMAND's, whatever they look like: set
    aside before click parses the rest (the ID and run's own options)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _after_dashes.clear()
        if "--" in args:
            cut = args.index("--")
            _after_dashes.append(args[cut + 1 :])
            args = args[:cut]
        return super().parse_args(ctx, args)


_after_dashes: list[list[str]] = []  # the one command line being parsed: COMMAND, when -- was given


def _register_run(op: Operation) -> None:
    """``run [ID | --next] [options] -- COMMAND...``: the exit status is COMMAND's."""
    params = tuple(replace(p, type=list[str] | None, default=None) if p.name == "command" else p for p in op.params)

    def command(**kwargs: Any) -> None:
        as_json = _globals.as_json = kwargs.pop("as_json")
        try:
            if kwargs.pop("command"):
                raise BadInput("give at most one task ID, then -- COMMAND...", hint="gitclaim run fix-login -- make")
            argv = _after_dashes[0] if _after_dashes else None
            if argv is None:
                raise BadInput("put COMMAND after --", hint="gitclaim run --next -- make test")
            from .ops.run import run

            stdout = sys.stderr if as_json else None  # --json: stdout carries one JSON object, nothing else
            result = run(_store(), argv, stdout=stdout, **kwargs)
        except GitclaimError as e:
            _fail(op.name, as_json, e)
        if as_json:
            _print_json(envelope.ok(op.name, result))
        else:
            from .render import RENDERERS

            RENDERERS[op.result](result)
        raise _Exit(result.status)

    sig = _signature((*params, JSON))
    command.__signature__ = sig  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in sig.parameters.values()}
    app.command("run", help=op.help, cls=_RunCommand)(command)


def _register_watch(op: Operation) -> None:
    """``watch``: endless; one line, or one JSON object per line; Ctrl-C ends it with 0."""

    def watch(as_json: Annotated[bool, _info(JSON)] = False) -> None:
        import json

        _globals.as_json = as_json
        try:
            entries = _store().watch()
            if as_json:
                for e in entries:
                    sys.stdout.write(json.dumps(e.to_json(), ensure_ascii=False) + "\n")
                    sys.stdout.flush()
            else:
                from .render import RENDERERS

                RENDERERS[op.result](entries)
        except GitclaimError as e:
            _fail(op.name, as_json, e)
        except KeyboardInterrupt:
            raise _Exit(0) from None  # the way to stop watching: not an error

    app.command(help=op.help)(watch)


#: The commands the table marks hand-written for the CLI.
CUSTOM: dict[str, Callable[[Operation], None]] = {
    "run": _register_run,
    "watch": _register_watch,
    "add": _register_add,
    "done": _register_done,
    "edit": _register_edit,
    "mcp": _register_mcp,
    "hooks": _register_hooks,
    "demo": _register_demo,
}

_registered: set[str] = set()


def commands(only: set[str] | None = None) -> typer.Typer:
    """The app with the table's commands registered, in its order (which --help
    keeps): all of them, or only those in ``only`` when a command line names
    them (each command then pays for building one command, not thirty)."""
    for op in carried(Surface.CLI):
        if op.name not in _registered and (only is None or op.command.split()[0] in only):
            CUSTOM.get(op.name, register)(op)
            _registered.add(op.name)
    return app
