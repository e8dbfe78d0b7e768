"""Enforcement end to end: the server pre-receive hook, the client pre-push hook,
gitclaim's own pushes and the hook installer, driven by plain git as a human
would drive it.

Every test works on its own copy of one store built once per module: a bare
repository served by git daemon on loopback (with or without the server hook)
and a ``git clone -b gitclaim`` working copy (with or without the client
hook). Tasks are edited by hand as TOML text, committed with
``git -c user.name=<agent>`` and pushed with plain ``git push``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gitclaim import Store
from gitclaim.errors import PushRejected
from gitclaim.ids import fanout, task_path
from gitclaim.install import script
from tests.conftest import run_cli
from tests.servers import GIT, GitDaemon, Remote, git, make_bare

ROOT = Path(__file__).resolve().parents[1]
HOOK_BIN = Path(sys.executable).with_name("gitclaim-hook")
PAST = datetime(2020, 1, 1, tzinfo=UTC)
BRANCH_REF = "refs/heads/gitclaim"

# The base store (ids are slugs so that each case can name its task).
#   todo-1     todo, free
#   blocked-1  todo, depends on todo-1 (not done)
#   done-1     done
#   held-1     active, held by alice, no lease
#   stale-1    active, held by alice since 2020 with a 60 s lease: expired
#   live-1     active, held by alice with a one-day lease taken at build time
TASKS = ["todo-1", "blocked-1", "done-1", "held-1", "stale-1", "live-1"]


# --- the shared base store ----------------------------------------------------


@dataclass
class Base:
    plain: Path  # bare store, no hook
    served: Path  # bare store with the server hook (installed by the CLI)
    wc_plain: Path  # `git clone -b gitclaim` working copy, no hook
    wc_hooked: Path  # the same with the client hook (installed by the CLI)
    tip: str


def _env_for_build(mp: pytest.MonkeyPatch, home: Path) -> None:
    mp.setenv("HOME", str(home))
    mp.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for k in ("GIT_AUTHOR", "GIT_COMMITTER"):
        mp.setenv(f"{k}_NAME", "test")
        mp.setenv(f"{k}_EMAIL", "test@example.invalid")
    mp.delenv("GITCLAIM_AGENT", raising=False)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Base]:
    root = tmp_path_factory.mktemp("enforce-base")
    with pytest.MonkeyPatch.context() as mp:
        _env_for_build(mp, root / "home")
        bare = make_bare(root / "plain.git")
        admin = root / "admin"
        git("clone", "-q", str(bare), str(admin))
        s = Store(admin, agent="admin")
        s.init()
        s.add_many(
            [
                {"id": "todo-1", "title": "A free task", "description": "first words"},
                {"id": "blocked-1", "title": "Waits for todo-1", "depends_on": ["todo-1"]},
                {"id": "done-1", "title": "Finished"},
                {"id": "held-1", "title": "Held by alice", "description": "alice works on it"},
                {"id": "stale-1", "title": "Alice's lease ran out"},
                {"id": "live-1", "title": "Alice's lease runs"},
            ]
        )
        s.claim("done-1", agent="alice")
        s.done("done-1", agent="alice")
        s.claim("held-1", agent="alice")
        Store(admin, agent="alice", clock=lambda: PAST).claim("stale-1", ttl=60)
        s.claim("live-1", agent="alice", ttl=86400)
        tip = Remote(bare, str(bare)).ref()
        assert tip is not None

        served = root / "served.git"
        shutil.copytree(bare, served, symlinks=True)
        r = run_cli("hooks", "install", "--server", str(served), "--json", cwd=root)
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(r.stdout)["result"]["path"] == str(served / "hooks" / "pre-receive")

        wc_plain = root / "wc-plain"
        git("clone", "-q", "-b", "gitclaim", str(bare), str(wc_plain))
        wc_hooked = root / "wc-hooked"
        git("clone", "-q", "-b", "gitclaim", str(bare), str(wc_hooked))
        r = run_cli("hooks", "install", "--json", cwd=wc_hooked)
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(r.stdout)["result"] == {
            "path": str(wc_hooked / ".git" / "hooks" / "pre-push"),
            "chained": None,
            "updated": False,
            "gitolite": None,
        }
    yield Base(bare, served, wc_plain, wc_hooked, tip)


@dataclass
class Setup:
    remote: Remote
    wc: Path
    tip: str  # the remote's tip before the test

    def push(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([GIT, "push", *args], cwd=self.wc, capture_output=True, text=True, timeout=60)

    def remote_tip(self) -> str | None:
        return self.remote.ref()

    def remote_has(self, oid: str) -> bool:
        r = subprocess.run([GIT, "cat-file", "-e", oid], cwd=self.remote.path, capture_output=True)
        return r.returncode == 0


Make = Callable[..., Setup]


@pytest.fixture
def make(base: Base, git_daemon: GitDaemon, tmp_path: Path) -> Make:
    """make(server_hook=..., client_hook=...): a fresh served remote and working copy."""

    def _make(*, server_hook: bool, client_hook: bool) -> Setup:
        rname = f"e{uuid.uuid4().hex[:12]}"
        bare = git_daemon.base / f"{rname}.git"
        shutil.copytree(base.served if server_hook else base.plain, bare, symlinks=True)
        remote = Remote(bare, f"git://127.0.0.1:{git_daemon.port}/{rname}.git")
        wc = tmp_path / "wc"
        shutil.copytree(base.wc_hooked if client_hook else base.wc_plain, wc, symlinks=True)
        git("remote", "set-url", "origin", remote.url, cwd=wc)
        return Setup(remote, wc, base.tip)

    return _make


# --- editing tasks by hand ----------------------------------------------------


def path_of(wc: Path, task_id: str) -> Path:
    return wc / task_path(task_id)


def edit(wc: Path, task_id: str, fn: Callable[[str], str]) -> None:
    p = path_of(wc, task_id)
    p.write_text(fn(p.read_text()))


def set_state(state: str) -> Callable[[str], str]:
    return lambda text: re.sub(r'^state = ".*"$', f'state = "{state}"', text, count=1, flags=re.M)


def add_claim(holder: str) -> Callable[[str], str]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return lambda text: text.rstrip("\n") + f'\n\n[claim]\nholder = "{holder}"\nclaimed_at = {now}\n'


def drop_claim(text: str) -> str:
    return text[: text.index("[claim]")].rstrip("\n") + "\n"


def then(*fns: Callable[[str], str]) -> Callable[[str], str]:
    def run(text: str) -> str:
        for f in fns:
            text = f(text)
        return text

    return run


def git_as(agent: str, *args: str, cwd: Path) -> str:
    """Run git as ``agent``, the way a human does: ``git -c user.name=...`` (the
    test session's GIT_AUTHOR_*/GIT_COMMITTER_* would override it, so they go)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_"))}
    who = ("-c", f"user.name={agent}", "-c", f"user.email={agent}@agents.invalid")
    subprocess.run([GIT, *who, *args], cwd=cwd, env=env, check=True, capture_output=True)
    return git("rev-parse", "HEAD", cwd=cwd).strip()


def commit(wc: Path, agent: str, message: str) -> str:
    git("add", "-A", cwd=wc)
    return git_as(agent, "commit", "-q", "-m", message, cwd=wc)


def remote_lines(stderr: str) -> str:
    return "\n".join(line for line in stderr.splitlines() if line.startswith("remote:"))


def violation_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.search(r"\[[a-z-]+\]", line)]


