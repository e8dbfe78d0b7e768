"""Bad input and a messy world, with real repositories over both transports.

A human edits the store branch with plain git; ids are illegal; remotes are
missing, wrong or unreachable; the clone gitclaim runs in is someone's busy
working copy. gitclaim must answer with the right exit code and a clear
message, and must not change what it should not.
"""

from __future__ import annotations

import json
import shutil
import socket
import tomllib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gitclaim import Store
from gitclaim.cli import main
from gitclaim.ids import task_path
from tests.servers import Remote, git

Cli = Callable[..., tuple[int, dict[str, Any]]]


@pytest.fixture(autouse=True)
def _agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITCLAIM_AGENT", "agent-1")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """cli(clone, *args) -> (exit code, the one JSON object printed)."""

    def run(where: Path, *args: str) -> tuple[int, dict[str, Any]]:
        capsys.readouterr()
        code = main(["-C", str(where), *args, "--json"])
        out, err = capsys.readouterr()
        lines = [line for line in out.splitlines() if line.strip()]
        assert len(lines) == 1, (out, err)
        assert "Traceback" not in err
        return code, json.loads(lines[0])

    return run


@pytest.fixture
def human(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str]]:
    """human(clone, *args) -> (exit code, stdout+stderr with whitespace collapsed)."""

    def run(where: Path, *args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(["-C", str(where), *args])
        out, err = capsys.readouterr()
        return code, " ".join((out + err).split())

    return run


def hand_edit(remote: Remote, scratch: Path, files: dict[str, bytes | None], message: str = "edit by hand") -> str:
    """What a human does: clone with git, check out the store branch, edit, commit, push."""
    work = scratch / f"hand-{uuid.uuid4().hex[:8]}"
    git("clone", "-q", remote.url, str(work))
    git("checkout", "-q", "gitclaim", cwd=work)
    for path, data in files.items():
        p = work / path
        if data is None:
            p.unlink()
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", message, cwd=work)
    git("push", "-q", "origin", "gitclaim", cwd=work)
    tip = git("rev-parse", "HEAD", cwd=work).strip()
    assert remote.ref() == tip
    return tip


def remote_file(remote: Remote, path: str) -> str:
    return git("show", f"gitclaim:{path}", cwd=remote.path)


def task_toml(tid: str, *, state: str = "todo", schema: int = 1, file_id: str | None = None) -> bytes:
    return (
        f'schema = {schema}\nid = "{file_id or tid}"\ntitle = "Task {tid}"\nstate = "{state}"\npriority = 2\n'
        "depends_on = []\ntags = []\ncreated_at = 2026-01-31T12:00:00Z\n"
    ).encode()


@pytest.fixture
def store(initialized: tuple[Remote, Store], make_clone: Callable[[Remote, str], Path]) -> tuple[Remote, Store, Path]:
    """An initialised store holding `victim` and `healthy`, and a worker's clone."""
    remote, admin = initialized
    admin.add_many([{"id": "victim", "title": "The victim"}, {"id": "healthy", "title": "A healthy task"}])
    return remote, admin, make_clone(remote, "worker")


# --- hand-edited, broken task files ---------------------------------------------------------


def broken(kind: str, tid: str) -> bytes:
    """A task file for ``tid`` broken in the way a hurried human breaks it."""
    return {
        "malformed-toml": task_toml(tid) + b'note = "unterminated\n',
        "unknown-state": task_toml(tid, state="doing"),
        "id-mismatch": task_toml(tid, file_id="someone-else"),
        "active-without-claim": task_toml(tid, state="active"),
        "not-utf8": b'schema = 1\nid = "' + tid.encode() + b'"\ntitle = "caf\xe9"\nstate = "todo"\n',
        "priority-out-of-range": task_toml(tid).replace(b"priority = 2", b"priority = 42"),
        # Pathological but plausible (a generated file, a date at the edge of the
        # calendar): they must read as corrupt too, not crash every listing.
        "deep-nesting": task_toml(tid) + b"junk = " + b"[" * 2000 + b"]" * 2000 + b"\n",
        "date-out-of-range": task_toml(tid).replace(b"2026-01-31T12:00:00Z", b"0001-01-01T00:00:00+01:00"),
    }[kind]


