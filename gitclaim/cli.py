"""The command line's entry point: ``gitclaim`` runs :func:`main`.

A listing read that :mod:`gitclaim.fastread` can answer (ready, list, board
with --json, or piped) is answered from the read index without loading typer,
rich or the API; every other command line goes to the typer app in
:mod:`gitclaim.commands`. Exit codes and the JSON shapes are a contract
(docs/cli.md). With ``--json`` every command prints exactly one JSON object on
stdout (:mod:`gitclaim.envelope`).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING: the fast read path imports neither typing nor the table
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from .errors import GitclaimError


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _fail(command: str, as_json: bool, e: GitclaimError) -> NoReturn:
    from . import envelope

    if as_json:
        _print_json(envelope.failure(command, e))
    else:
        from . import render

        render.error(e)
    raise _Exit(int(e.exit_code))


def _print_json(obj: dict[str, Any]) -> None:
    import json

    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


# --- entry point ---------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    code = _main(argv)
    try:
        sys.stdout.flush()  # inside the handler: what a closed pipe refuses is refused here
    except BrokenPipeError:
        return _pipe_closed()
    return code


def _main(argv: list[str] | None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    try:
        from . import fastread

        served = fastread.serve(args)
    except BrokenPipeError:
        return _pipe_closed()
    except KeyboardInterrupt:
        return _interrupted(next((a for a in args if a in fastread.SERVED), ""), as_json)
    if served is not None:
        return served
    return _typer_app(args, as_json)


def _interrupted(command: str, as_json: bool) -> int:
    import signal

    from .errors import Interrupted

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the report short
    return _report(command, as_json, Interrupted("interrupted (Ctrl-C) before the command finished"))


def _typer_app(args: list[str], as_json: bool) -> int:
    from . import envelope
    from .errors import ExitCode, GitclaimError
    from .operations import Surface, carried

    names = {op.command.split()[0] for op in carried(Surface.CLI)}
    named = {a for a in args if a in names}
    command = next((a for a in args if a in names), "")
    try:
        from .commands import _globals, commands

        _globals.progress = not as_json and sys.stderr.isatty()
        rv = commands(named or None)(args=args, prog_name="gitclaim", standalone_mode=False)
        if rv == ExitCode.INTERRUPTED:  # typer turns Ctrl-C into an exit code of 130
            raise KeyboardInterrupt
    except _Exit as e:
        return e.code
    except GitclaimError as e:  # raised outside _run (e.g. while opening the repository)
        return _report(command, as_json, e)
    except BrokenPipeError:
        return _pipe_closed()
    except KeyboardInterrupt:
        return _interrupted(command, as_json)
    except Exception as e:
        if _is_usage_error(e):
            return _usage_error(command, as_json, e)
        if os.environ.get("GITCLAIM_DEBUG"):
            raise
        hint = "this is a bug in gitclaim; rerun with GITCLAIM_DEBUG=1 for a traceback and report it"
        return _report(command, as_json, envelope.internal(e, hint))
    return 0


def _pipe_closed() -> int:
    """The reader of our output closed it (``gitclaim log | head``): stop quietly,
    as git does, with the status of a process ended by SIGPIPE."""
    from .errors import ExitCode

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush must not fail again
    return int(ExitCode.PIPE_CLOSED)


def _report(command: str, as_json: bool, e: GitclaimError) -> int:
    try:
        _fail(command, as_json, e)
    except _Exit as x:
        return x.code


def _is_usage_error(e: BaseException) -> bool:
    # typer vendors click; its ClickException carries exit_code and format_message
    return hasattr(e, "format_message") and hasattr(e, "exit_code")


def _usage_error(command: str, as_json: bool, e: Exception) -> int:
    from . import envelope
    from .errors import BadInput, ExitCode

    code = getattr(e, "exit_code", 2)
    if code == 0:  # --help
        return 0
    msg = e.format_message()  # type: ignore[attr-defined]
    err = BadInput(f"usage: {msg}", hint="see `gitclaim --help` or `gitclaim COMMAND --help`")
    if as_json:
        _print_json(envelope.failure(command, err))
    else:
        show = getattr(e, "show", None)
        if callable(show):
            show()
        else:
            sys.stderr.write(f"error: {msg}\n")
    return int(ExitCode.BAD_INPUT)


def __getattr__(name: str) -> Any:
    # the typer app and its helpers, for those who drive it in-process (tests)
    if name in ("app", "commands", "register", "_globals", "Globals"):
        from . import commands

        return getattr(commands, name)
    raise AttributeError(name)
