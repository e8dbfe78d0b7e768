"""Compaction: the one rewrite of the store branch. It keeps every task and the
whole audit (under a create-only archive ref), clients build on it, and a
rewrite that is not exactly a compaction is refused by the server hook,
by every client that saw the old tip, and by ``verify``."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from gitclaim import Store
from gitclaim.errors import StoreRewritten, VerifyFailed

from .conftest import run_cli
from .servers import GIT, GitDaemon, Remote, clone, copy_remote, git


def _try_git(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GIT, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def _store(remote: Remote, make_clone: Callable[[Remote, str], Path], n: int = 6) -> Store:
    s = Store(make_clone(remote, "ops"), agent="ops")
    s.init()
    s.add_many([{"id": f"t{i}", "title": f"Task {i}"} for i in range(n)])
    s.claim("t0", agent="agent-a")
    s.done("t0", agent="agent-a")
    s.claim("t1", agent="agent-b")
    return s


def _archive_refs(remote: Remote) -> dict[str, str]:
    out = git("for-each-ref", "--format=%(refname) %(objectname)", "refs/gitclaim/archive/", cwd=remote.path)
    return dict(line.split() for line in out.splitlines())


def test_compact_keeps_the_tree_and_the_whole_audit(remote: Remote, make_clone: Callable[[Remote, str], Path]) -> None:
    s = _store(remote, make_clone)
    old = remote.ref()
    assert old is not None
    before = [(e.commit, e.op) for e in s.log().entries]
    tree = git("rev-parse", f"{old}^{{tree}}", cwd=remote.path).strip()

    r = s.compact()
    assert r.changed and r.old_tip == old and r.replaced == len(before)
    tip = remote.ref()
    assert tip == r.tip != old
    assert git("rev-list", "--count", tip, cwd=remote.path).strip() == "1"
    assert git("rev-parse", f"{tip}^{{tree}}", cwd=remote.path).strip() == tree
    assert _archive_refs(remote) == {r.archive: old}
    msg = git("log", "-1", "--format=%B", tip, cwd=remote.path)
    assert f"Gitclaim-Compacts: {old}" in msg and f"Gitclaim-Archive: {r.archive}" in msg

    # A clone made after the compaction reads on through the archive.
    fresh = Store(make_clone(remote, "late"), agent="late")
    log = fresh.log().entries
    assert [e.op for e in log] == ["compact", *(op for _, op in before)]
    assert [e.op for e in fresh.show("t0").history] == ["done", "claim", "add"]
    assert fresh.verify().ok
    assert fresh.compact().changed is False  # one commit already: nothing to do


def test_a_client_with_a_pre_compaction_tip_claims_afterwards(
    remote: Remote, make_clone: Callable[[Remote, str], Path]
) -> None:
    s = _store(remote, make_clone)
    b = Store(make_clone(remote, "agent-c"), agent="agent-c")
    assert b.ready().tasks  # b's last tip is the old one
    s.compact()
    r = b.claim("t2")  # optimistic on its stale tip: refused, rebuilt on the compaction
    assert r.changed
    tip = remote.ref()
    assert tip is not None
    assert git("rev-list", "--count", tip, cwd=remote.path).strip() == "2"
    assert [e.op for e in b.show("t2").history] == ["claim", "add"]
    assert b.verify().ok


def _compact_worker(path: str, q: multiprocessing.Queue[object]) -> None:
    try:
        q.put(("compact", Store(Path(path), agent="ops").compact().changed))
    except Exception as e:  # report, do not hang the test
        q.put(("compact", repr(e)))


def _claim_worker(path: str, agent: str, task: str, q: multiprocessing.Queue[object]) -> None:
    try:
        q.put((agent, Store(Path(path), agent=agent).claim(task).changed))
    except Exception as e:
        q.put((agent, repr(e)))


def test_compact_racing_claims_loses_none_and_doubles_none(
    git_daemon: GitDaemon, make_clone: Callable[[Remote, str], Path], tmp_path: Path
) -> None:
    remote = git_daemon.remote("race-compact")
    s = _store(remote, make_clone, n=12)
    paths = {a: make_clone(remote, a) for a in (f"r{i}" for i in range(6))}
    for p in paths.values():
        Store(p, agent="x").ready()  # every racer starts from the pre-compaction tip
    ctx = multiprocessing.get_context("spawn")
    q: multiprocessing.Queue[object] = ctx.Queue()
    procs = [ctx.Process(target=_compact_worker, args=(str(s.path), q))]
    procs += [
        ctx.Process(target=_claim_worker, args=(str(p), a, f"t{i + 2}", q)) for i, (a, p) in enumerate(paths.items())
    ]
    for p in procs:
        p.start()
    results = dict(q.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(60)
    assert all(v is True for v in results.values()), results
    after = Store(make_clone(remote, "check"), agent="check")
    held = {t.id: t.claim.holder for t in after.list().tasks if t.claim is not None}
    assert held == {"t1": "agent-b", **{f"t{i + 2}": a for i, a in enumerate(paths)}}
    claims = [e for e in after.log().entries if e.op == "claim"]
    assert sorted(e.tasks[0] for e in claims) == sorted(["t0", "t1", *(f"t{i + 2}" for i in range(len(paths)))])
    assert after.verify().ok


def _forge(wc: Path, branch: str = "gitclaim", compacts: str | None = None, archive: str | None = None) -> str:
    """A rewrite of the branch with plain git: one root commit that drops a task."""
    git("checkout", "-q", "--orphan", "forged", f"origin/{branch}", cwd=wc)
    git("rm", "-q", "--cached", "-r", "tasks", cwd=wc)
    git("add", "gitclaim.toml", cwd=wc)
    lines = ["compact gitclaim by ops", ""]
    if compacts:
        lines += ["Gitclaim-Op: compact", "Gitclaim-Agent: ops", f"Gitclaim-Compacts: {compacts}"]
        lines += [f"Gitclaim-Archive: {archive}"]
    env_msg = "\n".join(lines) + "\n"
    git("-c", "user.name=ops", "-c", "user.email=ops@x", "commit", "-q", "-m", env_msg, cwd=wc)
    return git("rev-parse", "HEAD", cwd=wc).strip()


@pytest.mark.parametrize("kind", ["plain", "lying-compaction"])
def test_a_force_push_that_is_not_a_compaction_is_refused_and_reported(
    kind: str, make_clone: Callable[[Remote, str], Path], tmp_path: Path, path_remote: Remote
) -> None:
    s = _store(path_remote, make_clone)
    old = path_remote.ref()
    assert old is not None
    hooked = copy_remote(path_remote.path, tmp_path / "hooked.git")
    r = run_cli("hooks", "install", "--server", str(hooked.path), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr

    wc = clone(path_remote, tmp_path / "wc")
    git("fetch", "-q", "origin", "gitclaim", cwd=wc)
    git("branch", "-q", "-f", "--track", "gitclaim", "origin/gitclaim", cwd=wc)
    archive = f"refs/gitclaim/archive/gitclaim/2026-01-01-{old[:12]}"
    forged = _forge(wc, compacts=old if kind != "plain" else None, archive=archive)
    git("remote", "add", "hooked", str(hooked.path), cwd=wc)
    specs = [f"+{forged}:refs/heads/gitclaim"] + ([f"{old}:{archive}"] if kind != "plain" else [])
    p = _try_git("push", "hooked", *specs, cwd=wc)
    assert p.returncode != 0
    assert hooked.ref() == old  # refused by the server hook: nothing moved
    assert ("compact" if kind != "plain" else "force-pushed") in p.stderr

    # Where no hook ran (the unhooked remote), every client that saw the old tip refuses it ...
    git("push", "-q", "origin", *specs, cwd=wc)
    assert path_remote.ref() == forged
    with pytest.raises(StoreRewritten) as e:
        s.claim("t2")
    assert e.value.details["last_tip"] == old
    assert path_remote.ref() == forged  # and wrote nothing
    r = run_cli("ready", "--json", cwd=s.path)
    assert r.returncode == 23 and json.loads(r.stdout)["error"]["code"] == "store_rewritten"
    # ... and verify reports it.
    with pytest.raises(VerifyFailed) as v:
        s.verify()
    assert v.value.details["violations"][0]["rule"] in ("history", "compact")
    # A fresh clone, which never saw the old tip, is told by verify what the rewrite dropped.
    if kind != "plain":
        fresh = Store(make_clone(path_remote, "fresh"), agent="fresh")
        with pytest.raises(VerifyFailed) as v:
            fresh.verify()
        assert {x["rule"] for x in v.value.details["violations"]} == {"compact"}


def test_the_server_hook_takes_an_honest_compaction_by_plain_git(
    daemon_remote: Remote, make_clone: Callable[[Remote, str], Path], tmp_path: Path
) -> None:
    """gitclaim compact pushed through git daemon, with the server hook on the remote."""
    r = run_cli("hooks", "install", "--server", str(daemon_remote.path), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    s = _store(daemon_remote, make_clone)
    old = daemon_remote.ref()
    res = s.compact()
    assert daemon_remote.ref() == res.tip != old
    assert _archive_refs(daemon_remote) == {res.archive: old}
    # The archive is create-only: moving or deleting it is refused.
    wc = clone(daemon_remote, tmp_path / "wc")
    git("fetch", "-q", "origin", f"{res.archive}:{res.archive}", cwd=wc)
    p = _try_git("push", "origin", f":{res.archive}", cwd=wc)
    assert p.returncode != 0 and "archive" in p.stderr
    assert _archive_refs(daemon_remote) == {res.archive: old}


def test_only_an_operator_compacts_where_the_store_names_roles(
    path_remote: Remote, make_clone: Callable[[Remote, str], Path]
) -> None:
    s = _store(path_remote, make_clone)
    s.access_grant("operator", "ops")  # the first policy: ops is admin and operator
    old = path_remote.ref()
    r = run_cli("compact", "--json", "--agent", "agent-a", cwd=make_clone(path_remote, "agent-a"))
    assert r.returncode == 22, r.stdout + r.stderr
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "not_allowed" and err["details"]["rule"] == "operator"
    assert path_remote.ref() == old and _archive_refs(path_remote) == {}
    assert s.compact().changed


def test_verify_offline_without_the_archive_says_it_cannot_check_the_compaction(
    path_remote: Remote, make_clone: Callable[[Remote, str], Path]
) -> None:
    s = _store(path_remote, make_clone)
    s.compact()
    late = Store(make_clone(path_remote, "late"), agent="late")
    late.ready()  # the branch alone: no archive fetched
    with pytest.raises(VerifyFailed) as v:
        late.verify(offline=True)
    assert [x["rule"] for x in v.value.details["violations"]] == ["compact"]
    assert late.verify().ok  # online it fetches the archive and checks the compaction against it


def test_compact_and_history_through_the_systems_git(
    daemon_remote: Remote, make_clone: Callable[[Remote, str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITCLAIM_TRANSPORT", "git")
    s = _store(daemon_remote, make_clone)
    old = daemon_remote.ref()
    late = Store(make_clone(daemon_remote, "late"), agent="late")
    assert late.ready().tasks and (late.path / ".git" / "shallow").exists()
    r = s.compact()
    assert daemon_remote.ref() == r.tip != old and _archive_refs(daemon_remote) == {r.archive: old}
    assert late.claim("t3").changed  # its last tip replaced: recognised as a compaction, rebuilt on it
    assert [e.op for e in late.show("t0").history] == ["done", "claim", "add"]
    assert not (late.path / ".git" / "shallow").exists()
    assert late.verify().ok
