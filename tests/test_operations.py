"""The table of operations and the surfaces built from it cannot drift apart.

Every operation the table says a surface carries is there, with the same
parameters; the Store method of each takes exactly the table's parameters;
each renderer takes the type its operation returns; the docs are the ones
the table makes.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import anyio
import pytest

from gitclaim import audit, docs, render
from gitclaim.api import Store
from gitclaim.cli import commands
from gitclaim.errors import ANY_OPERATION, GitclaimError, catalogue
from gitclaim.operations import BY_NAME, OPERATIONS, RESULTS, Surface, carried

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _cli_commands() -> dict[str, typing.Any]:
    import typer.main

    group = typer.main.get_group(commands())
    out = dict(group.commands)  # type: ignore[attr-defined]
    for word, sub in list(out.items()):  # a group's subcommands by their words: "signers add"
        if hasattr(sub, "commands") and word != "hooks":
            out.update({f"{word} {name}": cmd for name, cmd in sub.commands.items()})
            del out[word]
    return out


def test_every_cli_operation_is_a_command_with_the_tables_parameters() -> None:
    commands = _cli_commands()
    for op in carried(Surface.CLI):
        assert op.command in commands, f"the CLI lacks {op.command}"
        if op.name == "hooks":
            continue  # a group: `hooks install`
        cmd = commands[op.command]
        names = {p.name for p in cmd.params}
        assert {p.name for p in op.params} <= names, op.name
        assert ("as_json" in names) is bool(op.result), f"{op.name}: --json goes with a result"
        assert cmd.help.startswith(op.summary), op.name
    extra = set(commands) - {op.command for op in OPERATIONS}
    assert not extra, f"CLI commands missing from the table: {extra}"


def test_every_mcp_operation_is_a_tool_with_the_tables_parameters(tmp_path: Path) -> None:
    pytest.importorskip  # noqa: B018 - the mcp extra is part of the test extra: never skipped
    from gitclaim.mcp_server import build_server
    from tests.servers import Remote, clone, make_bare

    bare = make_bare(tmp_path / "r.git")
    where = clone(Remote(str(bare), bare), tmp_path / "c")
    server = build_server(str(where), agent="a1")
    tools = {t.name: t for t in anyio.run(server.list_tools)}
    want = {op.name for op in carried(Surface.MCP)}
    assert set(tools) == want
    for op in carried(Surface.MCP):
        props = tools[op.name].input_schema["properties"]
        assert list(props) == [p.mcp_name for p in op.params], op.name
        required = tools[op.name].input_schema.get("required", [])
        assert required == [p.mcp_name for p in op.params if p.required], op.name
        assert (tools[op.name].description or "").startswith(op.summary), op.name
        for err in op.all_errors():
            assert f"- {err.code}:" in (tools[op.name].description or ""), (op.name, err.code)
    for read in ("board", "who", "blocked", "graph", "show", "list", "ready", "log", "stale"):
        assert read in tools, f"every read view is a tool: {read}"


@pytest.mark.parametrize("op", carried(Surface.API), ids=lambda op: op.name)
def test_the_store_method_takes_exactly_the_tables_parameters(op: typing.Any) -> None:
    method = getattr(Store, op.name)
    sig = inspect.signature(method)
    params = [p for p in sig.parameters.values() if p.name != "self" and p.name != "history_limit"]
    assert [p.name for p in params] == [p.name for p in op.params], op.name
    for want, got in zip(op.params, params, strict=True):
        assert (got.default is inspect.Parameter.empty) is want.required, (op.name, want.name)
        if not want.required and want.default is not None:
            assert got.default == want.default, (op.name, want.name)


@pytest.mark.parametrize("op", [op for op in OPERATIONS if op.result], ids=lambda op: op.name)
def test_each_renderer_takes_what_its_operation_returns(op: typing.Any) -> None:
    assert op.result in RESULTS
    from gitclaim import demo, install, results, views

    renderer = render.RENDERERS[op.result]
    names = {**vars(audit), **vars(demo), **vars(install), **vars(results), **vars(views)}
    hints = typing.get_type_hints(renderer, localns=names)
    arg = next(iter(inspect.signature(renderer).parameters))
    if Surface.API in op.surfaces:
        returned = typing.get_type_hints(getattr(Store, op.name))["return"]
        assert hints[arg] == returned, (op.name, hints[arg], returned)  # Iterator[Entry]: equal, not one object
    else:
        assert hints[arg] is not typing.Any, op.name


@pytest.mark.parametrize("name", ["cli.md", "lifecycle.md"])
def test_the_generated_parts_of_the_docs_are_what_the_code_makes(name: str) -> None:
    text = (DOCS / name).read_text()
    assert "<!-- generated: " in text
    assert docs.render(text) == text, "run: python -m gitclaim.docs"


def test_docs_cli_md_names_every_command() -> None:
    text = (DOCS / "cli.md").read_text()
    for op in OPERATIONS:
        if Surface.CLI in op.surfaces:
            assert f"| `{docs.usage(op)}" in text or op.name in ("hooks",), op.name


def test_every_error_has_a_meaning_and_a_distinct_exit_status() -> None:
    classes = catalogue()
    assert len({int(c.exit_code) for c in classes}) == len(classes)
    assert len({c.code for c in classes}) == len(classes)
    for c in classes:
        assert c.meaning and not c.meaning.endswith("."), c.code
    assert GitclaimError in ANY_OPERATION


def test_operation_names_are_unique_and_in_the_table_once() -> None:
    assert len(BY_NAME) == len(OPERATIONS)
    for op in OPERATIONS:
        assert op.custom <= op.surfaces, op.name


RECORDS = [
    audit.Record("claim", "a", "t", "todo", "active", lease_seconds=60),
    audit.Record("takeover", "b", "t", "active", "active", previous_holder="a"),
    audit.Record("add", "a", to_state="todo", added=("x", "y")),
    audit.Record("init", "a", schema="1"),
    audit.Record("heartbeat", "a", at="2026-01-01T00:00:00Z"),
    audit.Record("reap", "a", cleared=(audit.Cleared("x", "b", "expired"), audit.Cleared("y", "c", "silent"))),
    audit.Record("retry", "a", "r", "failed", "todo", cleared=(audit.Cleared("d", "b"),)),
    audit.Record("edit", "a", "r", "todo", "todo", fields=("priority", "title")),
    audit.Record("handoff", "a", "r", "active", "active", previous_holder="a", to_agent="b"),
    audit.Record("wait", "a", "r", "active", "waiting", note="the CI"),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.op)
def test_an_audit_record_reads_back_as_written(record: audit.Record) -> None:
    msg = audit.write(f"{record.op} something", record)
    assert audit.read(msg) == record
    assert audit.entry("c" * 40, __import__("datetime").datetime.now(), "a", msg).tasks == record.tasks


def test_a_message_without_op_and_agent_is_no_record() -> None:
    assert audit.read("a commit made by hand\n") is None
    assert audit.read("x\n\nGitclaim-Op: claim\n") is None


# --- the documented shapes are the real ones ------------------------------------------


def _keys(shape: str) -> dict[str, str]:
    """The top-level keys of a documented shape ``{a, b: [x], c: {y}}`` and what each holds."""
    body = shape.strip()
    assert body.startswith("{"), shape
    depth, part, parts = 0, "", []
    for ch in body[1 : body.rindex("}")]:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(part)
            part = ""
        else:
            part += ch
    parts.append(part)
    out = {}
    for p in parts:
        key, _, value = p.strip().partition(":")
        out[key.strip()] = value.strip()
    return out


def _check(value: object, holds: str, where: str) -> None:
    from gitclaim.operations import TERMS

    term = holds.strip("[]").strip()
    if holds.startswith("[") and isinstance(value, list):
        for item in value:
            _check(item, term, where)
    elif term in TERMS and isinstance(value, dict):
        assert set(value) == set(_keys(TERMS[term].split(":")[0] if term in ("problem", "move") else TERMS[term])), (
            where,
            term,
        )
    elif holds.startswith("{") and isinstance(value, dict) and ":" not in holds.split(",")[0]:
        assert set(value) <= set(_keys(holds)) | {"..."}, (where, holds)


def test_every_result_has_the_documented_shape() -> None:
    """Against the real output of every command, pinned by tests/golden/script_json.txt."""
    import json

    text = (Path(__file__).parent / "golden" / "script_json.txt").read_text()
    seen = set()
    for block in ("\n" + text).split("\n### ")[1:]:
        if "\n{" not in block:
            continue  # a step whose stdout is not one object (none were, when this was written)
        body = block[block.index("\n{") :]
        env = json.loads(body)
        if not env["ok"]:
            continue
        op = BY_NAME[env["command"]]
        shape, _ = RESULTS[op.result]
        keys = _keys(shape)
        assert set(env["result"]) == set(keys), (op.name, sorted(env["result"]), sorted(keys))
        for key, holds in keys.items():
            _check(env["result"][key], holds, f"{op.name}.{key}")
        seen.add(op.result)
    # restore: test_vanished; ran (its seconds vary) and watched (endless): test_run
    assert seen >= set(RESULTS) - {"installed", "demo", "restore", "ran", "watched"}, set(RESULTS) - seen
