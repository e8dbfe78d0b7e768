"""Archive: finished tasks move out of the live folder in one commit.

Real bare remotes and clones (a path, git daemon), plain git for the pushes a
human makes by hand, separate processes for the race. What is pinned: the
commit moves exactly the tasks finished before the cut, unchanged; the
listings lose those tasks and nothing else; show and log read an archived
task's whole history across the move (and across a compaction); a
dependency on an archived done task is met; an archived id is neither
claimed nor reused; the server hook, the client hook and verify accept only
that exact move.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gitclaim import Store
from gitclaim.errors import AlreadyExists, BadInput, Blocked, NotAllowed, NotClaimable, VerifyFailed
from gitclaim.ids import archive_path, task_path
from gitclaim.units import moment

from .conftest import run_cli
from .servers import GIT, GitDaemon, Remote, clone, copy_remote, git

OLD = datetime(2025, 6, 1, tzinfo=UTC)  # "a long time ago": before every cut the tests use
CUT = "2026-01-01"

MakeClone = Callable[[Remote, str], Path]


def _store(remote: Remote, make_clone: MakeClone) -> Store:
    """ops's store. Finished in 2025: old-done, old-cancel, late-note (a note today);
    finished today: new-done, reopened (done in 2025, reopened and done again today);
    never finished: todo-1, held (claimed in 2025), failed-1 (failed in 2025);
    needs-done and needs-cancel wait on old-done and old-cancel."""
    s = Store(make_clone(remote, "ops"), agent="ops")
    s.init()
    ids = ["old-done", "old-cancel", "late-note", "new-done", "reopened", "todo-1", "held", "failed-1"]
    s.add_many([{"id": i, "title": f"Task {i}"} for i in ids])
    s.add_many(
        [
            {"id": "needs-done", "title": "After old-done", "depends_on": ["old-done"]},
            {"id": "needs-cancel", "title": "After old-cancel", "depends_on": ["old-cancel"]},
        ]
    )
    past = Store(s.path, agent="ops", clock=lambda: OLD)
    for tid in ("old-done", "late-note", "reopened"):
        past.claim(tid)
        past.done(tid)
    past.cancel("old-cancel")
    past.claim("held")
    past.claim("failed-1")
    past.fail("failed-1", reason="broken")
    s.note("late-note", "a remark after the fact")
    s.reopen("reopened")
    s.claim("reopened")
    s.done("reopened")
    s.claim("new-done")
    s.done("new-done")
    return s


def _count(remote: Remote) -> int:
    return int(git("rev-list", "--count", "refs/heads/gitclaim", cwd=remote.path).strip())


def _listings(s: Store) -> tuple[list[str], list[str], dict[str, list[str]]]:
    board = s.board().to_json()["columns"]
    return (
        [t.id for t in s.list().tasks],
        [t.id for t in s.ready().tasks],
        {state: [t["id"] for t in tasks] for state, tasks in board.items()},
    )


def test_archive_moves_exactly_the_tasks_finished_before_the_cut_in_one_commit(
    remote: Remote, make_clone: MakeClone
) -> None:
    s = _store(remote, make_clone)
    lst, ready, board = _listings(s)
    n = _count(remote)

    dry = s.archive(done_before=CUT, dry_run=True)
    assert dry.archived == ("late-note", "old-cancel", "old-done") and not dry.changed and dry.commit is None
    assert _count(remote) == n

    r = s.archive(done_before=CUT)
    assert r.archived == ("late-note", "old-cancel", "old-done") and r.changed
    assert _count(remote) == n + 1 and remote.ref() == r.commit
    # One commit: each file renamed unchanged (100% similar), nothing else touched.
    moved = git("diff-tree", "-r", "-M", "--name-status", "--no-commit-id", r.commit or "", cwd=remote.path)
    assert sorted(moved.split("\n")[:-1]) == sorted(
        f"R100\t{task_path(t)}\t{archive_path(t)}" for t in ("late-note", "old-cancel", "old-done")
    )
    msg = git("log", "-1", "--format=%B", r.commit or "", cwd=remote.path)
    assert "Gitclaim-Op: archive" in msg and "Gitclaim-Agent: ops" in msg
    assert "Gitclaim-Before: 2026-01-01T00:00:00Z" in msg
    assert [line for line in msg.splitlines() if line.startswith("Gitclaim-Task:")] == [
        "Gitclaim-Task: late-note",
        "Gitclaim-Task: old-cancel",
        "Gitclaim-Task: old-done",
    ]

    # The listings: the archived tasks gone, nothing else changed.
    gone = set(r.archived)
    lst2, ready2, board2 = _listings(s)
    assert lst2 == [t for t in lst if t not in gone]
    assert board2 == {state: [t for t in ids if t not in gone] for state, ids in board.items()}
    assert ready2 == ready
    fresh = Store(make_clone(remote, "fresh"), agent="fresh")
    assert _listings(fresh) == (lst2, ready2, board2)
    for cmd in ("list", "ready", "board"):  # the CLI's fast path over the read index
        out = run_cli(cmd, "--json", cwd=fresh.path)
        assert out.returncode == 0, out.stderr
        res = json.loads(out.stdout)["result"]
        shown = res["tasks"] if cmd != "board" else [t for col in res["columns"].values() for t in col]
        assert {t["id"] for t in shown} == set(lst2 if cmd != "ready" else ready2), cmd

    # Again: nothing left to archive, and no commit.
    cli = run_cli("archive", "--done-before", CUT, "--json", "--agent", "ops", cwd=s.path)
    assert cli.returncode == 0, cli.stderr
    again = json.loads(cli.stdout)["result"]
    assert again == {
        "before": "2026-01-01T00:00:00Z",
        "archived": [],
        "count": 0,
        "commit": None,
        "changed": False,
        "dry_run": False,
        "retries": 0,
    }
    assert _count(remote) == n + 1
    assert s.verify().ok


def test_a_relative_age_and_an_iso_time_are_both_a_cut(path_remote: Remote, make_clone: MakeClone) -> None:
    s = _store(path_remote, make_clone)
    assert s.archive(done_before="30d", dry_run=True).archived == ("late-note", "old-cancel", "old-done")
    assert s.archive(done_before="2025-06-01T00:00:00Z", dry_run=True).archived == ()  # not before OLD itself
    assert set(s.archive(done_before="2999-01-01", dry_run=True).archived) == {
        "late-note", "old-cancel", "old-done", "new-done", "reopened",
    }  # fmt: skip
    now = datetime(2026, 3, 1, tzinfo=UTC)
    assert moment("2w", "x", now) == datetime(2026, 2, 15, tzinfo=UTC)
    assert moment("2026-02-01T12:00:00+02:00", "x", now) == datetime(2026, 2, 1, 10, tzinfo=UTC)
    with pytest.raises(BadInput):
        s.archive(done_before="last tuesday")
    r = run_cli("archive", "--done-before", "soon", "--json", cwd=s.path)
    assert r.returncode == 2 and json.loads(r.stdout)["error"]["code"] == "bad_input"


def test_show_and_log_of_an_archived_task_give_its_whole_history(path_remote: Remote, make_clone: MakeClone) -> None:
    s = _store(path_remote, make_clone)
    before = [(e.commit, e.op) for e in s.log("late-note").entries]
    assert [op for _, op in before] == ["note", "done", "claim", "add"]
    r = s.archive(done_before=CUT)
    after = s.log("late-note").entries
    assert [(e.commit, e.op) for e in after] == [(r.commit, "archive"), *before]
    assert after[0].violations == () and after[0].record is not None and after[0].record.op == "archive"

    fresh = Store(make_clone(path_remote, "fresh"), agent="fresh")
    view = fresh.show("old-done")
    assert view.archived and view.task.state.value == "done"
    assert [e.op for e in view.history] == ["archive", "done", "claim", "add"]
    out = run_cli("show", "old-cancel", "--json", cwd=fresh.path)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)["result"]
    assert res["path"] == archive_path("old-cancel") and res["archived"] is True
    assert [e["op"] for e in res["history"]] == ["archive", "cancel", "add"]
    live = json.loads(run_cli("show", "todo-1", "--json", cwd=fresh.path).stdout)["result"]
    assert live["path"] == task_path("todo-1") and live["archived"] is False

    # Across a compaction: the archive ref keeps the history before the move.
    s.compact()
    late = Store(make_clone(path_remote, "late"), agent="late")
    assert [e.op for e in late.show("old-done").history] == ["archive", "done", "claim", "add"]
    assert late.verify().ok


def test_archive_after_a_compaction_reads_finish_times_through_the_archive_ref(
    path_remote: Remote, make_clone: MakeClone
) -> None:
    s = _store(path_remote, make_clone)
    s.compact()
    late = Store(make_clone(path_remote, "late"), agent="late")
    assert late.archive(done_before=CUT).archived == ("late-note", "old-cancel", "old-done")


def test_a_dependency_on_an_archived_task_keeps_the_rule_of_its_state(
    path_remote: Remote, make_clone: MakeClone
) -> None:
    s = _store(path_remote, make_clone)
    assert [t.id for t in s.ready().tasks if t.id.startswith("needs")] == ["needs-done"]
    s.archive(done_before=CUT)
    fresh = Store(make_clone(path_remote, "fresh"), agent="fresh")
    # done and archived: met, in the API's ready, the CLI's (the read index) and next
    assert "needs-done" in [t.id for t in fresh.ready().tasks]
    cli = json.loads(run_cli("ready", "--json", cwd=fresh.path).stdout)["result"]["tasks"]
    assert "needs-done" in [t["id"] for t in cli]
    # cancelled and archived: blocks, as a cancelled dependency always did
    with pytest.raises(Blocked) as e:
        fresh.claim("needs-cancel")
    assert e.value.details["blockers"] == [{"id": "old-cancel", "state": "cancelled"}]
    blocked = {b.task.id: b.blockers for b in fresh.blocked().tasks}
    assert blocked["needs-cancel"] == ({"id": "old-cancel", "state": "cancelled"},)
    assert "needs-done" not in blocked
    assert fresh.show("needs-done").blockers == ()
    assert '"old-done" -> "needs-done" [style=dashed, label="archived"];' in fresh.graph(fmt="dot").text
    assert fresh.claim("needs-done").changed
    # a new task may wait on an archived one; it may not take an archived id
    assert fresh.add("After the old work", task_id="follow-up", depends_on=["old-done"]).tasks
    assert "follow-up" in [t.id for t in fresh.ready().tasks]
    with pytest.raises(AlreadyExists):
        fresh.add("Again", task_id="old-done")
    assert fresh.verify().ok


@pytest.mark.parametrize(
    "verb",
    [("claim",), ("reopen",), ("retry",), ("note", "more"), ("edit", "--set", "title=new"), ("cancel",)],
    ids=lambda v: v[0],
)
def test_claim_and_the_verbs_on_an_archived_id_say_it_is_archived(
    verb: tuple[str, ...], path_remote: Remote, make_clone: MakeClone
) -> None:
    s = _store(path_remote, make_clone)
    s.archive(done_before=CUT)
    tip = path_remote.ref()
    name, *rest = verb
    r = run_cli(name, "old-done", *rest, "--json", "--agent", "bob", cwd=s.path)
    assert r.returncode == 5, r.stdout + r.stderr
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "not_claimable" and err["details"] == {"task": "old-done", "state": "done", "archived": True}
    assert "archived" in err["message"] and "Traceback" not in r.stderr
    assert path_remote.ref() == tip
    with pytest.raises(NotClaimable):
        s.claim("old-cancel")


def test_only_an_operator_archives_where_the_store_names_roles(path_remote: Remote, make_clone: MakeClone) -> None:
    s = _store(path_remote, make_clone)
    s.access_grant("operator", "ops")  # the first policy: ops is admin and operator
    tip = path_remote.ref()
    bob = Store(make_clone(path_remote, "bob"), agent="bob")
    with pytest.raises(NotAllowed) as e:
        bob.archive(done_before=CUT)
    assert e.value.details["rule"] == "operator" and path_remote.ref() == tip
    r = run_cli("archive", "--done-before", CUT, "--json", "--agent", "bob", cwd=bob.path)
    assert r.returncode == 22 and json.loads(r.stdout)["error"]["code"] == "not_allowed"
    assert s.archive(done_before=CUT).changed


# --- by hand, with plain git: the hooks and verify ---------------------------------------


def _try_git(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GIT, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def _worktree(remote: Remote, dest: Path) -> Path:
    wc = clone(remote, dest)
    git("fetch", "-q", "origin", "gitclaim", cwd=wc)
    git("checkout", "-q", "-b", "gitclaim", "--track", "origin/gitclaim", cwd=wc)
    return wc


def _mv(wc: Path, a: str, b: str) -> None:
    (wc / b).parent.mkdir(parents=True, exist_ok=True)
    git("mv", a, b, cwd=wc)


def _commit(wc: Path, subject: str, tasks: tuple[str, ...], op: str = "archive") -> str:
    trailers = [f"Gitclaim-Op: {op}", "Gitclaim-Agent: ops", *(f"Gitclaim-Task: {t}" for t in tasks)]
    git("add", "-A", cwd=wc)
    # as ops, the way a human does (the session's GIT_AUTHOR_* would override user.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_"))}
    who = ("-c", "user.name=ops", "-c", "user.email=ops@agents.invalid")
    msg = subject + "\n\n" + "\n".join(trailers)
    subprocess.run([GIT, *who, "commit", "-q", "-m", msg], cwd=wc, env=env, check=True, capture_output=True)
    return git("rev-parse", "HEAD", cwd=wc).strip()


def _archive_active(wc: Path) -> None:
    _mv(wc, task_path("held"), archive_path("held"))
    _commit(wc, "archive held", ("held",))


def _archive_todo(wc: Path) -> None:
    _mv(wc, task_path("todo-1"), archive_path("todo-1"))
    _commit(wc, "archive todo-1", ("todo-1",))


def _archive_failed(wc: Path) -> None:
    _mv(wc, task_path("failed-1"), archive_path("failed-1"))
    _commit(wc, "archive failed-1", ("failed-1",))


def _change_while_moving(wc: Path) -> None:
    _mv(wc, task_path("new-done"), archive_path("new-done"))
    p = wc / archive_path("new-done")
    p.write_text(p.read_text().replace("Task new-done", "Task new-done, renamed"))
    _commit(wc, "archive new-done", ("new-done",))


def _copy_without_moving(wc: Path) -> None:
    (wc / archive_path("new-done")).parent.mkdir(parents=True, exist_ok=True)
    (wc / archive_path("new-done")).write_bytes((wc / task_path("new-done")).read_bytes())
    _commit(wc, "archive new-done", ("new-done",))


def _edit_archived(wc: Path) -> None:
    p = wc / archive_path("old-done")
    p.write_text(p.read_text().replace("Task old-done", "Task old-done, rewritten"))
    _commit(wc, "edit old-done", ("old-done",), op="edit")


def _unarchive(wc: Path) -> None:
    _mv(wc, archive_path("old-done"), task_path("old-done"))
    _commit(wc, "unarchive old-done", ("old-done",), op="edit")


def _delete_archived(wc: Path) -> None:
    git("rm", "-q", archive_path("old-cancel"), cwd=wc)
    _commit(wc, "drop old-cancel", ("old-cancel",), op="edit")


def _reuse_archived_id(wc: Path) -> None:
    p = wc / task_path("old-done")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text('schema = 1\nid = "old-done"\ntitle = "A new task with an old id"\nstate = "todo"\npriority = 2\n')
    _commit(wc, "add old-done", ("old-done",), op="add")


BAD: dict[str, tuple[Callable[[Path], None], str]] = {  # what the push does, a fragment of the refusal
    "active": (_archive_active, "only done and cancelled tasks are archived"),
    "todo": (_archive_todo, "only done and cancelled tasks are archived"),
    "failed": (_archive_failed, "only done and cancelled tasks are archived"),
    "changed": (_change_while_moving, "archive moves a task's file unchanged"),
    "copied": (_copy_without_moving, "without leaving"),
    "edited": (_edit_archived, "never changed, deleted or moved back"),
    "unarchived": (_unarchive, "never changed, deleted or moved back"),
    "deleted": (_delete_archived, "never changed, deleted or moved back"),
    "reused-id": (_reuse_archived_id, "is the id of an archived task"),
}


@pytest.fixture
def archived_store(path_remote: Remote, make_clone: MakeClone) -> Store:
    s = _store(path_remote, make_clone)
    s.archive(done_before=CUT)
    return s


@pytest.mark.parametrize("where", ["server", "client"])
@pytest.mark.parametrize("name", sorted(BAD))
def test_the_hooks_refuse_a_hand_made_bad_archive_push(
    name: str, where: str, archived_store: Store, path_remote: Remote, tmp_path: Path
) -> None:
    target = path_remote
    if where == "server":
        target = copy_remote(path_remote.path, tmp_path / "hooked.git")
        r = run_cli("hooks", "install", "--server", str(target.path), "--json", cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
    wc = _worktree(target, tmp_path / "wc")
    if where == "client":
        r = run_cli("hooks", "install", "--json", cwd=wc)
        assert r.returncode == 0, r.stdout + r.stderr
    tip = target.ref()
    make, says = BAD[name]
    make(wc)
    p = _try_git("push", "origin", "gitclaim", cwd=wc)
    assert p.returncode != 0, p.stderr
    assert "gitclaim: push refused" in p.stderr and says in p.stderr, p.stderr
    assert target.ref() == tip


def test_the_server_hook_takes_an_honest_archive_made_by_hand(
    path_remote: Remote, make_clone: MakeClone, tmp_path: Path
) -> None:
    s = _store(path_remote, make_clone)
    hooked = copy_remote(path_remote.path, tmp_path / "hooked.git")
    r = run_cli("hooks", "install", "--server", str(hooked.path), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    wc = _worktree(hooked, tmp_path / "wc")
    _mv(wc, task_path("new-done"), archive_path("new-done"))
    _commit(wc, "archive new-done", ("new-done",))
    p = _try_git("push", "origin", "gitclaim", cwd=wc)
    assert p.returncode == 0, p.stderr
    # ... but trailers that name another operation, or leave out a moved task, are refused
    _mv(wc, task_path("old-done"), archive_path("old-done"))
    _mv(wc, task_path("old-cancel"), archive_path("old-cancel"))
    _commit(wc, "archive old-done", ("old-done",))
    p = _try_git("push", "origin", "gitclaim", cwd=wc)
    assert p.returncode != 0 and "which its trailers do not name" in p.stderr, p.stderr
    assert s.verify().ok


@pytest.mark.parametrize("name", ["changed", "unarchived", "reused-id"])
def test_verify_reports_a_bad_archive_that_got_in_without_a_hook(
    name: str, archived_store: Store, path_remote: Remote, tmp_path: Path
) -> None:
    wc = _worktree(path_remote, tmp_path / "wc")
    make, says = BAD[name]
    make(wc)
    git("push", "-q", "origin", "gitclaim", cwd=wc)  # no hook on this remote: it lands
    bad = git("rev-parse", "HEAD", cwd=wc).strip()
    with pytest.raises(VerifyFailed) as v:
        archived_store.verify()
    found = v.value.details["violations"]
    assert [x["commit"] for x in found] == [bad] * len(found)
    assert any(says in x["message"] for x in found), found
    assert "archive" in {x["rule"] for x in found}
    r = run_cli("verify", "--json", cwd=archived_store.path)
    assert r.returncode == 21 and json.loads(r.stdout)["error"]["code"] == "verify_failed"


# --- racing ----------------------------------------------------------------------------


def _archive_worker(path: str, q: multiprocessing.Queue[object]) -> None:
    try:
        q.put(("archive", Store(Path(path), agent="ops").archive(done_before=CUT).archived))
    except Exception as e:  # report, do not hang the test
        q.put(("archive", repr(e)))


def _verb_worker(path: str, agent: str, verb: str, task: str, q: multiprocessing.Queue[object]) -> None:
    try:
        q.put((agent, getattr(Store(Path(path), agent=agent), verb)(task).changed))
    except NotClaimable as e:
        q.put((agent, f"not_claimable archived={e.details.get('archived')}"))
    except Exception as e:
        q.put((agent, repr(e)))


def test_archive_racing_claims_from_other_clones_loses_no_claim(git_daemon: GitDaemon, make_clone: MakeClone) -> None:
    remote = git_daemon.remote("race-archive")
    s = _store(remote, make_clone)
    s.add_many([{"id": f"w{i}", "title": f"Work {i}"} for i in range(6)])
    racers = {f"r{i}": make_clone(remote, f"r{i}") for i in range(6)}
    reopener = make_clone(remote, "reopener")
    for p in (*racers.values(), reopener):
        Store(p, agent="x").ready()  # every racer starts from the tip before the archive
    ctx = multiprocessing.get_context("spawn")
    q: multiprocessing.Queue[object] = ctx.Queue()
    procs = [ctx.Process(target=_archive_worker, args=(str(s.path), q))]
    procs += [ctx.Process(target=_verb_worker, args=(str(p), a, "claim", f"w{i}", q)) for i, (a, p) in
              enumerate(racers.items())]  # fmt: skip
    procs.append(ctx.Process(target=_verb_worker, args=(str(reopener), "reopener", "reopen", "old-done", q)))
    for p in procs:
        p.start()
    results = dict(q.get(timeout=180) for _ in procs)
    for p in procs:
        p.join(60)
    assert all(results[a] is True for a in racers), results
    after = Store(make_clone(remote, "check"), agent="check")
    held = {t.id: t.holder for t in after.list().tasks if t.holder is not None}
    assert held == {"held": "ops", **{f"w{i}": a for i, a in enumerate(racers)}}
    # The reopen of old-done and the archive raced on one task: exactly one of them has it.
    if results["reopener"] is True:
        assert results["archive"] == ("late-note", "old-cancel") and after.show("old-done").task.state.value == "todo"
    else:
        assert results["reopener"] == "not_claimable archived=True", results
        assert results["archive"] == ("late-note", "old-cancel", "old-done")
    archives = [e for e in after.log().entries if e.op == "archive"]
    assert len(archives) == 1
    claims = sorted(e.tasks[0] for e in after.log().entries if e.op == "claim" and e.tasks[0].startswith("w"))
    assert claims == [f"w{i}" for i in range(6)]
    assert after.verify().ok