# --- the refusal cases: each edits the working copy and says how to push ------


@dataclass
class Case:
    push_args: tuple[str, ...]
    task: str | None  # the task the message must name (None: a history violation)
    rule: str
    says: str  # a fragment of the message
    new: str | None  # the commit that must not reach the remote


def claim_done(wc: Path) -> Case:
    edit(wc, "done-1", then(set_state("active"), add_claim("bob")))
    return Case((), "done-1", "transition", "done -> active is not a legal move", commit(wc, "bob", "claim done-1"))


def claim_blocked(wc: Path) -> Case:
    edit(wc, "blocked-1", then(set_state("active"), add_claim("bob")))
    new = commit(wc, "bob", "claim blocked-1")
    return Case((), "blocked-1", "claimable", "dependencies are not done: todo-1 (todo)", new)


def replace_holder(wc: Path) -> Case:
    edit(wc, "held-1", lambda t: t.replace('holder = "alice"', 'holder = "bob"'))
    new = commit(wc, "bob", "take held-1")
    return Case((), "held-1", "ownership", "held by alice, whose lease has not expired", new)


def complete_not_held(wc: Path) -> Case:
    edit(wc, "held-1", then(set_state("done"), drop_claim))
    new = commit(wc, "bob", "done held-1")
    return Case((), "held-1", "ownership", "only the holder may done it (held by alice; pushed by bob)", new)


