"""Notes, results and epics end to end: real clones of a bare remote served by
git daemon with the server hook, the CLI as its own process, plain git for
hand edits, and the MCP server in-process."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gitclaim import Store
from gitclaim.ids import task_path
from tests.conftest import repo_name, run_cli
from tests.servers import GIT, GitDaemon, Remote, clone, git


@pytest.fixture
def served(git_daemon: GitDaemon, tmp_path: Path) -> Remote:
    """A remote over git daemon whose pre-receive hook runs the validator."""
    remote = git_daemon.remote(repo_name(tmp_path, "n"))
    r = run_cli("hooks", "install", "--server", str(remote.path), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return remote


def cli(wc: Path, *args: str, agent: str = "alice") -> dict[str, Any]:
    r = run_cli(*args, "--json", cwd=wc, env={"GITCLAIM_AGENT": agent})
    out: dict[str, Any] = json.loads(r.stdout)
    assert out["ok"], r.stdout + r.stderr
    return out["result"]  # type: ignore[no-any-return]


def git_as(agent: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_"))}
    who = ("-c", f"user.name={agent}", "-c", f"user.email={agent}@agents.invalid")
    return subprocess.run([GIT, *who, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


EPIC = """
[[task]]
id = "epic"
title = "Ship search"

[[task]]
id = "index"
title = "Build the index"
parent = "epic"

