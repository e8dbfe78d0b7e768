"""Golden tests: today's observable behaviour, pinned before the redesign.

What is pinned (files under tests/golden/):

- help/<command>.txt: ``--help`` of every CLI command and sub-command, rendered
  by rich at a fixed width, and the list of commands itself;
- mcp_tools.json: every MCP tool's name, title, description, input and output
  schema and annotations, and the server's instructions;
- script_json.txt / script_human.txt: one scripted run of every verb through the
  CLI (in-process, fixed clock, seed and agents), each step's exit code and
  output; script_log.txt: the commit log of the store branch afterwards;
- api.txt: signatures of Store's public methods and properties, the fields of
  the result dataclasses, ``gitclaim.__all__``;
- imports.txt: which gitclaim modules ``import gitclaim.cli`` /
  ``import gitclaim.hook`` load (heavy third-party packages: pinned in this file).

Regenerate after an intended change, then review ``git diff tests/golden``::

    GITCLAIM_GOLDEN_UPDATE=1 .venv/bin/pytest tests/test_golden.py -q

Without the variable every file is compared exactly; a mismatch shows a unified diff.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import os
import random
import re
import shlex
import subprocess
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import gitclaim
import gitclaim.cli as cli
import gitclaim.commands as commands
from gitclaim import Store
from tests.servers import Remote, clone, git, make_bare

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("GITCLAIM_GOLDEN_UPDATE") == "1"


def check_golden(name: str, actual: str, *, write: bool = True) -> None:
    """Compare ``actual`` with tests/golden/<name>, or write it there with GITCLAIM_GOLDEN_UPDATE=1
    (``write=False``: always compare, for a file another test writes)."""
    path = GOLDEN / name
    if UPDATE and write:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8", newline="\n")
        return
    assert path.exists(), f"tests/golden/{name} is missing; write it with GITCLAIM_GOLDEN_UPDATE=1"
    expected = path.read_text(encoding="utf-8")
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            fromfile=f"tests/golden/{name} (pinned)",
            tofile=f"tests/golden/{name} (now)",
        )
    )
    assert actual == expected, (
        f"tests/golden/{name} differs from today's behaviour (if intended: GITCLAIM_GOLDEN_UPDATE=1,"
        f" then review git diff):\n{diff}"
    )


# --- a deterministic terminal -----------------------------------------------------------


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """rich renders the same bytes on every machine: 100 columns, no colour, no tty."""
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.setenv("NO_COLOR", "1")
    for var in ("LINES", "FORCE_COLOR", "PY_COLORS", "GITHUB_ACTIONS", "TERMINAL_WIDTH", "TTY_COMPATIBLE",
                "TTY_INTERACTIVE", "CLICOLOR_FORCE", "COLORTERM", "JUPYTER_COLUMNS"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    # Normalisation: typer reads FORCE_COLOR/GITHUB_ACTIONS/TERMINAL_WIDTH once, when
    # typer.rich_utils is first imported (possibly by an earlier test, under CI's env).
    import typer.rich_utils

    monkeypatch.setattr(typer.rich_utils, "FORCE_TERMINAL", None)
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", None)
    # Normalisation: gitclaim's own module-level rich consoles (gitclaim.render today)
    # fixed their width and colour system when first imported, possibly by an earlier
    # test with another COLUMNS or a real terminal (pytest -s): reset them to the above.
    from rich.console import Console

    for mod_name, mod in list(sys.modules.items()):
        if mod_name == "gitclaim" or mod_name.startswith("gitclaim."):
            for value in list(vars(mod).values()):
                if isinstance(value, Console):
                    monkeypatch.setattr(value, "_width", None)
                    monkeypatch.setattr(value, "_height", None)
                    monkeypatch.setattr(value, "_color_system", None)
                    monkeypatch.setattr(value, "no_color", True)
                    monkeypatch.setattr(value, "_force_terminal", None)


# --- 1. --help of every command ---------------------------------------------------------

COMMANDS = (
    "access", "access grant", "access revoke", "add", "archive", "blocked", "board", "cancel", "claim", "compact",
    "demo", "done", "edit", "fail", "graph", "handoff", "heartbeat", "hooks", "hooks install", "init", "list", "log",
    "mcp",
    "note",
    "next", "ready", "reap", "release", "reopen", "reset", "restore", "resume", "retry", "review", "run", "show",
    "signers", "signers add", "signers list", "signers remove", "signers require", "stale", "verify", "wait", "watch",
    "who",
)  # fmt: skip


def discovered_commands() -> list[str]:
    """Every command and sub-command of the typer app, as "name" or "group sub"."""
    import typer.main

    out: list[str] = []

    def walk(group: Any, prefix: str) -> None:  # a click group (typer vendors its own click)
        for name, cmd in group.commands.items():
            out.append(f"{prefix}{name}")
            if hasattr(cmd, "commands"):
                walk(cmd, f"{prefix}{name} ")

    walk(typer.main.get_command(cli.commands()), "")
    return sorted(out)


def test_the_cli_has_exactly_the_pinned_commands() -> None:
    found = discovered_commands()
    assert found == sorted(COMMANDS), (
        f"lost: {sorted(set(COMMANDS) - set(found))}, new: {sorted(set(found) - set(COMMANDS))}"
    )
    pinned_files = {p.name for p in (GOLDEN / "help").glob("*.txt")}
    wanted = {_help_file(c) for c in ("", *COMMANDS)}
    if UPDATE:
        for stray in pinned_files - wanted:
            (GOLDEN / "help" / stray).unlink()
    else:
        assert pinned_files == wanted, f"help files without a command: {sorted(pinned_files - wanted)}"


def _help_file(command: str) -> str:
    return f"{command.replace(' ', '-') or 'gitclaim'}.txt"


@pytest.mark.parametrize("command", ["", *sorted(set(COMMANDS) | set(discovered_commands()))])
@pytest.mark.usefixtures("terminal")
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main([*command.split(), "--help"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), (code, err)
    check_golden(f"help/{_help_file(command)}", _rstrip_lines(out))


def _rstrip_lines(text: str) -> str:
    """Normalisation: rich pads lines with spaces to the terminal width; trailing
    blanks are not behaviour and would not survive an editor, so they are dropped."""
    return "".join(line.rstrip() + "\n" for line in text.splitlines())


# --- 2. the MCP tools -------------------------------------------------------------------

# The redesign adds these tools; no other tool may appear, and no pinned one change.
NEW_TOOLS_ALLOWED = {"board", "who", "blocked", "graph", "restore"}  # restore: issue 11 (a vanished branch)
TOOL_KEYS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")


def test_mcp_tools_and_instructions(path_remote: Remote, tmp_path: Path) -> None:
    import anyio
    from mcp import Client

    from gitclaim.mcp_server import build_server

    server = build_server(str(clone(path_remote, tmp_path / "mcp-clone")), agent="agent-a")

    async def ask() -> tuple[str | None, list[dict[str, Any]]]:
        async with Client(server) as c:
            listed = await c.list_tools()
            assert getattr(listed, "next_cursor", None) is None  # one page: all tools
            return c.instructions, [t.model_dump(mode="json", by_alias=True) for t in listed.tools]

    instructions, tools = anyio.run(ask)
    now = {t["name"]: {k: t.get(k) for k in TOOL_KEYS} for t in tools}
    assert len(now) == len(tools), "two tools with one name"
    if UPDATE:
        check_golden("mcp_tools.json", _json_text({"instructions": instructions, "tools": now}))
        return
    path = GOLDEN / "mcp_tools.json"
    assert path.exists(), "tests/golden/mcp_tools.json is missing; write it with GITCLAIM_GOLDEN_UPDATE=1"
    pinned = json.loads(path.read_text(encoding="utf-8"))
    missing = set(pinned["tools"]) - set(now)
    assert not missing, f"pinned tools gone: {sorted(missing)}"
    added = set(now) - set(pinned["tools"])
    assert added <= NEW_TOOLS_ALLOWED, f"tools nobody planned: {sorted(added - NEW_TOOLS_ALLOWED)}"
    # every pinned tool unchanged; the new ones are checked by their own tests
    kept = {name: now[name] for name in pinned["tools"] if name in now}
    check_golden("mcp_tools.json", _json_text({"instructions": instructions, "tools": kept}))


def _json_text(obj: object) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --- 3. a scripted run of every verb ----------------------------------------------------

START = datetime(2026, 1, 1, tzinfo=UTC)


class FakeClock:
    """Each call returns the current time, then moves it on by exactly one second."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        t = self.now
        self.now += timedelta(seconds=1)
        return t

    def advance(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    def reset(self) -> None:
        self.now = START


@pytest.fixture
def fixed_store(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The CLI's Store with a fixed clock and seed: the one seam to re-point after the redesign."""
    clock = FakeClock()
    # Every command that takes --agent gets one; a command that stopped passing it on
    # would act as this name (not as <user>-<host>, which differs per machine).
    monkeypatch.setenv("GITCLAIM_AGENT", "agent-fallback")

    def store() -> Store:
        g = commands._globals
        return Store(g.repo, remote=g.remote, branch=g.branch, clock=clock, rng=random.Random(7))

    monkeypatch.setattr(commands, "_store", store)
    return clock


BATCH_TOML = """\
[[task]]
id = "ship"
title = "Ship it"
depends_on = ["build", "docs"]
tags = ["release"]

[[task]]
id = "lease"
title = "A task claimed with a lease"
priority = 4

[[task]]
id = "drop"
title = "A task to cancel"
priority = 7
owner_team = "infra"

[[task]]
title = "An idea for later"
state = "someday"
"""

A, B, C = ("--agent", "agent-a"), ("--agent", "agent-b"), ("--agent", "agent-c")
ADVANCE = "advance"  # a step that moves the fake clock on, not a command

# Every verb, with the refusals an agent branches on. {batch} is the TOML file above.
SCRIPT: list[list[str]] = [
    ["init", *A],
    ["add", "Design the schema", "--id", "design", "--priority", "1", "--tag", "plan", "--tag", "core",
     "--description", "Tables, keys and the migration path.", "--acceptance", "reviewed by two people",
     "--acceptance", "migration tested", *A],
    ["add", "Build the store", "--id", "build", "--depends-on", "design", "-t", "code", *A],
    ["add", "Write the docs", "--id", "docs", "-p", "3", *B],
    ["add", "--file", "{batch}", *B],
    ["list"],
    ["list", "--state", "todo", "--state", "someday"],
    ["list", "--tag", "plan"],
    ["ready"],
    ["show", "design"],
    ["claim", "design", *A],
    ["claim", "design", *B],  # lost_race
    ["claim", "build", *B],  # blocked
    ["next", *B],
    ["release", "docs", *B],
    ["claim", "docs", *B],
    ["claim", "docs", *B],  # a re-claim by the holder: changed false
    ["handoff", "docs", "--to", "agent-c", *B],
    ["wait", "docs", "--for", "CI runner", *C],
    ["resume", "docs", *C],
    ["fail", "docs", "--reason", "flaky linker", *C],
    ["retry", "docs", *A],
    ["review", "design", *A],
    ["done", "design", *B],  # approval of a task in review, by another agent
    ["claim", "build", *B],
    ["retry", "design", *A],  # clears agent-b's claim on build, downstream
    ["claim", "drop", *C],
    ["reset", "drop", *A],
    ["cancel", "drop", *A],
    ["reopen", "drop", *B],
    ["edit", "ship", "--set", "title=Ship version 1", "--set", "priority=0", "--set", "tags=release,final", *A],
    ["edit", "drop", "--set", "state=backlog", *A],
    ["edit", "ship", "--set", "claim=agent-a", *A],  # owned field: bad_input
    ["show", "missing"],  # not_found
    ["show", "Bad ID!"],  # bad_input
    ["claim", "lease", "--ttl", "60", *C],
    ["heartbeat", *C],
    ["who", "--offline"],
    [ADVANCE, "3600"],
    ["stale", "--offline"],
    ["who", "--offline"],
    ["reap", *A],
    ["log"],
    ["log", "-n", "3"],
    ["log", "docs"],
    ["board"],
    ["who", "--offline"],
    ["blocked"],
    ["graph", "--format", "dot"],
    ["graph", "--format", "mermaid"],
    ["ready", "--offline"],
    ["verify"],
    ["access", "grant", "operator", "agent-c", *A],
    ["signers", "list", "--offline"],
    ["verify"],
    ["access", "grant", "pusher", "ci", "--as", "agent-b", *C],
    ["compact", *C],
    ["compact", *A],
    ["archive", "--done-before", "2026-01-01", *C],  # nothing finished before: no commit
    ["claim", "docs", *C],
    ["done", "docs", *C],
    [ADVANCE, "7200"],
    ["archive", "--done-before", "1h", "--dry-run", *C],
    ["archive", "--done-before", "1h", *B],  # not_allowed: agent-b is no operator
    ["archive", "--done-before", "1h", *C],
    ["claim", "docs", *A],  # not_claimable: archived
    ["list", "--state", "done"],
    ["log", "-n", "3"],
    ["show", "docs"],
    ["verify"],
]  # fmt: skip


@dataclass
class Run:
    transcript: str
    log: str


def run_script(root: Path, clock: FakeClock, capsys: pytest.CaptureFixture[str], *, as_json: bool) -> Run:
    """The whole script on a fresh path remote and clone under ``root``."""
    root.mkdir()
    remote = make_bare(root / "remote.git")
    work = clone(Remote(remote, str(remote)), root / "clone")
    batch = root / "batch.toml"
    batch.write_text(BATCH_TOML, encoding="utf-8")
    clock.reset()
    capsys.readouterr()
    lines: list[str] = []
    old_cwd = os.getcwd()
    os.chdir(work)
    try:
        for n, step in enumerate(SCRIPT, 1):
            if step[0] == ADVANCE:
                clock.advance(int(step[1]))
                lines += [f"### {n:02d} (the clock jumps {step[1]} s)", ""]
                continue
            args = [a.replace("{batch}", str(batch)) for a in step] + (["--json"] if as_json else [])
            code = cli.main(args)
            out, err = capsys.readouterr()
            lines += [f"### {n:02d} gitclaim {shlex.join(step)}", f"exit {code}"]
            if as_json:
                lines += _json_step(out, err)
            else:
                lines += ["[stdout]", *_rstrip_lines(out).splitlines(), "[stderr]", *_rstrip_lines(err).splitlines()]
            lines.append("")
    finally:
        os.chdir(old_cwd)
    # Normalisation: the temporary folder differs per run; nothing else needs replacing
    # (the clock, the seed and the agents are fixed, so even commit ids repeat).
    text = "\n".join(lines).replace(str(root), "<tmp>")
    return Run(text, _store_log(remote))


def _json_step(out: str, err: str) -> list[str]:
    """With --json: exactly one line on stdout, nothing on stderr. The line is shown
    indented (key order kept) for readable diffs; asserting it is exactly the
    compact dump of what it parses to pins its bytes too."""
    assert err == "", err
    assert out.endswith("\n") and out.count("\n") == 1, out
    obj = json.loads(out)
    assert out == json.dumps(obj, ensure_ascii=False) + "\n", out
    return json.dumps(obj, indent=2, ensure_ascii=False).splitlines()


def _store_log(remote: Path) -> str:
    """Every commit of the store branch and of the histories compactions archived,
    oldest first, and the other refs on the remote."""
    fmt = "%an <%ae> %aI%x00%cn <%ce> %cI%x00%B%x1e"
    raw = git(
        "log", "--reverse", "--date-order", f"--format={fmt}", "refs/heads/gitclaim", "--glob=refs/gitclaim/archive/*",
        cwd=remote,
    )  # fmt: skip
    lines: list[str] = []
    for n, rec in enumerate(r for r in raw.split("\x1e") if r.strip()):
        author, committer, message = rec.lstrip("\n").split("\x00")
        lines += [
            f"--- commit {n + 1}",
            f"author:    {author}",
            f"committer: {committer}",
            *message.rstrip().split("\n"),
        ]
    lines.append("--- refs on the remote")
    for ref in git("for-each-ref", "--format=%(refname)", cwd=remote).split():
        if ref == "refs/heads/gitclaim":
            lines.append(ref)
            continue
        about = git("log", "-1", "--format=%an <%ae> %aI | %B", ref, cwd=remote).strip()
        lines.append(f"{ref}: {about}")
    return "\n".join(lines) + "\n"


@pytest.mark.usefixtures("terminal")
def test_script_json(tmp_path: Path, fixed_store: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    first = run_script(tmp_path / "one", fixed_store, capsys, as_json=True)
    second = run_script(tmp_path / "two", fixed_store, capsys, as_json=True)
    # deterministic: the same script twice gives the same bytes, commit ids included
    assert second.transcript == first.transcript
    assert second.log == first.log
    check_golden("script_json.txt", first.transcript)
    check_golden("script_log.txt", first.log)


@pytest.mark.usefixtures("terminal")
def test_script_human(tmp_path: Path, fixed_store: FakeClock, capsys: pytest.CaptureFixture[str]) -> None:
    run = run_script(tmp_path / "human", fixed_store, capsys, as_json=False)
    check_golden("script_human.txt", run.transcript)
    # the human run did exactly what the --json run did (test_script_json writes this file)
    check_golden("script_log.txt", run.log, write=False)


# --- 4. the Python API ------------------------------------------------------------------


class _Raw:
    """An annotation shown as written in the source (no quotes, no module paths)."""

    def __init__(self, text: object) -> None:
        self.text = text if isinstance(text, str) else inspect.formatannotation(text)

    def __repr__(self) -> str:
        return str(self.text)


def _signature(fn: Callable[..., Any]) -> str:
    sig = inspect.signature(fn)
    params = [
        p if p.annotation is inspect.Parameter.empty else p.replace(annotation=_Raw(p.annotation))
        for p in sig.parameters.values()
    ]
    ret = sig.return_annotation
    return str(sig.replace(parameters=params, return_annotation=ret if ret is sig.empty else _Raw(ret)))


def _first_line(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else "(no docstring)"


def _fields(cls: type) -> list[str]:
    out = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f" = {f.default!r}"
        elif f.default_factory is not dataclasses.MISSING:
            default = f" = <factory {getattr(f.default_factory, '__name__', f.default_factory)}>"
        else:
            default = ""
        out.append(f"    {f.name}: {_Raw(f.type)!r}{default}")
    return out


def _api_text() -> str:
    lines = [f"gitclaim.__all__ = {sorted(gitclaim.__all__)!r}", ""]
    # Normalisation: a default that is a function (Store.clock's lambda) prints its address.
    lines += [re.sub(r" at 0x[0-9a-f]+>", ">", f"Store{_signature(Store)}"), f"  {_first_line(Store)}"]
    fields = {f.name for f in dataclasses.fields(Store)}
    results: dict[str, type] = {}
    for name in sorted(n for n in dir(Store) if not n.startswith("_")):
        member = inspect.getattr_static(Store, name)
        if name in fields:
            continue  # a field with a class-level default: shown in the signature above
        if isinstance(member, property):
            ann = member.fget.__annotations__.get("return") if member.fget else None
            lines.append(f"property {name}: {_Raw(ann)!r}")
            lines.append(f"  {_first_line(member)}" if member.__doc__ else "  (no docstring)")
        elif inspect.isfunction(member):
            lines.append(f"def {name}{_signature(member)}")
            lines.append(f"  {_first_line(member)}")
            ret = typing.get_type_hints(member).get("return")
            if dataclasses.is_dataclass(ret) and isinstance(ret, type):
                results[ret.__name__] = ret
        else:
            lines.append(f"attribute {name}: {type(member).__name__}")
    from gitclaim import results as results_mod

    for value in vars(results_mod).values():
        if isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == results_mod.__name__:
            results[value.__name__] = value
    lines += ["", "result dataclasses (gitclaim.results, and what Store's methods return):"]
    for name in sorted(results):
        cls = results[name]
        frozen = cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
        lines.append(f"  {name}{' (frozen)' if frozen else ''}")
        lines += _fields(cls)
    return "\n".join(lines) + "\n"


def test_python_api(path_remote: Remote, tmp_path: Path) -> None:
    text = _api_text()
    # public attributes an instance sets for itself (not on the class)
    store = Store(clone(path_remote, tmp_path / "api-clone"), agent="agent-a")
    fields = {f.name for f in dataclasses.fields(Store)}
    own = sorted(n for n in vars(store) if not n.startswith("_") and not hasattr(Store, n) and n not in fields)
    text += "\ninstance attributes set by __post_init__:\n" + "".join(f"  {n}\n" for n in own)
    check_golden("api.txt", text)


# --- 5. what the entry points import ----------------------------------------------------

HEAVY = ("anyio", "mcp", "pydantic", "pygit2", "rich", "typer")
# Pinned here, not in a golden file: start-up cost is a contract (pyproject, docs/design.md).
HEAVY_LOADED = {
    # The entry point loads the typer app only for what the fast read path leaves
    # to it; that path loads pygit2 only when the index must be brought up to date.
    "gitclaim.cli": set(),
    "gitclaim.commands": {"typer"},  # rich only for human output, pygit2 only once a Store opens
    "gitclaim.fastread": set(),
    "gitclaim.hook": {"pygit2"},  # a hook runs on every push: no CLI, no rich
}


def _loaded(module: str) -> tuple[list[str], set[str]]:
    code = (
        f"import json, sys, {module}\n"
        "print(json.dumps(sorted(n for n in sys.modules if n == 'gitclaim' or n.startswith('gitclaim.'))))\n"
        f"print(json.dumps([p for p in {list(HEAVY)!r} if p in sys.modules]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    ours, heavy = r.stdout.splitlines()
    return json.loads(ours), set(json.loads(heavy))


def test_imports_of_the_entry_points() -> None:
    text = ""
    for module in sorted(HEAVY_LOADED):
        ours, heavy = _loaded(module)
        assert heavy == HEAVY_LOADED[module], f"import {module} loads {sorted(heavy)}"
        text += f"import {module} loads:\n" + "".join(f"  {n}\n" for n in ours)
    check_golden("imports.txt", text)