def malformed_toml(wc: Path) -> Case:
    path_of(wc, "todo-1").write_text('schema = 1\nid = "todo-1\ntitle = [broken\n')
    return Case((), "todo-1", "schema", "malformed TOML", commit(wc, "bob", "break todo-1"))


def unknown_state(wc: Path) -> Case:
    edit(wc, "todo-1", set_state("doing"))
    return Case((), "todo-1", "schema", "unknown state 'doing'", commit(wc, "bob", "todo-1 is doing"))


def deleted_task(wc: Path) -> Case:
    path_of(wc, "todo-1").unlink()
    return Case((), "todo-1", "deleted", "must not be deleted (cancel it instead)", commit(wc, "bob", "rm todo-1"))


def force_push(wc: Path) -> Case:
    git("reset", "-q", "--hard", "HEAD~1", cwd=wc)
    edit(wc, "todo-1", lambda t: t.replace("first words", "rewritten history"))
    new = commit(wc, "bob", "a legal edit on an older tip")
    return Case(("--force",), None, "history", "rewrites gitclaim", new)


def delete_branch(wc: Path) -> Case:
    return Case(("origin", "--delete", "gitclaim"), None, "history", "must not be deleted", None)


def wrong_fanout(wc: Path) -> Case:
    folder = "00" if fanout("new-1") != "00" else "01"
    (wc / "tasks" / folder).mkdir(exist_ok=True)
    (wc / "tasks" / folder / "new-1.toml").write_text('schema = 1\nid = "new-1"\ntitle = "misplaced"\nstate = "todo"\n')
    return Case((), "new-1", "layout", f"belongs in tasks/{fanout('new-1')}/new-1.toml", commit(wc, "bob", "add"))


def merge_commit(wc: Path) -> Case:
    """A merge that keeps one side's version of a task the other side changed
    drops that change: refused (a clean merge is accepted: test_truth)."""
    git("switch", "-q", "-c", "side", cwd=wc)
    edit(wc, "todo-1", lambda t: t.replace("first words", "from a side branch"))
    commit(wc, "bob", "legal on its own")
    git("switch", "-q", "gitclaim", cwd=wc)
    edit(wc, "todo-1", lambda t: t.replace("first words", "from the store branch"))
    commit(wc, "bob", "legal on its own too")
    new = git_as("bob", "merge", "-q", "-s", "ours", "-m", "merge side", "side", cwd=wc)
    return Case((), "todo-1", "merge", "the merge drops the second parent's change", new)


REFUSED = {
    f.__name__: f
    for f in (
        claim_done,
        claim_blocked,
        replace_holder,
        complete_not_held,
        malformed_toml,
        unknown_state,
        deleted_task,
        force_push,
        delete_branch,
        wrong_fanout,
        merge_commit,
    )
}


def assert_names(text: str, case: Case) -> None:
    lines = violation_lines(text)
    assert lines, text
    hit = [
        line
        for line in lines
        if f"[{case.rule}]" in line
        and case.says in line
        and (f"/{case.task}.toml" in line if case.task else BRANCH_REF in line)
    ]
    assert hit, f"no violation naming {case.task} [{case.rule}] {case.says!r} in:\n{text}"