REGULAR = [
    "malformed-toml", "unknown-state", "id-mismatch", "active-without-claim", "not-utf8", "priority-out-of-range",
]  # fmt: skip
PATHOLOGICAL = ["deep-nesting", "date-out-of-range"]


def _check_broken_files(remote: Remote, worker: Path, tmp_path: Path, cli: Cli, kinds: list[str]) -> None:
    paths = {kind: task_path(f"bad-{kind}") for kind in kinds}
    tip = hand_edit(remote, tmp_path, {paths[k]: broken(k, f"bad-{k}") for k in kinds}, "hand edits")

    for kind, path in paths.items():
        code, obj = cli(worker, "claim", f"bad-{kind}")
        assert code == 10, (kind, obj)
        err = obj["error"]
        assert err["code"] == "store_corrupt"
        assert path in err["message"] and err["details"]["path"] == path
        assert err["hint"]
        code, obj = cli(worker, "show", f"bad-{kind}")
        assert code == 10 and path in obj["error"]["message"], (kind, obj)
    assert remote.ref() == tip  # no failed operation pushed anything

    for cmd in ("list", "ready", "board", "who", "blocked", "graph", "stale"):  # every view says what it skipped
        code, obj = cli(worker, cmd)
        assert code == 0, obj
        problems = obj["result"]["problems"]
        assert sorted(p["path"] for p in problems) == sorted(paths.values()), cmd
        assert {p["code"] for p in problems} == {"store_corrupt"}
        if cmd in ("list", "ready"):
            assert {"victim", "healthy"} <= {t["id"] for t in obj["result"]["tasks"]}

    # `next` skips what it cannot read and still hands out work
    code, obj = cli(worker, "next")
    assert code == 0 and obj["result"]["task"]["id"] in ("victim", "healthy"), obj
    # the broken files are left exactly as the human wrote them
    for path in paths.values():
        now = git("rev-parse", f"gitclaim:{path}", cwd=remote.path)
        assert now == git("rev-parse", f"{tip}:{path}", cwd=remote.path)


def test_hand_broken_task_files_are_store_corrupt_naming_the_path(
    store: tuple[Remote, Store, Path], tmp_path: Path, cli: Cli
) -> None:
    remote, _admin, worker = store
    _check_broken_files(remote, worker, tmp_path, cli, REGULAR)


def test_pathological_task_files_are_store_corrupt_too(
    store: tuple[Remote, Store, Path], tmp_path: Path, cli: Cli
) -> None:
    remote, _admin, worker = store
    _check_broken_files(remote, worker, tmp_path, cli, PATHOLOGICAL)


def test_human_output_for_a_corrupt_task_names_the_file_without_traceback(
    store: tuple[Remote, Store, Path], tmp_path: Path, human: Callable[..., tuple[int, str]]
) -> None:
    remote, _admin, worker = store
    path = task_path("victim")
    hand_edit(remote, tmp_path, {path: broken("unknown-state", "victim")})
    code, text = human(worker, "claim", "victim")
    assert code == 10
    assert path in text and "doing" in text and "Traceback" not in text
    code, text = human(worker, "list")
    assert code == 0
    assert "healthy" in text and "warning" in text and path in text


def test_a_misplaced_task_file_is_reported_by_list(store: tuple[Remote, Store, Path], tmp_path: Path, cli: Cli) -> None:
    remote, _admin, worker = store
    right = task_path("stray")
    wrong_folder = "00" if not right.startswith("tasks/00/") else "01"
    wrong = f"tasks/{wrong_folder}/stray.toml"
    hand_edit(remote, tmp_path, {wrong: task_toml("stray")})
    code, obj = cli(worker, "list")
    assert code == 0
    assert [p["path"] for p in obj["result"]["problems"]] == [wrong]
    assert right in obj["result"]["problems"][0]["message"]
    code, obj = cli(worker, "claim", "stray")
    assert code == 3  # not where the id says it lives: not found, not silently used


