"""ready, list and board answered from the read index, before typer, rich or the API load.

:func:`gitclaim.cli.main` hands every command line here first. One this
module understands entirely (one of these listings, the table's own flags
for it, output as JSON or to a pipe) is answered from the read index
(:mod:`gitclaim.readindex`), the JSON spliced from the index's texts; any
other (help, a usage error, another command, a person at a terminal, any
error at all) returns None, and the typer app answers it as always, errors
included. The flags are those of the table (:mod:`gitclaim.operations`), so
the two parsers cannot drift, and a test holds their outputs byte-equal.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING: the warm path imports neither typing nor the table
if TYPE_CHECKING:
    from typing import Any

    from .git import Repo
    from .readindex import Index, Row

SERVED = ("ready", "list", "board")
DEFAULTS = ("origin", "gitclaim")  # gitclaim.refnames.DEFAULT_REMOTE, DEFAULT_BRANCH
_GLOBAL = {"-C": "repo", "--repo": "repo", "--remote": "remote", "--branch": "branch"}
# The table's parameters of each listing (gitclaim.operations) and the CLI's own
# --all and --json: name, kind ("bool", "int", "str" or "list"), default, flags.
# Written out so that a warm read does not import the table; a test holds them equal.
_COMMON = (("limit", "int", None, ("--limit", "-n")), ("offline", "bool", False, ("--offline",)))
_CLI = (("show_all", "bool", False, ("--all",)), ("as_json", "bool", False, ("--json",)))
PARAMS: dict[str, tuple[tuple[str, str, Any, tuple[str, ...]], ...]] = {
    "ready": (*_COMMON, *_CLI),
    "board": (*_COMMON, *_CLI),
    "list": (
        ("state", "list", None, ("--state", "-s")),
        ("holder", "str", None, ("--holder",)),
        ("tag", "str", None, ("--tag", "-t")),
        ("parent", "str", None, ("--parent",)),
        *_COMMON,
        *_CLI,
    ),
}


class Call:
    def __init__(self, command: str, glob: dict[str, str]) -> None:
        self.command = command
        self.repo = glob.get("repo", ".")
        self.remote = glob.get("remote")
        self.branch = glob.get("branch")
        self.args: dict[str, Any] = {}


def parse(argv: list[str]) -> Call | None:
    """The call ``argv`` makes, or None where this module leaves it to the typer app."""
    glob: dict[str, str] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        name, eq, value = argv[i].partition("=")
        if argv[i] == "--no-pager":
            i += 1
            continue
        if name not in _GLOBAL or (not eq and i + 1 >= len(argv)):
            return None
        if not eq:
            i += 1
            value = argv[i]
        glob[_GLOBAL[name]] = value
        i += 1
    if i >= len(argv) or argv[i] not in SERVED:
        return None
    call = Call(argv[i], glob)
    params = PARAMS[call.command]
    flags = {f: (p[0], p[1]) for p in params for f in p[3]}
    call.args = {p[0]: p[2] for p in params}
    rest = argv[i + 1 :]
    while rest:
        if _option(call.args, flags, rest) is None:
            return None
    return call


def _option(args: dict[str, Any], flags: dict[str, tuple[str, str]], rest: list[str]) -> bool | None:
    """Take one option off ``rest`` into ``args``; None for what we do not parse."""
    arg = rest.pop(0)
    name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
    if name not in flags:
        return None
    key, kind = flags[name]
    if kind == "bool":
        if eq:
            return None
        args[key] = True
        return True
    if not eq:
        if not rest:
            return None
        value = rest.pop(0)
    if kind == "list":
        args[key] = [*(args[key] or []), value]
    elif kind == "int":
        if not value.isdigit():
            return None  # the typer app says what is wrong with it
        args[key] = int(value)
    else:
        args[key] = value
    return True


def serve(argv: list[str]) -> int | None:
    """Answer ``argv`` from the read index and return the exit status, or None."""
    call = parse(argv)
    if call is None:
        return None
    a = call.args
    if not a["as_json"] and (sys.stdout.isatty() or call.command == "board"):
        return None  # a page, colours and the pager; the board's panels
    if a["show_all"] and a["limit"] is not None:
        return None
    if a.get("state") and not set(a["state"]) <= set(_states()):
        return None
    try:
        out, err = _answer(call)
    except Exception:  # any doubt: the typer app answers, and says what went wrong
        return None
    if err:
        sys.stderr.write(err)
    sys.stdout.flush()
    sys.stdout.buffer.write(out)
    return 0


def _states() -> tuple[str, ...]:
    from .selection import STATES

    return STATES


def _answer(call: Call) -> tuple[bytes, str]:
    """What to print on stdout, and on stderr."""
    from . import readindex, selection

    a, limit = call.args, call.args["limit"]
    where = _warm(call) if a["offline"] else None
    repo = None
    if where is None:
        repo, where = _tip(call)
    path, tip = where
    exact = None  # the key of an answer kept whole: a listing without filters or limit
    filtered = a.get("state") or a.get("holder") or a.get("tag") or a.get("parent")
    if call.command != "board" and limit is None and not filtered:
        exact = f"{call.command}.{'json' if a['as_json'] else 'plain'}"
        hit = readindex.load_answer(path, exact, tip)
        if isinstance(hit, tuple) and len(hit) == 2 and isinstance(hit[0], bytes) and isinstance(hit[1], str):
            return hit
    if call.command == "ready":
        rows = readindex.load_answer(path, "ready.rows", tip)
        if isinstance(rows, tuple) and len(rows) == 2:
            out = _listing(call, tip, *rows)
            if exact:
                readindex.save_answer(path, exact, tip, out)
            return out
    idx = readindex.load(path)
    if idx is None or idx.commit != tip:
        if repo is None:
            repo, _ = _tip(call)  # the clone's tracking ref, read again by libgit2
        idx, _ = readindex.refresh(repo, tip, idx)
        readindex.save(path, idx)
    if call.command == "board":
        return _board(idx, selection.columns(idx.rows()), limit), ""
    if call.command == "ready":
        found = selection.ready(idx.rows(), idx.archived_done())
        readindex.save_answer(path, "ready.rows", tip, (found, idx.problems()))
    else:
        states = set(a["state"]) if a["state"] else None
        found = selection.listed(idx.rows(), states, a["holder"], a["tag"], a["parent"])
    out = _listing(call, tip, found, idx.problems())
    if exact:
        readindex.save_answer(path, exact, tip, out)
    return out


def _listing(call: Call, commit: str, rows: list[Row], problems: list[tuple[str, str, str]]) -> tuple[bytes, str]:
    limit = call.args["limit"]
    shown = rows if limit is None else rows[:limit]
    if call.args["as_json"]:
        body = b'"tasks": [' + b", ".join(r[9] for r in shown) + b"]"
        return _envelope(call.command, commit, problems, body, len(rows), shown), ""
    text, err = _plain(problems, shown, len(rows))
    return text.encode(), err


def _route_path(common: Path, gitdir: Path) -> Path:
    import zlib

    return common / "gitclaim" / f"route-{zlib.crc32(str(gitdir).encode()):08x}.json"


def _warm(call: Call) -> tuple[Path, str] | None:
    """Where the index is and the tip this clone last fetched, found with git's
    files alone (no libgit2); None when that cannot be told so."""
    from .git import files
    from .readindex import index_path

    if call.remote is not None or call.branch is not None:
        return None  # names from the command line: checked by the slow path
    dirs = files.git_dirs(call.repo)
    if dirs is None:
        return None
    gitdir, common = dirs
    try:
        route = json.loads(_route_path(common, gitdir).read_text())
    except (OSError, ValueError):
        return None
    if route.get("gitdir") != str(gitdir) or route.get("stamp") != files.config_stamp(gitdir, common):
        return None  # the configuration changed since: libgit2 reads it again
    remote, branch = route["remote"] or DEFAULTS[0], route["branch"] or DEFAULTS[1]  # checked when written
    tip = files.ref(common, f"refs/remotes/{remote}/{branch}")
    return None if tip is None else (index_path(common, remote, branch), tip)


def _tip(call: Call) -> tuple[Repo, tuple[Path, str]]:
    """The clone, where its index is, and the tip, through libgit2: fetched unless offline."""
    from .git import Repo, require
    from .readindex import index_path
    from .refnames import DEFAULT_BRANCH, DEFAULT_REMOTE, validate_branch, validate_remote

    repo = Repo(call.repo)
    configured = repo.config_get("gitclaim.remote"), repo.config_get("gitclaim.branch")
    remote = validate_remote(call.remote or configured[0] or DEFAULT_REMOTE)
    branch = validate_branch(call.branch or configured[1] or DEFAULT_BRANCH)
    t = repo.transport(remote, branch)
    from .compaction import guard

    t.rewrite_check = guard(t)
    tip = require(t.local_tip() if call.args["offline"] else t.fetch(), t.remote, t.branch)
    _remember_route(call.repo, repo.common_dir, configured)
    return repo, (index_path(repo.common_dir, remote, branch), tip)


def _remember_route(start: str, common: Path, configured: tuple[str | None, str | None]) -> None:
    """Note which remote and branch the configuration names, for :func:`_warm`,
    unless the configuration includes other files (their changes would go unseen)."""
    import os

    from .git import files
    from .refnames import validate_branch, validate_remote

    dirs = files.git_dirs(start)
    if dirs is None or dirs[1] != common.resolve():
        return
    stamp = files.config_stamp(*dirs)
    for entry in stamp[2:]:
        assert isinstance(entry, list)
        try:
            if entry[1] is not None and "include" in Path(entry[0]).read_text().lower():
                return
        except (OSError, UnicodeDecodeError):
            return
    path = _route_path(dirs[1], dirs[0])
    names = [validate_remote(configured[0]) if configured[0] else None]
    names.append(validate_branch(configured[1]) if configured[1] else None)
    text = json.dumps({"gitdir": str(dirs[0]), "stamp": stamp, "remote": names[0], "branch": names[1]})
    try:
        if path.exists() and path.read_text() == text:
            return
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:
        pass  # only the warm path's shortcut is lost


def _envelope(
    command: str, commit: str, found: list[tuple[str, str, str]], body: bytes, total: Any, shown: Any
) -> bytes:
    cut = total != len(shown) if isinstance(total, int) else any(total[s] != len(shown[s]) for s in total)
    problems = [{"path": p, "message": m, "code": c} for p, m, c in found]
    head = f'{{"ok": true, "command": {json.dumps(command)}, "result": {{'
    tail = (
        f', "problems": {json.dumps(problems, ensure_ascii=False)}, "commit": {json.dumps(commit)}, '
        f'"total": {json.dumps(total)}, "cut": {json.dumps(cut)}}}}}\n'
    )
    return head.encode() + body + tail.encode()


def _board(idx: Index, columns: dict[str, list[Row]], limit: int | None) -> bytes:
    shown = {s: rows if limit is None else rows[:limit] for s, rows in columns.items()}
    body = b", ".join(f'"{s}": ['.encode() + b", ".join(r[9] for r in rows) + b"]" for s, rows in shown.items())
    totals = {s: len(r) for s, r in columns.items()}
    return _envelope("board", idx.commit, idx.problems(), b'"columns": {' + body + b"}", totals, shown)


def _plain(problems: list[tuple[str, str, str]], shown: list[Row], total: int) -> tuple[str, str]:
    """What the renderer prints to a pipe: aligned rows; the rest on stderr."""
    from .plain import LISTING, aligned, cell, more

    if shown:
        text = aligned(LISTING, [(r[0], r[2], str(r[3]), r[5] or "", ",".join(r[7]), cell(r[8])) for r in shown])
    else:
        text = "no tasks\n" if total == 0 else "\n"
    notes = [more(len(shown), total)] if total > len(shown) else []
    notes += [f"warning: skipped {m}" for _, m, _ in problems]
    return text, "".join(n + "\n" for n in notes)