# --- the server hook ----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_server_hook_refuses_a_plain_git_push(make: Make, name: str) -> None:
    s = make(server_hook=True, client_hook=False)
    case = REFUSED[name](s.wc)
    r = s.push(*case.push_args)
    assert r.returncode != 0, r.stderr
    said = remote_lines(r.stderr)
    assert "gitclaim: push refused" in said, r.stderr
    assert_names(said, case)
    assert "pre-receive hook declined" in r.stderr
    assert s.remote_tip() == s.tip  # the ref did not move (and still exists)


def _three_commits(wc: Path) -> tuple[str, str, str]:
    edit(wc, "todo-1", lambda t: t.replace("first words", "first words, revised"))
    first = commit(wc, "bob", "legal: description")
    edit(wc, "done-1", then(set_state("active"), add_claim("bob")))
    middle = commit(wc, "bob", "illegal: claim a done task")
    edit(wc, "held-1", lambda t: t.replace("tags = []", 'tags = ["later"]'))
    last = commit(wc, "bob", "legal: tag")
    return first, middle, last


@pytest.mark.parametrize("where", ["server", "client"])
def test_a_range_with_one_illegal_commit_in_the_middle_is_refused_naming_it(make: Make, where: str) -> None:
    s = make(server_hook=where == "server", client_hook=where == "client")
    first, middle, last = _three_commits(s.wc)
    r = s.push()
    assert r.returncode != 0
    said = remote_lines(r.stderr) if where == "server" else r.stderr
    lines = violation_lines(said)
    assert len(lines) == 1, said
    assert f"{middle[:10]} " in lines[0] and "[transition]" in lines[0] and "done-1" in lines[0]
    assert first[:10] not in said and last[:10] not in said
    assert s.remote_tip() == s.tip
    assert not s.remote_has(middle) and not s.remote_has(last)  # nothing of the push stays


# --- legal hand edits ---------------------------------------------------------


def legal_description(wc: Path) -> str:
    # anyone may edit the plain fields of any task, even one alice holds
    edit(wc, "held-1", lambda t: t.replace("alice works on it", "alice works on it; bob added a note"))
    return commit(wc, "bob", "describe held-1")


def legal_tag(wc: Path) -> str:
    edit(wc, "todo-1", lambda t: t.replace("tags = []", 'tags = ["hand-made"]'))
    return commit(wc, "bob", "tag todo-1")


def legal_new_task(wc: Path) -> str:
    folder = wc / "tasks" / fanout("by-hand")
    folder.mkdir(exist_ok=True)
    (folder / "by-hand.toml").write_text(
        'schema = 1\nid = "by-hand"\ntitle = "Written by hand"\nstate = "todo"\ndepends_on = ["done-1"]\n'
    )
    return commit(wc, "carol", "add by-hand")


def legal_claim(wc: Path) -> str:
    edit(wc, "todo-1", then(set_state("active"), add_claim("bob")))
    return commit(wc, "bob", "claim todo-1")


def legal_takeover(wc: Path) -> str:
    # alice's 60 s lease from 2020 is long gone: bob may take the task over
    edit(wc, "stale-1", then(drop_claim, add_claim("bob")))
    return commit(wc, "bob", "take over stale-1")


LEGAL = {f.__name__: f for f in (legal_description, legal_tag, legal_new_task, legal_claim, legal_takeover)}


@pytest.mark.parametrize("where", ["server", "client"])
@pytest.mark.parametrize("name", sorted(LEGAL))
def test_legal_hand_edits_pass(make: Make, name: str, where: str) -> None:
    s = make(server_hook=where == "server", client_hook=where == "client")
    new = LEGAL[name](s.wc)
    r = s.push()
    assert r.returncode == 0, r.stderr
    assert "push refused" not in r.stderr
    assert s.remote_tip() == new


# --- the client hook ----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_client_hook_refuses_a_plain_git_push_locally(make: Make, name: str) -> None:
    s = make(server_hook=False, client_hook=True)  # the remote would take anything
    case = REFUSED[name](s.wc)
    r = s.push(*case.push_args)
    assert r.returncode != 0, r.stderr
    assert "remote:" not in r.stderr  # refused before anything was sent
    assert "gitclaim: push refused" in r.stderr
    assert_names(r.stderr, case)
    assert "failed to push some refs" in r.stderr
    assert s.remote_tip() == s.tip
    if case.new is not None:
        assert not s.remote_has(case.new)