def test_a_task_with_a_newer_schema_is_schema_too_new(
    store: tuple[Remote, Store, Path], tmp_path: Path, cli: Cli
) -> None:
    remote, _admin, worker = store
    path = task_path("victim")
    tip = hand_edit(remote, tmp_path, {path: task_toml("victim", schema=999)})
    code, obj = cli(worker, "claim", "victim")
    assert code == 12, obj
    assert obj["error"]["code"] == "schema_too_new"
    assert "999" in obj["error"]["message"]
    assert obj["error"]["details"]["schema"] == 999
    assert remote.ref() == tip
    code, obj = cli(worker, "list")
    assert code == 0
    assert obj["result"]["problems"] == [
        {"path": path, "message": obj["result"]["problems"][0]["message"], "code": "schema_too_new"}
    ]


def test_a_store_file_with_a_newer_schema_is_schema_too_new(
    store: tuple[Remote, Store, Path], tmp_path: Path, cli: Cli
) -> None:
    remote, _admin, worker = store
    tip = hand_edit(remote, tmp_path, {"gitclaim.toml": b'schema = 999\nkind = "gitclaim-store"\n'})
    for args in (["list"], ["ready"], ["next"], ["add", "New", "--id", "new"]):
        code, obj = cli(worker, *args)
        assert code == 12, (args, obj)
        assert obj["error"]["code"] == "schema_too_new"
        assert obj["error"]["hint"]
    assert remote.ref() == tip


def test_a_store_branch_without_a_store_file_is_store_corrupt(
    store: tuple[Remote, Store, Path], tmp_path: Path, cli: Cli
) -> None:
    remote, _admin, worker = store
    tip = hand_edit(remote, tmp_path, {"gitclaim.toml": None})
    code, obj = cli(worker, "list")
    assert code == 10 and "gitclaim.toml" in obj["error"]["message"]
    code, obj = cli(worker, "init")
    assert code == 10
    assert remote.ref() == tip


# --- hand-written fields survive gitclaim's rewrites ----------------------------------------


def test_hand_written_fields_survive_claim_and_done(
    store: tuple[Remote, Store, Path], tmp_path: Path, cli: Cli
) -> None:
    remote, _admin, worker = store
    path = task_path("victim")
    original = tomllib.loads(remote_file(remote, path))
    edited = remote_file(remote, path).replace("state = ", "estimate = 3\nstate = ", 1)
    edited += '\n[notes]\nreviewer = "ann"\nlinks = ["https://example.invalid/1"]\n'
    hand_tip = hand_edit(remote, tmp_path, {path: edited.encode()}, "add an estimate and notes")

    code, obj = cli(worker, "claim", "victim")
    assert code == 0, obj
    assert obj["result"]["task"]["extra"] == {
        "estimate": 3,
        "notes": {"reviewer": "ann", "links": ["https://example.invalid/1"]},
    }
    after_claim = tomllib.loads(remote_file(remote, path))
    assert after_claim["estimate"] == 3
    assert after_claim["notes"] == {"reviewer": "ann", "links": ["https://example.invalid/1"]}
    assert after_claim["state"] == "active" and after_claim["claim"]["holder"] == "agent-1"

    code, obj = cli(worker, "done", "victim")
    assert code == 0, obj
    final = tomllib.loads(remote_file(remote, path))
    assert final["estimate"] == 3
    assert final["notes"] == {"reviewer": "ann", "links": ["https://example.invalid/1"]}
    assert final["state"] == "done" and "claim" not in final
    assert final["title"] == original["title"] and final["created_at"] == original["created_at"]
    # the human's commit is history, never rewritten
    git("merge-base", "--is-ancestor", hand_tip, "gitclaim", cwd=remote.path)
    assert int(git("rev-list", "--count", f"{hand_tip}..gitclaim", cwd=remote.path)) == 2