[[task]]
id = "query"
title = "Query it"
parent = "epic"
depends_on = ["index"]
"""


def test_notes_results_and_parents_survive_every_operation(served: Remote, tmp_path: Path) -> None:
    wc = clone(served, tmp_path / "alice")
    Store(wc, agent="admin").init()
    (tmp_path / "epic.toml").write_text(EPIC)
    added = cli(wc, "add", "--file", str(tmp_path / "epic.toml"))
    assert [t["parent"] for t in added["tasks"]] == [None, "epic", "epic"]
    assert len({cli(wc, "log")["entries"][0]["commit"], added["commit"]}) == 1  # one commit for all three

    s = {a: Store(clone(served, tmp_path / a), agent=a) for a in ("bob", "carol", "dave")}
    cli(wc, "note", "index", "the old index is in /tmp/x")
    steps: list[Callable[[], object]] = [
        lambda: s["bob"].claim("index", ttl=600),
        lambda: s["carol"].note("index", "bob: watch out for unicode\nsecond line"),
        lambda: s["bob"].handoff("index", "dave"),
        lambda: s["dave"].release("index"),
        lambda: s["bob"].claim("index"),
        lambda: s["bob"].wait("index", "the CI runner"),
        lambda: s["bob"].resume("index"),
        lambda: s["bob"].done("index", result="https://example.invalid/pr/12\nmerged as abc123"),
        lambda: s["carol"].retry("index"),
        lambda: s["bob"].claim("index"),
        lambda: s["carol"].reset("index"),
        lambda: s["carol"].edit("index", {"title": "Build the search index", "priority": "1"}),
        lambda: s["bob"].claim("index"),
        lambda: s["bob"].review("index"),
        lambda: s["carol"].reopen("index"),
        lambda: s["carol"].cancel("index"),
    ]
    for n, step in enumerate(steps):
        step()
        t = s["carol"].show("index").task
        assert t.parent == "epic", n
        assert [x.by for x in t.notes] == ["alice", "carol"][: 1 if n == 0 else 2], n
        last = "the old index is in /tmp/x" if n == 0 else "bob: watch out for unicode\nsecond line"
        assert t.notes[-1].text == last
        if n >= 7:
            assert t.result is not None and t.result.by == "bob", n
            assert t.result.text == "https://example.invalid/pr/12\nmerged as abc123"
    assert s["carol"].verify().ok

    log = cli(wc, "log", "index")["entries"]
    ops = [e["op"] for e in reversed(log)]
    assert ops[:3] == ["add", "note", "claim"] and ops.count("note") == 2
    [done] = [e for e in log if e["op"] == "done"]
    assert done["trailers"]["Result"] == ["https://example.invalid/pr/12 merged as abc123"]
    human = run_cli("log", "index", cwd=wc).stdout
    assert "note:" in human and "result: https://example.invalid/pr/12" in human


def test_epics_in_show_list_board_and_graph(served: Remote, tmp_path: Path) -> None:
    wc = clone(served, tmp_path / "alice")
    Store(wc, agent="admin").init()
    (tmp_path / "epic.toml").write_text(EPIC)
    cli(wc, "add", "--file", str(tmp_path / "epic.toml"))
    cli(wc, "add", "Loose end", "--id", "loose")
    cli(wc, "claim", "index", agent="bob")

    view = cli(wc, "show", "epic")
    assert view["children"] == [
        {"id": "index", "state": "active", "title": "Build the index"},
        {"id": "query", "state": "todo", "title": "Query it"},
    ]
    text = run_cli("show", "epic", cwd=wc).stdout
    assert "children (0 of 2 done or cancelled)" in text and "index" in text
    assert "parent" in run_cli("show", "query", cwd=wc).stdout
    for extra in ((), ("--offline",)):  # answered by the typer app, then from the warm read index
        listed = cli(wc, "list", "--parent", "epic", *extra)
        assert [t["id"] for t in listed["tasks"]] == ["index", "query"]
    assert cli(wc, "list", "--parent", "loose")["tasks"] == []
    board = run_cli("board", cwd=wc, env={"COLUMNS": "200"}).stdout
    assert "epic:" in board
    mermaid = cli(wc, "graph")["text"]
    assert '["epic"]' in mermaid and "subgraph" in mermaid
    dot = cli(wc, "graph", "--format", "dot")["text"]
    assert 'subgraph "cluster_epic"' in dot
    # the parent is a task like any other (docs/lifecycle.md): claimable while its children are open
    assert cli(wc, "claim", "epic", agent="carol")["to"] == "active"

    # a parent must exist and must not loop, through the CLI too
    bad = run_cli("add", "Orphan", "--parent", "nowhere", "--json", cwd=wc)
    err = json.loads(bad.stdout)["error"]
    assert bad.returncode == 2 and err["code"] == "bad_input"
    assert "neither in the store nor in this batch" in err["message"]
    loop = run_cli("edit", "epic", "--set", "parent=index", "--json", cwd=wc)
    assert "parent cycle: epic -> index -> epic" in json.loads(loop.stdout)["error"]["message"]
    cli(wc, "edit", "query", "--set", "parent=")
    assert cli(wc, "show", "query")["task"]["parent"] is None


def test_done_with_a_result_file_and_notes_over_mcp(served: Remote, tmp_path: Path) -> None:
    import anyio

    from gitclaim.mcp_server import build_server

    wc = clone(served, tmp_path / "alice")
    Store(wc, agent="admin").init()
    cli(wc, "add", "Write the report", "--id", "report")
    cli(wc, "claim", "report")
    (tmp_path / "result.md").write_text("Report: docs/report.md\n\n- 3 findings\n")
    both = run_cli("done", "report", "--result", "x", "--result-file", str(tmp_path / "result.md"), "--json", cwd=wc)
    assert json.loads(both.stdout)["error"]["code"] == "bad_input"
    out = cli(wc, "done", "report", "--result-file", str(tmp_path / "result.md"))
    assert out["task"]["result"]["text"] == "Report: docs/report.md\n\n- 3 findings"
    assert "- 3 findings" in run_cli("show", "report", cwd=wc).stdout

    server = build_server(str(wc), agent="mcp-agent")

    async def calls() -> tuple[Any, Any, Any]:
        tools = {t.name: t for t in await server.list_tools()}
        assert "note" in tools and "text" in tools["note"].input_schema["properties"]
        noted = await server.call_tool("note", {"task_id": "report", "text": "reviewed over MCP"})
        shown = await server.call_tool("show", {"task_id": "report"})
        empty = await server.call_tool("note", {"task_id": "report", "text": "  "})
        return noted, shown, empty

    noted, shown, empty = anyio.run(calls)
    assert noted.structured_content["result"]["op"] == "note"
    notes = shown.structured_content["result"]["task"]["notes"]
    assert [(n["by"], n["text"]) for n in notes] == [("mcp-agent", "reviewed over MCP")]
    assert empty.is_error and empty.structured_content["error"]["code"] == "bad_input"


def test_the_server_hook_refuses_a_plain_push_that_rewrites_a_note(served: Remote, tmp_path: Path) -> None:
    admin = clone(served, tmp_path / "admin")
    s = Store(admin, agent="alice")
    s.init()
    s.add("Noted task", task_id="noted")
    s.note("noted", "the first finding")
    wc = tmp_path / "wc"
    git("clone", "-q", "-b", "gitclaim", served.url, str(wc))
    path = wc / task_path("noted")
    original = path.read_text()
    before = served.ref()

    def push_edit(text: str, agent: str = "mallory") -> subprocess.CompletedProcess[str]:
        path.write_text(text)
        assert git_as(agent, "commit", "-qam", "hand edit", cwd=wc).returncode == 0
        r = git_as(agent, "push", "origin", "HEAD:gitclaim", cwd=wc)
        if r.returncode != 0:
            git("reset", "-q", "--hard", "HEAD~1", cwd=wc)
        return r

    rewritten = push_edit(original.replace("the first finding", "nothing found"))
    assert rewritten.returncode != 0
    assert "notes are never rewritten or removed; note 1 (by alice" in rewritten.stderr
    dropped = push_edit(original[: original.index("[[notes]]")])
    assert dropped.returncode != 0 and "[notes]" in dropped.stderr
    malformed = push_edit(original + '\n[[notes]]\nat = 2026-01-01T00:00:00Z\ntext = "no author"\n')
    assert malformed.returncode != 0 and "must be a table of exactly at, by and text" in malformed.stderr
    assert served.ref() == before  # nothing of those landed

    # appending a note by hand, as its own author, is a note like gitclaim's own
    note = '\n[[notes]]\nat = 2026-03-01T12:00:00Z\nby = "mallory"\ntext = """\nby hand,\non two lines"""\n'
    ok = push_edit(original + note)
    assert ok.returncode == 0, ok.stderr
    t = s.show("noted").task
    assert [(n.by, n.text) for n in t.notes] == [("alice", "the first finding"), ("mallory", "by hand,\non two lines")]
    assert s.log("noted").entries[0].op == "note"
    # a hand edit of another field keeps the notes as they are: an edit
    renamed = push_edit(path.read_text().replace('title = "Noted task"', 'title = "Renamed by hand"'))
    assert renamed.returncode == 0, renamed.stderr
    t = s.show("noted").task
    assert t.title == "Renamed by hand" and len(t.notes) == 2
    assert s.log("noted").entries[0].op == "edit"
    assert s.verify().ok