def test_the_same_pushes_without_any_hook_do_reach_the_remote(make: Make) -> None:
    # the control for the client-hook tests: their remote accepts all of this
    s = make(server_hook=False, client_hook=False)
    new = complete_not_held(s.wc).new
    assert s.push().returncode == 0
    assert s.remote_tip() == new
    r = s.push("origin", "--delete", "gitclaim")
    assert r.returncode == 0, r.stderr
    assert s.remote_tip() is None


# --- gitclaim's own pushes ----------------------------------------------------


def write_hook(path: Path, body: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = f"#!/bin/sh\ncat > /dev/null\n{body}\n"
    path.write_text(text)
    path.chmod(0o755)
    return text


def cli_json(*args: str, cwd: Path) -> tuple[int, dict[str, Any]]:
    r = run_cli(*args, "--json", cwd=cwd)
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, r.stdout + r.stderr
    obj = json.loads(lines[0])
    assert isinstance(obj, dict)
    return r.returncode, obj


@pytest.mark.parametrize("chained", [True, False], ids=["chained", "alone"])
@pytest.mark.parametrize("user_exit", [1, 0])
def test_gitclaim_push_runs_the_users_pre_push_hook(make: Make, user_exit: int, chained: bool) -> None:
    s = make(server_hook=False, client_hook=False)
    seen = s.wc.parent / "user-hook-saw"
    hooks = s.wc / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "pre-push").write_text(
        f'#!/bin/sh\necho "$1 $2" > "{seen}"\ncat >> "{seen}"\n'
        f'echo "user hook says {user_exit}" >&2\nexit {user_exit}\n'
    )
    (hooks / "pre-push").chmod(0o755)
    run = hooks / "pre-push"
    if chained:  # installed before gitclaim's hook, so kept beside it
        code, obj = cli_json("hooks", "install", cwd=s.wc)
        assert code == 0 and obj["result"] == {
            "path": str(hooks / "pre-push"),
            "chained": str(hooks / "pre-push.chained"),
            "updated": False,
            "gitolite": None,
        }
        run = hooks / "pre-push.chained"
    code, obj = cli_json("claim", "todo-1", "--agent", "bob", cwd=s.wc)
    args, line = seen.read_text().splitlines()
    assert args == f"origin {s.remote.url}"  # the user's hook saw what git would give it
    local_ref, new, remote_ref, old = line.split()
    assert (local_ref, remote_ref, old) == (BRANCH_REF, BRANCH_REF, s.tip)
    if user_exit:
        assert code == 15, obj
        err = obj["error"]
        assert err["code"] == "push_rejected"
        assert "user hook says 1" in err["message"] and str(run) in err["message"]
        assert s.remote_tip() == s.tip
        assert not s.remote_has(new)
    else:
        assert code == 0, obj
        assert s.remote_tip() == new
        shown = git("show", f"{new}:{task_path('todo-1')}", cwd=s.remote.path)
        assert 'state = "active"' in shown and 'holder = "bob"' in shown


def test_gitclaim_push_to_a_server_whose_pre_receive_refuses_is_push_rejected(make: Make) -> None:
    s = make(server_hook=False, client_hook=False)
    write_hook(s.remote.path / "hooks" / "pre-receive", 'echo "site policy: the store is frozen" >&2\nexit 1')
    code, obj = cli_json("claim", "todo-1", "--agent", "bob", cwd=s.wc)
    assert code == 15, obj
    err = obj["error"]
    assert isinstance(err, dict) and err["code"] == "push_rejected"
    assert "site policy: the store is frozen" in err["message"]
    assert s.remote_tip() == s.tip