# --- illegal ids ---------------------------------------------------------------------------------

ILLEGAL = ["../x", "", "a b", "a\nb", "abc\n", "UPPER", "-x", "x" * 65]


def test_illegal_ids_are_bad_input_and_change_nothing(store: tuple[Remote, Store, Path], cli: Cli) -> None:
    remote, _admin, worker = store
    tip = remote.ref()
    wrong = []
    for i, bad in enumerate(ILLEGAL):
        for args in (
            ["claim", bad],
            ["show", bad],
            ["release", bad],
            ["done", bad],
            ["add", "A title", "--id", bad],
            ["add", "A title", "--id", f"fine-{i}", "--depends-on", bad],
        ):
            code, obj = cli(worker, *args)
            if code != 2 or obj["error"]["code"] != "bad_input":
                wrong.append((args, code, obj.get("error", obj.get("result"))))
    assert not wrong, "\n".join(f"{args!r} -> exit {code}: {what}" for args, code, what in wrong)
    assert remote.ref() == tip
    tree = git("ls-tree", "-r", "--name-only", "-z", "gitclaim", cwd=remote.path).split("\0")
    assert not any("\n" in name or " " in name or ".." in name for name in tree)


# --- remotes that are missing, wrong or unreachable --------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clone_with_url(tmp_path: Path, url: str | None) -> Path:
    c = tmp_path / f"clone-{uuid.uuid4().hex[:6]}"
    c.mkdir()
    git("init", "-q", "-b", "main", cwd=c)
    if url is not None:
        git("remote", "add", "origin", url, cwd=c)
    return c


COMMANDS = [["init"], ["list"], ["claim", "x"], ["add", "T"], ["next"]]


def test_a_clone_without_origin_is_bad_input(tmp_path: Path, cli: Cli, human: Callable[..., tuple[int, str]]) -> None:
    c = _clone_with_url(tmp_path, None)
    for args in COMMANDS:
        code, obj = cli(c, *args)
        assert code == 2, (args, obj)
        assert "no remote named 'origin'" in obj["error"]["message"]
        assert obj["error"]["details"] == {"remote": "origin"}
    code, text = human(c, "claim", "x")
    assert code == 2 and "origin" in text and "Traceback" not in text


def test_an_unknown_remote_name_is_bad_input(store: tuple[Remote, Store, Path], cli: Cli) -> None:
    remote, _admin, worker = store
    tip = remote.ref()
    for args in (["list"], ["claim", "healthy"]):
        code, obj = cli(worker, "--remote", "upstream", *args)
        assert code == 2, obj
        assert "no remote named 'upstream'" in obj["error"]["message"]
    assert remote.ref() == tip


def test_a_remote_url_to_a_missing_path_is_unreachable(
    tmp_path: Path, cli: Cli, human: Callable[..., tuple[int, str]]
) -> None:
    missing = tmp_path / "gone" / "shared.git"
    c = _clone_with_url(tmp_path, str(missing))
    for args in COMMANDS:
        code, obj = cli(c, *args)
        assert code == 8, (args, obj)
        assert obj["error"]["code"] == "remote_unreachable"
        assert str(missing) in obj["error"]["message"]
    code, text = human(c, "claim", "x")
    assert code == 8 and "Traceback" not in text and "hint:" in text
    assert not missing.exists()


def test_a_remote_url_to_a_folder_that_is_not_a_repository_is_unreachable(tmp_path: Path, cli: Cli) -> None:
    # The folder exists but holds no repository; it lies inside some other
    # repository (a home folder kept in git, a monorepo checkout). git itself
    # answers "does not appear to be a git repository"; gitclaim must not
    # write the store into the enclosing repository instead.
    outer = tmp_path / "outer"
    (outer / "shared").mkdir(parents=True)
    git("init", "-q", cwd=outer)
    c = _clone_with_url(tmp_path, str(outer / "shared"))
    code, obj = cli(c, "init")
    assert code == 8, obj
    assert obj["error"]["code"] == "remote_unreachable"
    assert git("for-each-ref", "refs/heads/gitclaim", cwd=outer) == ""


