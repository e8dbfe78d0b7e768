"""Shallow copies: a clone with no copy of the store branch fetches its tip
alone over the network. Every verb and read works on it; log, show and
verify fetch the rest when they need it; a local-path remote is never shallow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gitclaim import Store

from .conftest import run_cli
from .servers import Remote, git
from .test_race import Workers, assert_one_winner, claims_in_history


def _history(remote: Remote, make_clone: Callable[[Remote, str], Path], n: int = 8) -> Store:
    s = Store(make_clone(remote, "ops"), agent="ops")
    s.init()
    s.add_many([{"id": f"t{i}", "title": f"Task {i}"} for i in range(n)])
    for i in range(n // 2):
        s.claim(f"t{i}", agent="agent-a")
        s.done(f"t{i}", agent="agent-a")
    return s


def _commits_here(path: Path) -> int:
    return int(git("rev-list", "--count", "refs/remotes/origin/gitclaim", cwd=path).strip())


def test_a_fresh_network_clone_fetches_the_tip_alone_and_deepens_for_history(
    daemon_remote: Remote, make_clone: Callable[[Remote, str], Path]
) -> None:
    _history(daemon_remote, make_clone)
    total = int(git("rev-list", "--count", "gitclaim", cwd=daemon_remote.path).strip())
    assert total > 8
    b = make_clone(daemon_remote, "agent-b")
    s = Store(b, agent="agent-b")
    assert s.claim("t6").changed
    assert (b / ".git" / "shallow").exists() and _commits_here(b) == 3  # the tip and its parent, and its claim
    assert [t.id for t in s.ready().tasks] == ["t4", "t5", "t7"]
    assert len(s.board().columns["done"]) == 4
    s.done("t6")
    # The reads that need history fetch it, once.
    r = run_cli("log", "t0", "--json", cwd=b, env={"GITCLAIM_AGENT": "agent-b"})
    assert r.returncode == 0, r.stderr
    assert '"op": "done"' in r.stdout and '"op": "add"' in r.stdout
    assert not (b / ".git" / "shallow").exists() and _commits_here(b) == total + 2
    assert Store(b, agent="agent-b").verify().ok


def test_offline_history_on_a_shallow_clone_stops_at_what_it_has(
    daemon_remote: Remote, make_clone: Callable[[Remote, str], Path]
) -> None:
    _history(daemon_remote, make_clone)
    b = make_clone(daemon_remote, "agent-b")
    s = Store(b, agent="agent-b")
    s.ready()
    log = s.log(offline=True).entries
    assert len(log) == 1  # the one commit it has; nothing fetched
    assert (b / ".git" / "shallow").exists()


def test_shallow_can_be_turned_off_and_a_local_path_is_never_shallow(
    daemon_remote: Remote, path_remote: Remote, make_clone: Callable[[Remote, str], Path]
) -> None:
    _history(daemon_remote, make_clone)
    total = int(git("rev-list", "--count", "gitclaim", cwd=daemon_remote.path).strip())
    full = make_clone(daemon_remote, "full")
    git("config", "gitclaim.shallow", "false", cwd=full)
    Store(full, agent="x").ready()
    assert not (full / ".git" / "shallow").exists() and _commits_here(full) == total

    _history(path_remote, lambda r, n: make_clone(r, f"p-{n}"))
    local = make_clone(path_remote, "local")
    Store(local, agent="x").ready()
    assert not (local / ".git" / "shallow").exists()


def test_sixteen_shallow_agents_race_for_one_task_one_wins(daemon_remote: Remote, tmp_path: Path) -> None:
    """Each worker's first fetch is shallow; the history behind the tip is long."""
    from .servers import clone

    admin = Store(clone(daemon_remote, tmp_path / "admin"), agent="admin")
    admin.init()
    admin.add_many([{"id": f"task-{r}", "title": f"round {r}"} for r in range(3)])
    for i in range(40):
        admin.edit("task-0", {"title": f"retitled {i}"})  # history a shallow clone does not fetch
    workers = Workers(daemon_remote, tmp_path / "agents", 16)
    try:
        for name in workers.names:
            assert (tmp_path / "agents" / name / ".git" / "shallow").exists(), name
        for r in range(3):
            assert_one_winner(workers.all({"op": "claim", "task": f"task-{r}"}), f"round {r}")
    finally:
        workers.close()
    assert sorted(task for _, task, _ in claims_in_history(daemon_remote)) == ["task-0", "task-1", "task-2"]
    git("fsck", "--no-progress", "--no-dangling", cwd=daemon_remote.path)


def test_log_and_show_say_what_they_fetched(daemon_remote: Remote, make_clone: Callable[[Remote, str], Path]) -> None:
    _history(daemon_remote, make_clone)
    b = make_clone(daemon_remote, "agent-b")
    Store(b, agent="agent-b").ready()
    r = run_cli("show", "t0", cwd=b, env={"GITCLAIM_AGENT": "agent-b"})
    said = "fetched the whole history of the store branch (this clone was shallow)"
    assert r.returncode == 0 and said in r.stderr, r.stderr
    r = run_cli("log", "--json", cwd=b, env={"GITCLAIM_AGENT": "agent-b"})
    assert r.returncode == 0 and '"fetched": []' in r.stdout  # once is enough