def test_gitclaim_push_refused_by_our_server_hook_is_push_rejected_with_its_text(make: Make) -> None:
    # A clock two days fast makes gitclaim believe alice's one-day lease on
    # live-1 expired; the server, on its own clock, knows it has not.
    s = make(server_hook=True, client_hook=False)
    fast = Store(s.wc, agent="bob", clock=lambda: datetime.now(UTC) + timedelta(days=2))
    with pytest.raises(PushRejected) as ei:
        fast.claim("live-1")
    e = ei.value
    assert e.exit_code == 15
    assert "live-1" in e.message and "[ownership]" in e.message
    assert "whose lease has not expired" in e.message
    assert s.remote_tip() == s.tip


# --- installation -------------------------------------------------------------


@pytest.mark.parametrize("form", ["relative", "absolute", "home"])
def test_client_install_respects_core_hooks_path(make: Make, tmp_path: Path, form: str) -> None:
    s = make(server_hook=False, client_hook=False)
    setting, where = {
        "relative": ("my-hooks", s.wc / "my-hooks"),
        "absolute": (str(tmp_path / "abs-hooks"), tmp_path / "abs-hooks"),
        "home": ("~/git-hooks", Path(os.environ["HOME"]) / "git-hooks"),
    }[form]
    git("config", "core.hooksPath", setting, cwd=s.wc)
    (s.wc / "sub").mkdir()
    code, obj = cli_json("-C", "sub", "hooks", "install", cwd=s.wc)  # from a subfolder: still the top
    assert code == 0, obj
    assert obj["result"]["path"] == str(where / "pre-push")
    assert not (s.wc / ".git" / "hooks" / "pre-push").exists()
    case = claim_done(s.wc)
    r = s.push()
    assert r.returncode != 0
    assert_names(r.stderr, case)  # git ran the hook from core.hooksPath
    assert s.remote_tip() == s.tip


def test_server_install_respects_a_relative_core_hooks_path(make: Make) -> None:
    s = make(server_hook=False, client_hook=False)
    git("config", "core.hooksPath", "custom-hooks", cwd=s.remote.path)
    code, obj = cli_json("hooks", "install", "--server", str(s.remote.path), cwd=s.wc)
    assert code == 0, obj
    assert obj["result"]["path"] == str(s.remote.path / "custom-hooks" / "pre-receive")
    case = deleted_task(s.wc)
    r = s.push()
    assert r.returncode != 0
    assert_names(remote_lines(r.stderr), case)
    assert s.remote_tip() == s.tip


@pytest.mark.parametrize("user_exit", [1, 0])
@pytest.mark.parametrize("kind", ["pre-push", "pre-receive"])
def test_an_existing_hook_is_chained_still_runs_and_can_refuse(make: Make, kind: str, user_exit: int) -> None:
    s = make(server_hook=False, client_hook=False)
    hooks = s.remote.path / "hooks" if kind == "pre-receive" else s.wc / ".git" / "hooks"
    ran = s.wc.parent / f"{kind}-ran"
    original = write_hook(
        hooks / kind, f'touch "{ran}"\necho "own {kind} hook: exit {user_exit}" >&2\nexit {user_exit}'
    )
    args = ("--server", str(s.remote.path)) if kind == "pre-receive" else ()
    code, obj = cli_json("hooks", "install", *args, cwd=s.wc)
    assert code == 0, obj
    assert obj["result"]["chained"] == str(hooks / f"{kind}.chained")
    assert (hooks / f"{kind}.chained").read_text() == original
    assert (hooks / kind).read_text() == script(kind, sys.executable)

    new = legal_tag(s.wc)  # our check passes; the user's own hook decides
    r = s.push()
    assert ran.exists(), f"the chained {kind} hook did not run:\n{r.stderr}"
    assert f"own {kind} hook: exit {user_exit}" in r.stderr
    if user_exit:
        assert r.returncode != 0
        assert s.remote_tip() == s.tip
    else:
        assert r.returncode == 0, r.stderr
        assert s.remote_tip() == new


