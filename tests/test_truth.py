"""Issue 12, acceptance: trailers are labels, the diff is the truth.

A commit's ``Gitclaim-*`` trailers only name the move its diff makes. A
plain ``git push`` whose trailers say something else is refused by the
server hook (rule ``trailers``); pushed where no hook runs, the views
(``log``, ``show``) report what the diff did, never what the trailers claim,
and ``verify`` names the commit. A merge (``git pull`` by a human) is read
through every parent: a clean one keeps both sides' moves and is accepted,
one that drops a side's change is refused (rule ``merge``). gitclaim's own
operations make a history that ``verify`` accepts and whose ops are the
trailers' ops.

Real git throughout: the store is built once by gitclaim, each test gets its
own copy, served by git daemon when the server hook is needed and reached by
its path otherwise; humans edit TOML by hand and commit with ``git -c
user.name=...``; agents run the ``gitclaim`` command.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gitclaim import Store
from gitclaim.ids import task_path
from tests.conftest import isolate_home, run_cli
from tests.servers import GIT, GitDaemon, Remote, clone, copy_remote, git, make_bare
from tests.test_enforce import cli_json, commit, edit, git_as, remote_lines, violation_lines

PAST = datetime(2020, 1, 1, tzinfo=UTC)
HOLDER = "holder"  # holds t1 in the base store

# The base store, built once:
#   t1  "Task one"  active, held by holder
#   t2  "Task two"  todo


@dataclass
class Base:
    plain: Path  # the bare store, no hook
    served: Path  # a copy with the server hook installed by `gitclaim hooks install --server`


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Base]:
    root = tmp_path_factory.mktemp("truth-base")
    with pytest.MonkeyPatch.context() as mp:  # module scope: before the per-test HOME exists
        isolate_home(mp, root / "home")
        bare = make_bare(root / "plain.git")
        work = root / "admin"
        git("clone", "-q", str(bare), str(work))
        s = Store(work, agent="admin")
        s.init()
        s.add("Task one", task_id="t1")
        s.add("Task two", task_id="t2")
        s.claim("t1", agent=HOLDER)
        served = root / "served.git"
        shutil.copytree(bare, served, symlinks=True)
        r = run_cli("hooks", "install", "--server", str(served), cwd=root)
        assert r.returncode == 0, r.stdout + r.stderr
    yield Base(bare, served)


@dataclass
class Setup:
    remote: Remote
    wc: Path  # a human's `git clone -b gitclaim` working copy
    agent: Path  # a gitclaim clone, for the agents' commands and the views
    tip: str  # the remote's tip before the test

    def push(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([GIT, "push", *args], cwd=self.wc, capture_output=True, text=True, timeout=60)

    def cli(self, *args: str) -> tuple[int, dict[str, Any]]:
        return cli_json(*args, cwd=self.agent)


Make = Callable[..., Setup]


@pytest.fixture
def make(base: Base, git_daemon: GitDaemon, tmp_path: Path) -> Make:
    """make(hook=True): a copy of the base store served by git daemon with the
    server hook; make(hook=False): a copy reached by its path, with no hook."""

    def _make(*, hook: bool) -> Setup:
        if hook:
            remote = copy_remote(base.served, tmp_path / "remote.git", git_daemon)
        else:
            remote = copy_remote(base.plain, tmp_path / "remote.git")
        tip = remote.ref()
        assert tip is not None
        wc = tmp_path / "wc"
        git("clone", "-q", "-b", "gitclaim", remote.url, str(wc))
        return Setup(remote, wc, clone(remote, tmp_path / "agent"), tip)

    return _make


def trailers(op: str, task: str, agent: str, *more: tuple[str, str]) -> str:
    lines = [f"Gitclaim-Op: {op}", f"Gitclaim-Task: {task}", f"Gitclaim-Agent: {agent}"]
    return "\n".join([*lines, *(f"Gitclaim-{k}: {v}" for k, v in more)]) + "\n"


def rename(title: str) -> Callable[[str], str]:
    def run(text: str) -> str:
        old = next(line for line in text.splitlines() if line.startswith("title = "))
        return text.replace(old, f'title = "{title}"', 1)

    return run


def tag(text: str) -> str:
    return text.replace("tags = []", 'tags = ["by-hand"]', 1)


def refusal(r: subprocess.CompletedProcess[str]) -> list[str]:
    """The violation lines the server hook sent back, asserting that it refused."""
    assert r.returncode != 0, r.stderr
    said = remote_lines(r.stderr)
    assert "gitclaim: push refused" in said, r.stderr
    lines = violation_lines(said)
    assert lines, said
    return lines


def found(obj: dict[str, Any]) -> set[tuple[str, str]]:
    """(commit, rule) of every violation a failed `verify --json` reports."""
    assert obj["ok"] is False and obj["error"]["code"] == "verify_failed", obj
    return {(v["commit"], v["rule"]) for v in obj["error"]["details"]["violations"]}


# --- 1. trailers that lie about the move ------------------------------------------------


def lying_done(wc: Path) -> str:
    """The holder renames t1 and says, in trailers, that it finished it."""
    edit(wc, "t1", rename("Task one, renamed"))
    body = trailers("done", "t1", HOLDER, ("From", "active"), ("To", "done"))
    return commit(wc, HOLDER, f"done t1 by {HOLDER}\n\n{body}")


def test_the_server_hook_refuses_trailers_that_claim_a_move_the_diff_does_not_make(make: Make) -> None:
    s = make(hook=True)
    lie = lying_done(s.wc)
    lines = refusal(s.push())
    assert all(f"{lie[:10]} commit: [trailers]" in line for line in lines), lines
    said = "\n".join(lines)
    assert "t1: the trailers say done, but the change is edit t1 (active -> active)" in said
    assert "t1: the trailers say to done, but it is now active" in said
    assert s.remote.ref() == s.tip


def test_where_no_hook_runs_the_views_report_the_edit_and_verify_names_the_commit(make: Make) -> None:
    s = make(hook=False)
    lie = lying_done(s.wc)
    r = s.push()
    assert r.returncode == 0, r.stderr  # nothing stops it here
    assert s.remote.ref() == lie

    code, log = s.cli("log", "t1")
    assert code == 0, log
    entries = log["result"]["entries"]
    newest = entries[0]
    assert newest["commit"] == lie
    assert (newest["op"], newest["from"], newest["to"], newest["agent"]) == ("edit", "active", "active", HOLDER)
    assert newest["trailers"] == {}  # a trailer the change does not bear out is not reported
    assert any("the trailers say done, but the change is edit t1" in v for v in newest["violations"])
    assert [e["op"] for e in entries] == ["edit", "claim", "add"]
    assert all(e["to"] != "done" for e in entries)

    code, whole = s.cli("log")
    assert code == 0, whole
    (mine,) = [e for e in whole["result"]["entries"] if e["commit"] == lie]
    assert mine["op"] == "edit" and mine["violations"], mine

    code, shown = s.cli("show", "t1")
    assert code == 0, shown
    view = shown["result"]
    assert view["task"]["state"] == "active" and view["task"]["title"] == "Task one, renamed"
    assert view["history"][0]["commit"] == lie
    assert (view["history"][0]["op"], view["history"][0]["from"], view["history"][0]["to"]) == (
        "edit",
        "active",
        "active",
    )
    assert view["history"][0]["violations"] == newest["violations"]
    assert all(e["op"] != "done" for e in view["history"])

    code, verified = s.cli("verify")
    assert code == 21, verified
    assert found(verified) == {(lie, "trailers")}
    (first, *_) = verified["error"]["details"]["violations"]
    assert first["author"] == HOLDER and first["agent"] == HOLDER
    assert "edit t1 (active -> active)" in first["did"]

    r = run_cli("verify", cwd=s.agent)  # the same for a human reader
    assert r.returncode == 21
    assert f"{lie[:10]} [trailers] {HOLDER}:" in r.stderr


# --- 2. trailers naming someone else, or another task -----------------------------------


def another_agent(wc: Path) -> tuple[str, str]:
    edit(wc, "t2", rename("Task two, renamed"))
    new = commit(wc, HOLDER, f"edit t2 by mallory\n\n{trailers('edit', 't2', 'mallory', ('Field', 'title'))}")
    return new, f"the trailers name mallory as the agent, but the commit's author is {HOLDER}"


def another_task(wc: Path) -> tuple[str, str]:
    edit(wc, "t2", rename("Task two, renamed"))
    new = commit(wc, HOLDER, f"edit t1 by {HOLDER}\n\n{trailers('edit', 't1', HOLDER, ('Field', 'title'))}")
    return new, "the trailers name t1, which the commit does not change"


def truthful(wc: Path) -> tuple[str, str]:
    """The control: the same edit, with trailers that tell it as it is."""
    edit(wc, "t2", rename("Task two, renamed"))
    return commit(wc, HOLDER, f"edit t2 by {HOLDER}\n\n{trailers('edit', 't2', HOLDER, ('Field', 'title'))}"), ""


@pytest.mark.parametrize("case", [another_agent, another_task], ids=lambda f: f.__name__)
def test_trailers_naming_another_agent_or_an_unchanged_task_are_refused(
    make: Make, case: Callable[[Path], tuple[str, str]]
) -> None:
    s = make(hook=True)
    new, says = case(s.wc)
    lines = refusal(s.push())
    assert all(f"{new[:10]} commit: [trailers]" in line for line in lines), lines
    assert any(says in line for line in lines), lines
    assert s.remote.ref() == s.tip


def test_the_same_edit_with_truthful_trailers_is_accepted(make: Make) -> None:
    s = make(hook=True)
    new, _ = truthful(s.wc)
    r = s.push()
    assert r.returncode == 0, r.stderr
    assert s.remote.ref() == new
    code, log = s.cli("log", "t2")
    assert code == 0, log
    assert log["result"]["entries"][0]["op"] == "edit" and log["result"]["entries"][0]["trailers"]["Op"] == ["edit"]


# --- 3. merges ---------------------------------------------------------------------------

# What the human changes on the checked-out store branch while the holder finishes t1.
HUMAN_EDITS = {
    "another-task": ("t2", rename("Task two, renamed by hand")),
    "the-same-task": ("t1", tag),  # far enough from state and claim for git to merge it cleanly
}


def human_edit_then_agent_done(s: Setup, which: str) -> tuple[str, str]:
    """The human commits an edit; meanwhile the holder runs `gitclaim done t1`
    on its own clone. Returns (the human's commit, the done commit)."""
    task, change = HUMAN_EDITS[which]
    edit(s.wc, task, change)
    mine = commit(s.wc, "human", f"edit {task} by hand")
    code, obj = s.cli("done", "t1", "--agent", HOLDER)
    assert code == 0, obj
    done = obj["result"]["commit"]
    assert s.remote.ref() == done
    return mine, done


def pull(wc: Path) -> str:
    merge = git_as("human", "pull", "-q", "--no-rebase", "--no-edit", cwd=wc)
    assert len(git("rev-list", "--parents", "-n", "1", merge, cwd=wc).split()) == 3, "not a merge"
    return merge


@pytest.mark.parametrize("which", sorted(HUMAN_EDITS))
def test_a_pull_merge_keeps_the_agents_done_in_log_show_and_verify(make: Make, which: str) -> None:
    s = make(hook=False)
    mine, done = human_edit_then_agent_done(s, which)
    merge = pull(s.wc)
    r = s.push()
    assert r.returncode == 0, r.stderr
    assert s.remote.ref() == merge

    code, log = s.cli("log", "t1")
    assert code == 0, log
    entries = log["result"]["entries"]
    (finished,) = [e for e in entries if e["commit"] == done]  # history follows every parent
    assert (finished["op"], finished["from"], finished["to"], finished["agent"]) == ("done", "active", "done", HOLDER)
    assert {"done", "claim", "add"} <= {e["op"] for e in entries}
    assert all(e["violations"] == [] for e in entries), entries
    assert not {"illegal", "change"} & {e["op"] for e in entries}, entries

    code, shown = s.cli("show", "t1")
    assert code == 0, shown
    view = shown["result"]
    assert view["task"]["state"] == "done" and view["task"]["claim"] is None
    assert [e["commit"] for e in view["history"] if e["op"] == "done"] == [done]
    if which == "the-same-task":
        assert view["task"]["tags"] == ["by-hand"]
        assert mine in [e["commit"] for e in view["history"]]

    code, verified = s.cli("verify")
    assert code == 0, verified  # a clean merge breaks nothing
    assert verified["result"]["ok"] is True and verified["result"]["tip"] == merge


@pytest.mark.parametrize("which", sorted(HUMAN_EDITS))
def test_the_server_hook_accepts_a_clean_pull_merge(make: Make, which: str) -> None:
    s = make(hook=True)
    human_edit_then_agent_done(s, which)
    merge = pull(s.wc)
    r = s.push()
    assert r.returncode == 0, r.stderr
    assert "push refused" not in r.stderr
    assert s.remote.ref() == merge


@pytest.mark.parametrize("which", sorted(HUMAN_EDITS))
def test_the_server_hook_refuses_a_merge_that_drops_the_agents_done(make: Make, which: str) -> None:
    # `git merge -s ours` keeps the human's tree: t1's done, made on the other side, is gone
    s = make(hook=True)
    _, done = human_edit_then_agent_done(s, which)
    git("fetch", "-q", "origin", cwd=s.wc)
    merge = git_as("human", "merge", "-q", "-s", "ours", "-m", "merge, keeping mine", "origin/gitclaim", cwd=s.wc)
    assert 'state = "active"' in git("show", f"{merge}:{task_path('t1')}", cwd=s.wc)
    lines = refusal(s.push())
    says = f"{merge[:10]} {task_path('t1')}: [merge] the merge drops the second parent's change of {task_path('t1')}"
    assert any(says in line for line in lines), lines
    assert s.remote.ref() == done


def test_where_no_hook_runs_verify_names_a_merge_that_drops_a_change(make: Make) -> None:
    s = make(hook=False)
    _, done = human_edit_then_agent_done(s, "another-task")
    git("fetch", "-q", "origin", cwd=s.wc)
    merge = git_as("human", "merge", "-q", "-s", "ours", "-m", "merge, keeping mine", "origin/gitclaim", cwd=s.wc)
    assert git("rev-parse", f"{merge}^2", cwd=s.wc).strip() == done
    assert s.push().returncode == 0
    code, verified = s.cli("verify")
    assert code == 21, verified
    assert found(verified) == {(merge, "merge")}


# --- 4. gitclaim's own operations ---------------------------------------------------------


def own_trailer_ops(wc: Path, tip: str) -> dict[str, str]:
    """commit -> the Gitclaim-Op trailer git itself reads from its message."""
    out = git("log", "--format=%H %(trailers:key=Gitclaim-Op,valueonly,separator=%x2C)", tip, cwd=wc)
    return {sha: op.strip() for sha, _, op in (line.partition(" ") for line in out.splitlines() if line)}


def test_gitclaims_own_operations_make_a_history_verify_accepts_and_log_tells_by_its_trailers(
    path_remote: Remote, make_clone: Callable[[Remote, str], Path]
) -> None:
    work = make_clone(path_remote, "ops")
    s = Store(work, agent="alice")
    s.init()
    s.add("Base", task_id="base")
    s.add("Down", task_id="down", depends_on=["base"])
    s.add("Other", task_id="other")
    s.add_many([{"id": "stale", "title": "Goes stale"}, {"id": "passed", "title": "Passed on"}])
    s.edit("other", {"title": "Other, renamed", "priority": "1"})
    s.claim("base")
    s.done("base")
    s.claim("down", agent="bob")
    s.retry("base")  # clears bob's claim on down, downstream, in the same commit
    Store(work, agent="carol", clock=lambda: PAST).claim("stale", ttl=60)
    reaped = s.reap()
    assert [c.task.id for c in reaped.reaped] == ["stale"]
    s.claim("passed")
    s.handoff("passed", "bob")
    s.done("passed", agent="bob")

    code, verified = cli_json("verify", cwd=work)
    assert code == 0, verified
    assert verified["result"]["ok"] is True

    code, log = cli_json("log", cwd=work)
    assert code == 0, log
    entries = log["result"]["entries"]
    told = own_trailer_ops(work, log["result"]["commit"])
    assert len(entries) == len(told)
    for e in entries:
        assert e["violations"] == [], e
        assert e["op"] == told[e["commit"]], e
        assert e["trailers"]["Op"] == [e["op"]], e
    ops = [e["op"] for e in reversed(entries)]
    assert ops == [
        "init", "add", "add", "add", "add", "edit", "claim", "done", "claim", "retry", "claim", "reap",
        "claim", "handoff", "done",
    ]  # fmt: skip

    for task in ("base", "down", "other", "stale", "passed"):
        code, one = cli_json("log", task, cwd=work)
        assert code == 0, one
        for e in one["result"]["entries"]:
            assert e["violations"] == [] and e["op"] == told[e["commit"]], (task, e)
    code, down = cli_json("log", "down", cwd=work)
    retry = down["result"]["entries"][0]
    assert (retry["op"], retry["from"], retry["to"]) == ("retry", "active", "todo")
    code, stale = cli_json("log", "stale", cwd=work)
    reap = stale["result"]["entries"][0]
    assert (reap["op"], reap["from"], reap["to"]) == ("reap", "active", "todo")