def test_an_unreachable_network_remote(tmp_path: Path, cli: Cli, human: Callable[..., tuple[int, str]]) -> None:
    url = f"git://127.0.0.1:{_closed_port()}/x.git"
    c = _clone_with_url(tmp_path, url)
    for args in COMMANDS:
        code, obj = cli(c, *args)
        assert code == 8, (args, obj)
        assert obj["error"]["code"] == "remote_unreachable"
        assert obj["error"]["details"]["url"] == url
    code, text = human(c, "list")
    assert code == 8 and "127.0.0.1" in text and "Traceback" not in text


def test_the_remote_vanishing_after_init_is_unreachable(store: tuple[Remote, Store, Path], cli: Cli) -> None:
    remote, _admin, worker = store
    assert cli(worker, "list")[0] == 0  # the worker has seen the store
    shutil.rmtree(remote.path)
    for args in (["claim", "healthy"], ["list"], ["add", "T"]):
        code, obj = cli(worker, *args)
        assert code == 8, (args, obj)
        assert obj["error"]["code"] == "remote_unreachable"
    # a read that does not need the network still works from the local copy
    code, obj = cli(worker, "list", "--offline")
    assert code == 0 and {t["id"] for t in obj["result"]["tasks"]} == {"victim", "healthy"}


# --- the clone gitclaim runs in ------------------------------------------------------------------


def _busy_clone(remote: Remote, make_clone: Callable[[Remote, str], Path], name: str) -> Path:
    c = make_clone(remote, name)
    (c / "a.txt").write_text("committed\n")
    git("add", "a.txt", cwd=c)
    git("commit", "-q", "-m", "work on main", cwd=c)
    (c / "a.txt").write_text("committed\nand a dirty line\n")  # unstaged change
    (c / "staged.txt").write_text("staged\n")
    git("add", "staged.txt", cwd=c)  # staged change
    (c / "untracked.txt").write_text("untracked\n")
    git("status", "--porcelain", cwd=c)  # let git settle the index before we take its bytes
    return c


def _state_of(c: Path) -> dict[str, Any]:
    gitdir = c / ".git"
    return {
        "HEAD": (gitdir / "HEAD").read_bytes(),
        "index": (gitdir / "index").read_bytes(),
        "files": {p.name: p.read_bytes() for p in c.iterdir() if p.is_file()},
        "branches": git("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", cwd=c),
    }


def test_gitclaim_never_touches_the_working_tree_index_or_head(
    store: tuple[Remote, Store, Path], make_clone: Callable[[Remote, str], Path], cli: Cli
) -> None:
    remote, _admin, _worker = store
    c = _busy_clone(remote, make_clone, "busy")
    before = _state_of(c)
    status_before = git("status", "--porcelain", cwd=c)
    head_before = git("rev-parse", "HEAD", cwd=c)

    assert cli(c, "init")[0] == 0
    assert cli(c, "claim", "victim")[0] == 0
    assert cli(c, "add", "From a busy clone", "--id", "busy-task")[0] == 0
    assert cli(c, "list")[0] == 0
    assert cli(c, "done", "victim")[0] == 0
    assert cli(c, "claim", "victim")[0] == 5

    assert _state_of(c) == before
    assert git("status", "--porcelain", cwd=c) == status_before
    assert git("rev-parse", "HEAD", cwd=c) == head_before
    assert git("symbolic-ref", "HEAD", cwd=c).strip() == "refs/heads/main"
    assert git("stash", "list", cwd=c) == ""
    assert remote_file(remote, task_path("busy-task"))