def test_an_illegal_push_is_refused_before_the_chained_hook_runs(make: Make) -> None:
    s = make(server_hook=False, client_hook=False)
    hooks = s.wc / ".git" / "hooks"
    ran = s.wc.parent / "ran"
    write_hook(hooks / "pre-push", f'touch "{ran}"\nexit 0')
    assert run_cli("hooks", "install", cwd=s.wc).returncode == 0
    case = unknown_state(s.wc)
    r = s.push()
    assert r.returncode != 0
    assert_names(r.stderr, case)
    assert not ran.exists()


def test_reinstalling_updates_our_hook_without_chaining_itself(make: Make) -> None:
    s = make(server_hook=False, client_hook=True)
    hooks = s.wc / ".git" / "hooks"
    # an older gitclaim hook, with another interpreter baked in
    (hooks / "pre-push").write_text(script("pre-push", "/opt/old/python3"))
    for _ in range(2):
        code, obj = cli_json("hooks", "install", cwd=s.wc)
        assert code == 0, obj
        assert obj["result"] == {"path": str(hooks / "pre-push"), "chained": None, "updated": True, "gitolite": None}
    assert (hooks / "pre-push").read_text() == script("pre-push", sys.executable)
    assert not (hooks / "pre-push.chained").exists()
    assert os.access(hooks / "pre-push", os.X_OK)
    case = claim_blocked(s.wc)  # the one hook still runs, once
    r = s.push()
    assert r.returncode != 0
    assert r.stderr.count("gitclaim: push refused") == 1
    assert_names(r.stderr, case)


def test_reinstalling_keeps_the_users_chained_hook_as_it_is(make: Make) -> None:
    s = make(server_hook=False, client_hook=False)
    hooks = s.wc / ".git" / "hooks"
    original = write_hook(hooks / "pre-push", "exit 0")
    assert run_cli("hooks", "install", cwd=s.wc).returncode == 0
    code, obj = cli_json("hooks", "install", cwd=s.wc)
    assert code == 0, obj
    assert obj["result"]["updated"] is True
    assert (hooks / "pre-push.chained").read_text() == original
    assert sorted(
        p.name for p in hooks.iterdir() if p.name.startswith("pre-push") and not p.name.endswith(".sample")
    ) == ["pre-push", "pre-push.chained"]


@pytest.mark.parametrize("kind", ["pre-push", "pre-receive"])
def test_install_refuses_when_both_a_foreign_hook_and_a_chained_one_exist(make: Make, kind: str) -> None:
    s = make(server_hook=False, client_hook=False)
    hooks = s.remote.path / "hooks" if kind == "pre-receive" else s.wc / ".git" / "hooks"
    hook = write_hook(hooks / kind, "echo mine\nexit 0")
    chained = write_hook(hooks / f"{kind}.chained", "echo older\nexit 0")
    args = ("--server", str(s.remote.path)) if kind == "pre-receive" else ()
    code, obj = cli_json("hooks", "install", *args, cwd=s.wc)
    assert code == 2, obj
    err = obj["error"]
    assert isinstance(err, dict) and err["code"] == "bad_input"
    assert f"{kind}.chained" in err["message"]
    assert (hooks / kind).read_text() == hook
    assert (hooks / f"{kind}.chained").read_text() == chained


def test_server_install_on_a_non_bare_repository_refuses(make: Make) -> None:
    s = make(server_hook=False, client_hook=False)
    for target in (s.wc, s.wc / "tasks"):
        code, obj = cli_json("hooks", "install", "--server", str(target), cwd=s.wc.parent)
        assert code == 2, obj
        err = obj["error"]
        assert isinstance(err, dict) and err["code"] == "bad_input"
        assert "not a bare repository" in err["message"]
    assert not (s.wc / ".git" / "hooks" / "pre-receive").exists()


