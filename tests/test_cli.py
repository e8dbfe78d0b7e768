"""The command line, driven in-process through ``gitclaim.cli.main`` (and a few real
processes): the ``--json`` shapes, the exit codes, human output, batch adds.

Real clones of a real bare repository; nothing of git is mocked.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gitclaim.cli import main
from gitclaim.ids import task_path
from tests.conftest import run_cli
from tests.servers import Remote, git

ERROR_KEYS = {"code", "exit", "message", "details"}
TASK_KEYS = {
    "id", "title", "state", "priority", "depends_on", "tags", "description",
    "acceptance", "created_at", "created_by", "claim", "waiting_for", "fail_reason", "extra",
    "parent", "result", "notes",
}  # fmt: skip
ENTRY_KEYS = {
    "commit",
    "time",
    "author",
    "subject",
    "op",
    "agent",
    "tasks",
    "from",
    "to",
    "trailers",
    "moves",
    "violations",
}


@dataclass
class Env:
    remote: Remote
    one: Path  # clone of agent-1
    two: Path  # clone of agent-2
    capsys: pytest.CaptureFixture[str]

    def run(self, *args: str, where: Path | None = None) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["-C", str(where or self.one), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str, where: Path | None = None) -> tuple[int, dict[str, Any]]:
        code, out, _err = self.run(*args, "--json", where=where)
        return code, one_json(out)

    def ok(self, *args: str, where: Path | None = None) -> dict[str, Any]:
        code, obj = self.json(*args, where=where)
        assert code == 0, obj
        assert obj["ok"] is True
        assert set(obj) == {"ok", "command", "result"}
        return obj["result"]  # type: ignore[no-any-return]

    def fail(self, expected_exit: int, *args: str, where: Path | None = None) -> dict[str, Any]:
        code, obj = self.json(*args, where=where)
        assert code == expected_exit, obj
        return error_of(obj, expected_exit)

    def tip(self) -> str | None:
        return self.remote.ref()

    def count(self) -> int:
        return int(git("rev-list", "--count", "gitclaim", cwd=self.remote.path).strip())


def one_json(out: str) -> dict[str, Any]:
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected exactly one JSON line on stdout, got: {out!r}"
    obj = json.loads(lines[0])
    assert isinstance(obj, dict)
    return obj


def error_of(obj: dict[str, Any], expected_exit: int) -> dict[str, Any]:
    assert obj["ok"] is False
    assert set(obj) == {"ok", "command", "error"}
    err = obj["error"]
    assert set(err) >= ERROR_KEYS, err
    assert err["exit"] == expected_exit
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["details"], dict)
    return err  # type: ignore[no-any-return]


@pytest.fixture
def env(path_remote: Remote, make_clone: Callable[[Remote, str], Path], capsys: pytest.CaptureFixture[str]) -> Env:
    """Two clones of one initialised store; each names its agent in its git config."""
    one = make_clone(path_remote, "agent-1")
    two = make_clone(path_remote, "agent-2")
    git("config", "gitclaim.agent", "agent-1", cwd=one)
    git("config", "gitclaim.agent", "agent-2", cwd=two)
    e = Env(path_remote, one, two, capsys)
    assert e.run("init")[0] == 0
    return e


# --- the shapes of every command -------------------------------------------------------


def test_init_json_shape_and_attaching_a_second_clone(
    path_remote: Remote, make_clone: Callable[[Remote, str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    a = make_clone(path_remote, "a")
    b = make_clone(path_remote, "b")
    assert main(["-C", str(a), "init", "--agent", "admin", "--json"]) == 0
    obj = one_json(capsys.readouterr().out)
    assert obj["ok"] is True and obj["command"] == "init"
    r = obj["result"]
    assert set(r) == {"remote", "branch", "commit", "created"}
    assert r == {"remote": "origin", "branch": "gitclaim", "commit": path_remote.ref(), "created": True}
    assert main(["-C", str(b), "init", "--agent", "other", "--json"]) == 0
    r2 = one_json(capsys.readouterr().out)["result"]
    assert r2["created"] is False and r2["commit"] == r["commit"]
    assert git("config", "gitclaim.branch", cwd=b).strip() == "gitclaim"


def test_every_command_json_shape(env: Env) -> None:
    start = env.count()

    added = env.ok("add", "Fix login", "--id", "fix-login", "-p", "1", "-t", "web", "--acceptance", "works")
    assert set(added) == {"tasks", "commit", "retries"}
    assert added["commit"] == env.tip() and added["retries"] == 0
    (t,) = added["tasks"]
    assert set(t) == TASK_KEYS
    assert t["id"] == "fix-login" and t["state"] == "todo" and t["priority"] == 1
    assert t["tags"] == ["web"] and t["acceptance"] == ["works"] and t["created_by"] == "agent-1"
    env.ok("add", "Write docs", "--id", "docs", "-d", "fix-login")

    for cmd in ("list", "ready"):
        listing = env.ok(cmd)
        assert set(listing) == {"tasks", "problems", "commit", "total", "cut"}
        assert listing["problems"] == [] and listing["commit"] == env.tip()
        assert all(set(x) == TASK_KEYS for x in listing["tasks"])
    assert [x["id"] for x in env.ok("list")["tasks"]] == ["fix-login", "docs"]
    assert [x["id"] for x in env.ok("ready")["tasks"]] == ["fix-login"]

    shown = env.ok("show", "docs")
    assert set(shown) == {
        "task",
        "path",
        "archived",
        "blockers",
        "children",
        "history",
        "history_cut",
        "commit",
        "fetched",
    }
    assert shown["path"] == task_path("docs")
    assert shown["blockers"] == [{"id": "fix-login", "state": "todo"}]
    assert [h["op"] for h in shown["history"]] == ["add"]
    assert all(set(h) == ENTRY_KEYS for h in shown["history"])

    claimed = env.ok("claim", "fix-login")
    assert set(claimed) == {"op", "task", "from", "to", "commit", "changed", "retries", "previous_holder", "also"}
    assert claimed["previous_holder"] is None and claimed["also"] == []
    assert claimed["op"] == "claim" and claimed["from"] == "todo" and claimed["to"] == "active"
    assert claimed["changed"] is True and claimed["commit"] == env.tip()
    assert claimed["task"]["claim"]["holder"] == "agent-1"

    again = env.ok("claim", "fix-login")
    assert again["changed"] is False and again["commit"] is None
    assert again["task"]["claim"] == claimed["task"]["claim"]  # the original claimed-at is kept

    released = env.ok("release", "fix-login")
    assert released["op"] == "release" and released["to"] == "todo" and released["task"]["claim"] is None

    nxt = env.ok("next", where=env.two)
    assert nxt["op"] == "next" and nxt["task"]["id"] == "fix-login" and nxt["task"]["claim"]["holder"] == "agent-2"

    finished = env.ok("done", "fix-login", where=env.two)
    assert finished["op"] == "done" and finished["from"] == "active" and finished["to"] == "done"
    assert finished["commit"] == env.tip()

    log = env.ok("log")
    assert set(log) == {"entries", "cut", "commit", "total", "fetched"}
    assert all(set(e) == ENTRY_KEYS for e in log["entries"])
    assert [e["op"] for e in log["entries"]] == ["done", "claim", "release", "claim", "add", "add", "init"]
    assert log["entries"][0]["agent"] == "agent-2" and log["entries"][0]["tasks"] == ["fix-login"]
    only = env.ok("log", "docs")
    assert [e["op"] for e in only["entries"]] == ["add"]
    assert len(env.ok("log", "-n", "2")["entries"]) == 2

    # one commit per change: 2 adds, claim, release, next, done (the re-claim wrote nothing)
    assert env.count() == start + 6


def test_json_goes_only_to_stdout_and_is_one_line(env: Env) -> None:
    code, out, err = env.run("add", "x", "--id", "x", "--json")
    assert code == 0 and err == ""
    assert out.count("\n") == 1
    code, out, err = env.run("claim", "nope", "--json")
    assert code == 3 and err == ""
    assert out.count("\n") == 1


def test_offline_reads_do_not_fetch(env: Env) -> None:
    env.ok("add", "x", "--id", "x")
    env.ok("add", "y", "--id", "y", where=env.two)
    # clone one has not fetched since agent-2 added y
    assert [t["id"] for t in env.ok("list", "--offline")["tasks"]] == ["x"]
    assert [t["id"] for t in env.ok("list")["tasks"]] == ["x", "y"]


# --- exit codes -----------------------------------------------------------------------------


def test_lost_race_exits_4_and_names_the_holder(env: Env) -> None:
    env.ok("add", "x", "--id", "x")
    won = env.ok("claim", "x", where=env.two)
    before = env.tip()
    err = env.fail(4, "claim", "x")
    assert err["code"] == "lost_race"
    assert err["details"]["holder"] == "agent-2"
    assert err["details"]["commit"] == won["commit"]
    assert "agent-2" in err["message"]
    assert env.tip() == before


def test_not_claimable_exits_5_naming_the_state(env: Env) -> None:
    env.ok("add", "x", "--id", "x")
    env.ok("claim", "x")
    env.ok("done", "x")
    err = env.fail(5, "claim", "x", where=env.two)
    assert err["code"] == "not_claimable" and err["details"]["state"] == "done"
    assert "done" in err["message"]


def test_release_of_a_task_not_active_exits_5(env: Env) -> None:
    env.ok("add", "x", "--id", "x")
    assert env.fail(5, "release", "x")["details"]["state"] == "todo"
    assert env.fail(5, "done", "x")["code"] == "not_claimable"


def test_blocked_exits_6_listing_blockers(env: Env) -> None:
    env.ok("add", "base", "--id", "base")
    env.ok("add", "top", "--id", "top", "-d", "base")
    before = env.tip()
    err = env.fail(6, "claim", "top")
    assert err["code"] == "blocked"
    assert err["details"]["blockers"] == [{"id": "base", "state": "todo"}]
    assert "base (todo)" in err["message"]
    assert env.tip() == before


def test_next_with_nothing_ready_exits_7(env: Env) -> None:
    err = env.fail(7, "next")
    assert err["code"] == "nothing_ready"
    env.ok("add", "x", "--id", "x")
    env.ok("claim", "x")
    err = env.fail(7, "next", where=env.two)
    assert err["details"] == {"tasks": 1, "held": 1}


@pytest.mark.parametrize("cmd", ["claim", "show", "release", "done"])
def test_unknown_task_exits_3(env: Env, cmd: str) -> None:
    err = env.fail(3, cmd, "no-such-task")
    assert err["code"] == "not_found" and "no-such-task" in err["message"]


def test_log_of_an_unknown_task_is_empty_not_an_error(env: Env) -> None:
    assert env.ok("log", "no-such-task")["entries"] == []


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["claim", "../x"], id="claim-traversal"),
        pytest.param(["claim", "Upper"], id="claim-uppercase"),
        pytest.param(["show", "a b"], id="show-space"),
        pytest.param(["add", "t", "--id", "bad/id"], id="add-slash"),
        pytest.param(["add", "t", "--id", "y", "-p", "10"], id="add-priority"),
        pytest.param(["add", "   "], id="add-blank-title"),
        pytest.param(["add"], id="add-no-title"),
        pytest.param(["add", "t", "-d", "missing-dep"], id="add-unknown-dep"),
        pytest.param(["claim", "x", "--agent", "bad name"], id="bad-agent"),
        pytest.param(["claim", "x", "--agent", "bob\n"], id="agent-trailing-newline"),
        pytest.param(["list", "--state", "doing"], id="list-unknown-state"),
    ],
)
def test_bad_input_exits_2_and_changes_nothing(env: Env, args: list[str]) -> None:
    env.ok("add", "x", "--id", "x")
    before = env.tip()
    err = env.fail(2, *args)
    assert err["code"] == "bad_input"
    assert env.tip() == before


def test_not_holder_exits_13(env: Env) -> None:
    env.ok("add", "x", "--id", "x")
    env.ok("claim", "x")
    before = env.tip()
    for cmd in ("release", "done"):
        err = env.fail(13, cmd, "x", where=env.two)
        assert err["code"] == "not_holder"
        assert err["details"]["holder"] == "agent-1" and err["details"]["agent"] == "agent-2"
    assert env.tip() == before


def test_already_exists_exits_14(env: Env) -> None:
    env.ok("add", "x", "--id", "x")
    before = env.tip()
    err = env.fail(14, "add", "again", "--id", "x", where=env.two)
    assert err["code"] == "already_exists" and err["details"]["task"] == "x"
    assert env.tip() == before


def test_not_initialized_exits_11(
    path_remote: Remote,
    make_clone: Callable[[Remote, str], Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITCLAIM_AGENT", "agent-1")
    c = make_clone(path_remote, "fresh")
    for args in (["claim", "x"], ["list"], ["ready"], ["next"], ["add", "t"], ["show", "x"], ["log"]):
        assert main(["-C", str(c), *args, "--json"]) == 11
        err = error_of(one_json(capsys.readouterr().out), 11)
        assert err["code"] == "not_initialized"
    assert path_remote.ref() is None


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_remote_unreachable_exits_8(
    tmp_path: Path,
    make_clone: Callable[[Remote, str], Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITCLAIM_AGENT", "agent-1")
    c = make_clone(Remote(tmp_path / "x.git", f"git://127.0.0.1:{_closed_port()}/x.git"), "lonely")
    for args in (["claim", "x"], ["list"], ["init"], ["add", "t"], ["next"]):
        assert main(["-C", str(c), *args, "--json"]) == 8
        err = error_of(one_json(capsys.readouterr().out), 8)
        assert err["code"] == "remote_unreachable"
        assert "127.0.0.1" in err["message"]


def test_not_a_git_repository_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "plain").mkdir()
    assert main(["-C", str(tmp_path / "plain"), "list", "--json"]) == 2
    err = error_of(one_json(capsys.readouterr().out), 2)
    assert "not inside a git repository" in err["message"]


# --- usage errors (typer) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["claim", "x", "--bogus"], "--bogus"),
        (["claim"], "ID"),
        (["add", "t", "--priority", "high"], "priority"),
    ],
)
def test_usage_errors_with_json_give_the_json_error_object(
    env: Env, monkeypatch: pytest.MonkeyPatch, args: list[str], says: str
) -> None:
    monkeypatch.chdir(env.one)
    env.capsys.readouterr()
    assert main([*args, "--json"]) == 2
    out = env.capsys.readouterr().out
    obj = one_json(out)
    err = error_of(obj, 2)
    assert err["code"] == "bad_input" and says in err["message"]
    assert obj["command"] == args[0]


def test_usage_error_json_names_the_command_after_global_options(env: Env) -> None:
    # `-C PATH` comes before the command: its value is not the command's name.
    code, obj = env.json("claim", "x", "--bogus")
    assert code == 2
    error_of(obj, 2)
    assert obj["command"] == "claim"


def test_unknown_command_with_json(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(env.one)
    env.capsys.readouterr()
    assert main(["frobnicate", "--json"]) == 2
    err = error_of(one_json(env.capsys.readouterr().out), 2)
    assert "frobnicate" in err["message"]


def test_usage_error_without_json_prints_usage_not_a_traceback(env: Env) -> None:
    code, out, err = env.run("claim", "x", "--bogus")
    assert code == 2
    assert "No such option" in err and "--bogus" in err
    assert "Traceback" not in out + err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "claim" in capsys.readouterr().out
    assert main(["claim", "--help"]) == 0
    assert "--json" in capsys.readouterr().out


# --- human output -------------------------------------------------------------------------


def _human_error(env: Env, expected: int, says: str, *args: str, where: Path | None = None) -> str:
    """Run without --json: the exit code, one clear message on stderr, nothing on stdout."""
    code, out, err = env.run(*args, where=where)
    assert code == expected, err
    assert "Traceback" not in out + err
    flat = " ".join(err.split())
    assert flat.lower().startswith("error"), flat
    assert says in flat, flat
    assert len(flat) < 600  # a message and a hint, not a report
    assert out == ""
    return flat


def test_human_errors_are_one_clear_message_without_traceback(env: Env) -> None:
    env.ok("add", "x", "--id", "x")
    env.ok("add", "y", "--id", "y", "-d", "x")
    env.ok("claim", "x")
    flat = _human_error(env, 4, "held by agent-1", "claim", "x", where=env.two)
    assert "hint" in flat
    _human_error(env, 6, "x (active)", "claim", "y")
    _human_error(env, 3, "zzz", "claim", "zzz")
    _human_error(env, 2, "../x", "claim", "../x")
    _human_error(env, 13, "agent-1", "release", "x", where=env.two)
    _human_error(env, 14, "already exists", "add", "dup", "--id", "x")
    env.ok("done", "x")
    _human_error(env, 5, "x is done", "claim", "x")
    env.ok("claim", "y")
    _human_error(env, 7, "nothing is ready", "next")


def test_human_success_output(env: Env) -> None:
    for args, says in (
        (["add", "Fix login", "--id", "fix-login"], "added fix-login"),
        (["claim", "fix-login"], "claimed fix-login as agent-1"),
        (["claim", "fix-login"], "already hold fix-login"),
        (["list"], "fix-login"),
    ):
        code, out, err = env.run(*args)
        assert code == 0 and says in out, (args, out, err)
        assert "Traceback" not in out + err


# --- batches --------------------------------------------------------------------------------

BATCH_TOML = """\
[[task]]
id = "db"
title = "Set up the database"
priority = 1