def test_gitclaim_works_from_a_linked_worktree(
    store: tuple[Remote, Store, Path], make_clone: Callable[[Remote, str], Path], tmp_path: Path, cli: Cli
) -> None:
    remote, admin, _worker = store
    c = _busy_clone(remote, make_clone, "main-clone")
    wt = tmp_path / "linked"
    git("worktree", "add", "-q", "-b", "feature", str(wt), cwd=c)
    (wt / "a.txt").write_text("dirty in the worktree\n")
    wt_head = git("rev-parse", "HEAD", cwd=wt)
    wt_status = git("status", "--porcelain", cwd=wt)
    main_before = _state_of(c)

    code, obj = cli(wt, "claim", "victim")
    assert code == 0, obj
    assert obj["result"]["task"]["claim"]["holder"] == "agent-1"
    assert remote.ref() == obj["result"]["commit"]
    # other clones see the claim
    assert admin.show("victim").task.holder == "agent-1"
    # the main clone shares refs and config with the worktree
    code, obj2 = cli(c, "list", "--offline")
    assert code == 0
    assert {t["id"]: t["state"] for t in obj2["result"]["tasks"]}["victim"] == "active"
    code, obj3 = cli(wt, "add", "Added from a worktree", "--id", "from-wt")
    assert code == 0, obj3
    code, obj4 = cli(wt, "show", "from-wt")
    assert code == 0 and obj4["result"]["task"]["created_by"] == "agent-1"

    assert git("rev-parse", "HEAD", cwd=wt) == wt_head
    assert git("status", "--porcelain", cwd=wt) == wt_status
    assert git("symbolic-ref", "HEAD", cwd=wt).strip() == "refs/heads/feature"
    assert (wt / "a.txt").read_text() == "dirty in the worktree\n"
    after = _state_of(c)
    # the worktree added a branch `feature`; nothing else of the main clone moved
    assert after["HEAD"] == main_before["HEAD"] and after["files"] == main_before["files"]
    assert after["index"] == main_before["index"]


# --- deep chains and cycles ---------------------------------------------------------------------


def test_a_deep_chain_and_a_hand_made_cycle_stay_bounded(
    initialized: tuple[Remote, Store], make_clone: Callable[[Remote, str], Path], tmp_path: Path
) -> None:
    """3,000 tasks in one dependency chain, and a cycle committed by hand
    (only a server hook could refuse it): every walk is iterative and bounded,
    a cycle is never ready, and closing a loop through the API is refused."""
    from gitclaim.errors import BadInput, Blocked

    remote, admin = initialized
    n = 3000
    admin.add_many([{"id": f"c{i}", "title": f"link {i}", "depends_on": [f"c{i - 1}"] if i else []} for i in range(n)])
    admin.add("after the chain", task_id="tail", depends_on=[f"c{n - 1}"])
    with pytest.raises(BadInput, match="cycle"):
        admin.edit("c0", {"depends_on": f"c{n - 1}"})
    hand_edit(remote, tmp_path, {
        task_path("loop-a"): task_toml("loop-a").replace(b"depends_on = []", b'depends_on = ["loop-b"]'),
        task_path("loop-b"): task_toml("loop-b").replace(b"depends_on = []", b'depends_on = ["loop-a"]'),
    })  # fmt: skip
    agent = Store(make_clone(remote, "agent"), agent="agent")
    assert [t.id for t in agent.ready().tasks] == ["c0"]
    with pytest.raises(Blocked):
        agent.claim("loop-a")
    blocked = {b.task.id for b in agent.blocked().tasks}
    assert {"loop-a", "loop-b", "tail", f"c{n - 1}"} <= blocked
    assert "loop-a" in agent.graph("dot").text
    view = agent.show(f"c{n - 1}")
    assert view.task.depends_on == (f"c{n - 2}",)
    agent.claim("c0")
    agent.done("c0")
    assert agent.retry("c0").task.state.value == "todo"  # walks all 3,000 downstream tasks
    assert [t.id for t in agent.ready().tasks] == ["c0"]