def test_server_hook_checks_the_store_branch_named_at_install(make: Make) -> None:
    s = make(server_hook=False, client_hook=False)
    code, obj = cli_json("--branch", "tasks", "hooks", "install", "--server", str(s.remote.path), cwd=s.wc)
    assert code == 0, obj
    assert git("config", "gitclaim.branch", cwd=s.remote.path).strip() == "tasks"
    r = s.push("origin", "gitclaim:tasks")  # a new store branch: every commit from the root is checked
    assert r.returncode == 0, r.stderr
    assert s.remote.ref("tasks") == s.tip
    case = complete_not_held(s.wc)
    r = s.push("origin", "gitclaim:tasks")
    assert r.returncode != 0
    assert_names(remote_lines(r.stderr), case)
    assert s.remote.ref("tasks") == s.tip
    r = s.push("origin", "gitclaim")  # here, gitclaim is just another branch
    assert r.returncode == 0, r.stderr
    assert s.remote_tip() == case.new


# --- other branches and refs --------------------------------------------------


def test_other_branches_pass_both_hooks_untouched(make: Make) -> None:
    s = make(server_hook=True, client_hook=True)
    git("switch", "-q", "-c", "main", cwd=s.wc)
    path_of(s.wc, "todo-1").unlink()
    path_of(s.wc, "done-1").write_text("not = [toml")
    (s.wc / "tasks" / "zz").mkdir(exist_ok=True)
    (s.wc / "tasks" / "zz" / "notes.txt").write_text("anything\n")
    first = commit(s.wc, "mallory", "arbitrary content on main")
    r = s.push("origin", "main")
    assert r.returncode == 0, r.stderr
    assert s.remote.ref("main") == first
    git("commit", "-q", "--amend", "-m", "rewritten", cwd=s.wc)
    second = git("rev-parse", "HEAD", cwd=s.wc).strip()
    r = s.push("--force", "origin", "main")  # a rewrite of main
    assert r.returncode == 0, r.stderr
    assert s.remote.ref("main") == second
    r = s.push("origin", "main:refs/gitclaim/alive/mallory")  # a liveness ref
    assert r.returncode == 0, r.stderr
    r = s.push("origin", "--delete", "main")
    assert r.returncode == 0, r.stderr
    assert s.remote.ref("main") is None
    assert s.remote_tip() == s.tip


# --- the shipped scripts and the pre-commit framework entry -------------------


@pytest.mark.parametrize("kind", ["pre-push", "pre-receive"])
def test_shipped_hook_scripts_equal_what_install_writes(kind: str) -> None:
    shipped = ROOT / "hooks" / kind
    assert shipped.read_text() == script(kind)
    assert os.access(shipped, os.X_OK)


def test_pre_commit_framework_entry_points_at_the_console_script() -> None:
    text = (ROOT / ".pre-commit-hooks.yaml").read_text()
    assert "entry: gitclaim-hook pre-commit" in text and "stages: [pre-push]" in text
    assert HOOK_BIN.exists()


def _pre_commit_env(s: Setup, from_ref: str, to_ref: str, remote_branch: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PRE_COMMIT_FROM_REF=from_ref,
        PRE_COMMIT_TO_REF=to_ref,
        PRE_COMMIT_REMOTE_BRANCH=remote_branch,
        PRE_COMMIT_LOCAL_BRANCH=remote_branch,
        PRE_COMMIT_REMOTE_NAME="origin",
        PRE_COMMIT_REMOTE_URL=s.remote.url,
    )
    return env


@pytest.mark.parametrize(
    ("name", "branch", "expect"),
    [
        ("claim_done", BRANCH_REF, 1),
        ("legal_claim", BRANCH_REF, 0),
        ("claim_done", "refs/heads/main", 0),  # another branch: not ours to check
    ],
)
def test_pre_commit_framework_hook(make: Make, name: str, branch: str, expect: int) -> None:
    s = make(server_hook=False, client_hook=False)
    fn = REFUSED.get(name) or LEGAL[name]
    out = fn(s.wc)
    new = out.new if isinstance(out, Case) else out
    assert new is not None
    r = subprocess.run(
        [str(HOOK_BIN), "pre-commit"],
        cwd=s.wc,
        env=_pre_commit_env(s, s.tip, new, branch),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == expect, r.stderr
    if expect:
        assert isinstance(out, Case)
        assert "gitclaim: push refused" in r.stderr
        assert_names(r.stderr, out)
    else:
        assert r.stderr == ""