[[task]]
id = "api"
title = "Write the API"
depends_on = ["db"]
tags = ["backend"]
estimate = 5

[[task]]
id = "ui"
title = "Build the UI"
depends_on = ["api", "db"]

[task.team]
owner = "web team"

[[task]]
title = "An untitled chore with a generated id"
"""


def test_add_file_toml_batch_with_dependencies_is_one_commit(env: Env, tmp_path: Path) -> None:
    f = tmp_path / "batch.toml"
    f.write_text(BATCH_TOML)
    before = env.count()
    r = env.ok("add", "--file", str(f))
    assert env.count() == before + 1
    assert r["commit"] == env.tip()
    ids = [t["id"] for t in r["tasks"]]
    assert ids[:3] == ["db", "api", "ui"]
    assert ids[3].startswith("gc-")
    by_id = {t["id"]: t for t in r["tasks"]}
    assert by_id["api"]["depends_on"] == ["db"] and by_id["api"]["extra"] == {"estimate": 5}
    assert by_id["ui"]["extra"] == {"team": {"owner": "web team"}}
    # the commit names every task it added
    msg = git("log", "-1", "--format=%B", "gitclaim", cwd=env.remote.path)
    assert msg.count("Gitclaim-Task: ") == 4
    assert sorted(t["id"] for t in env.ok("ready")["tasks"]) == sorted(["db", ids[3]])


@pytest.mark.parametrize("wrapped", [False, True])
def test_add_file_json_batch_is_one_commit(env: Env, tmp_path: Path, wrapped: bool) -> None:
    env.ok("add", "Existing", "--id", "existing")
    tasks = [
        {"id": "one", "title": "One", "depends_on": ["existing"]},
        {"id": "two", "title": "Two", "depends_on": ["one"], "priority": 0},
        {"id": "three", "title": "Three", "depends_on": ["one", "two"], "state": "backlog"},
    ]
    f = tmp_path / "batch.json"
    f.write_text(json.dumps({"tasks": tasks} if wrapped else tasks))
    before = env.count()
    r = env.ok("add", "-f", str(f))
    assert env.count() == before + 1
    assert [t["id"] for t in r["tasks"]] == ["one", "two", "three"]
    assert r["tasks"][2]["state"] == "backlog"
    shown = env.ok("show", "three")
    assert shown["blockers"] == [{"id": "one", "state": "todo"}, {"id": "two", "state": "todo"}]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        pytest.param(
            '[{"id": "a", "title": "A", "depends_on": ["b"]}, {"id": "b", "title": "B", "depends_on": ["a"]}]',
            "cycle",
            id="cycle-of-two",
        ),
        pytest.param(
            '[{"id": "a", "title": "A", "depends_on": ["c"]}, {"id": "b", "title": "B", "depends_on": ["a"]},'
            ' {"id": "c", "title": "C", "depends_on": ["b"]}]',
            "cycle",
            id="cycle-of-three",
        ),
        pytest.param('[{"id": "a", "title": "A", "depends_on": ["a"]}]', "itself", id="self-dependency"),
        pytest.param('[{"id": "a", "title": "A", "depends_on": ["ghost"]}]', "ghost", id="unknown-dependency"),
        pytest.param('[{"id": "a", "title": "A"}, {"id": "a", "title": "again"}]', "twice", id="duplicate-ids"),
        pytest.param('[{"id": "x", "title": "clash with the store"}]', "already", id="existing-id"),
        pytest.param("[]", "non-empty", id="empty-list"),
        pytest.param('[{"id": "a", "title": "A"}, 5]', "#2", id="not-an-object"),
        pytest.param('{"tasks": [', "malformed JSON", id="malformed-json"),
        pytest.param('[{"id": "a", "title": "A", "state": "done"}]', "todo", id="bad-start-state"),
    ],
)
def test_bad_json_batches_are_refused_and_change_nothing(env: Env, tmp_path: Path, content: str, says: str) -> None:
    env.ok("add", "x", "--id", "x")
    f = tmp_path / "batch.json"
    f.write_text(content)
    before = env.tip()
    code, obj = env.json("add", "--file", str(f))
    expected = 14 if says == "already" else 2
    assert code == expected, obj
    err = error_of(obj, expected)
    assert says in err["message"]
    assert env.tip() == before


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (
            '[[task]]\nid = "a"\ntitle = "A"\ndepends_on = ["b"]\n'
            '[[task]]\nid = "b"\ntitle = "B"\ndepends_on = ["a"]\n',
            "cycle",
        ),
        ('[[task]]\nid = "a"\ntitle = "A\n', "malformed TOML"),
        ('[task]\nid = "a"\ntitle = "A"\n', "[[task]]"),
        ('title = "no task table"\n', "[[task]]"),
    ],
)
def test_bad_toml_batches_are_bad_input(env: Env, tmp_path: Path, content: str, says: str) -> None:
    f = tmp_path / "batch.toml"
    f.write_text(content)
    before = env.tip()
    err = env.fail(2, "add", "--file", str(f))
    assert says in err["message"]
    assert env.tip() == before


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("tasks.txt", '[[task]]\nid = "a"\ntitle = "A"\n\n[[task]]\nid = "b"\ntitle = "B"\ndepends_on = ["a"]\n'),
        ("tasks", '[[task]]\nid = "a"\ntitle = "A"\n[[task]]\nid = "b"\ntitle = "B"\ndepends_on = ["a"]\n'),
        ("tasks.txt", '[\n  {"id": "a", "title": "A"},\n  {"id": "b", "title": "B", "depends_on": ["a"]}\n]\n'),
        ("tasks", '{"tasks": [{"id": "a", "title": "A"}, {"id": "b", "title": "B", "depends_on": ["a"]}]}'),
    ],
)
def test_add_file_format_is_recognised_without_a_telling_suffix(
    env: Env, tmp_path: Path, name: str, content: str
) -> None:
    f = tmp_path / name
    f.write_text(content)
    r = env.ok("add", "--file", str(f))
    assert [(t["id"], t["depends_on"]) for t in r["tasks"]] == [("a", []), ("b", ["a"])]


def test_add_file_and_title_together_is_bad_input(env: Env, tmp_path: Path) -> None:
    f = tmp_path / "b.json"
    f.write_text('[{"title": "x"}]')
    assert "either" in env.fail(2, "add", "a title", "--file", str(f))["message"]
    assert "no such file" in env.fail(2, "add", "--file", str(tmp_path / "missing.toml"))["message"]


# --- real processes ---------------------------------------------------------------------------


def test_cli_as_real_processes(env: Env) -> None:
    r = run_cli("-C", str(env.one), "add", "Shared", "--id", "shared", "--json", cwd=env.one)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["result"]["tasks"][0]["id"] == "shared"
    r = run_cli("claim", "shared", "--json", cwd=env.two)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["result"]["task"]["claim"]["holder"] == "agent-2"
    # the environment wins over the clone's git config
    r = run_cli("claim", "shared", "--json", cwd=env.two, env={"GITCLAIM_AGENT": "agent-3"})
    assert r.returncode == 4
    err = error_of(one_json(r.stdout), 4)
    assert err["details"]["holder"] == "agent-2"
    r = run_cli("claim", "shared", cwd=env.one)
    assert r.returncode == 4
    assert "agent-2" in r.stderr and "Traceback" not in r.stderr + r.stdout


def test_usage_error_in_a_real_process(env: Env) -> None:
    r = run_cli("claim", "--nope", cwd=env.one)
    assert r.returncode == 2
    assert "No such option" in r.stderr and "Traceback" not in r.stderr + r.stdout
    r = run_cli("claim", "--nope", "--json", cwd=env.one)
    assert r.returncode == 2
    assert error_of(one_json(r.stdout), 2)["code"] == "bad_input"


def test_cli_over_git_daemon(
    daemon_remote: Remote, make_clone: Callable[[Remote, str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    a = make_clone(daemon_remote, "a")
    b = make_clone(daemon_remote, "b")
    assert main(["-C", str(a), "init", "--agent", "admin", "--json"]) == 0
    assert main(["-C", str(a), "add", "T", "--id", "t", "--agent", "admin", "--json"]) == 0
    assert main(["-C", str(b), "claim", "t", "--agent", "bee", "--json"]) == 0
    capsys.readouterr()
    assert main(["-C", str(a), "claim", "t", "--agent", "ant", "--json"]) == 4
    err = error_of(one_json(capsys.readouterr().out), 4)
    assert err["details"]["holder"] == "bee"


# --- the error object's shape ------------------------------------------------------------------


def test_error_object_always_has_every_key(env: Env) -> None:
    # The documented shape is {"code", "exit", "message", "hint", "details"} for
    # every error, so that a consumer can read err["hint"] without a guard.
    for args in (["claim", "nope"], ["next"], ["claim", "../x"]):
        code, obj = env.json(*args)
        assert code != 0
        assert set(obj["error"]) == {"code", "exit", "message", "hint", "details"}, obj


def test_demo_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--agents", "2", "--tasks", "4", "--json"]) == 0
    obj = one_json(capsys.readouterr().out)
    assert obj["ok"] is True and obj["command"] == "demo"
    r = obj["result"]
    assert r["ok"] is True
    assert r["agents"] == ["agent-1", "agent-2"]
    assert len(r["tasks"]) == 4 and all(t["state"] == "done" for t in r["tasks"])
    assert r["double_claims"] == [] and r["not_done"] == []
    assert r["claims"] == 4 and r["folder"] is None


@pytest.mark.parametrize("args", [["--agents", "0"], ["--tasks", "0"], ["--tasks", "100000"]])
def test_demo_refuses_silly_sizes(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    assert main(["demo", *args, "--json"]) == 2
    assert error_of(one_json(capsys.readouterr().out), 2)["code"] == "bad_input"
