"""The store and the claim through the Python API, on real clones of real remotes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gitclaim import Store
from gitclaim.errors import (
    AlreadyExists,
    Blocked,
    LostRace,
    NotClaimable,
    NotFound,
    NothingReady,
    NotHolder,
    NotInitialized,
    RemoteUnreachable,
    StoreCorrupt,
)
from gitclaim.ids import task_path

from .servers import GitDaemon, Remote, clone, git


def commits(remote: Remote) -> int:
    return int(git("rev-list", "--count", "gitclaim", cwd=remote.path).strip())


def trailers(remote: Remote, rev: str = "gitclaim") -> str:
    return git("log", "-1", "--format=%an%n%s%n%(trailers)", rev, cwd=remote.path)


def test_init_creates_an_orphan_branch_and_a_second_clone_attaches(remote, store_factory):
    a = store_factory(remote, "alice")
    r = a.init()
    assert r.created
    assert git("rev-list", "--max-parents=0", "gitclaim", cwd=remote.path).strip() == r.commit
    assert git("ls-tree", "--name-only", "gitclaim", cwd=remote.path).split() == ["gitclaim.toml", "tasks"]
    b = store_factory(remote, "bob")
    r2 = b.init()
    assert not r2.created and r2.commit == r.commit
    assert commits(remote) == 1


def test_init_refuses_a_branch_that_is_not_a_store(remote, tmp_path):
    human = tmp_path / "human"
    git("clone", "-q", remote.url, str(human))
    git("checkout", "-q", "--orphan", "gitclaim", cwd=human)
    (human / "notes.txt").write_text("not a store\n")
    git("add", "notes.txt", cwd=human)
    git("commit", "-qm", "notes", cwd=human)
    git("push", "-q", "origin", "gitclaim", cwd=human)
    s = Store(clone(remote, tmp_path / "agent"), agent="a")
    with pytest.raises(StoreCorrupt, match=r"gitclaim\.toml"):
        s.init()


def test_operations_before_init_say_so(remote, store_factory):
    s = store_factory(remote, "a")
    with pytest.raises(NotInitialized):
        s.claim("x")
    with pytest.raises(NotInitialized):
        s.ready()


def test_every_mutation_is_one_commit_authored_by_the_agent(initialized, store_factory):
    remote, admin = initialized
    n = commits(remote)
    admin.add("Fix login", task_id="fix-login")
    assert commits(remote) == n + 1
    a = store_factory(remote, "agent-7")
    a.claim("fix-login")
    assert commits(remote) == n + 2
    log = trailers(remote)
    assert log.splitlines()[:2] == ["agent-7", "claim fix-login by agent-7"]
    for line in ("Gitclaim-Op: claim", "Gitclaim-Task: fix-login", "Gitclaim-Agent: agent-7",
                 "Gitclaim-From: todo", "Gitclaim-To: active"):  # fmt: skip
        assert line in log
    a.done("fix-login")
    assert commits(remote) == n + 3
    assert "Gitclaim-Op: done" in trailers(remote)
    # only the task's file changed
    changed = git("diff", "--name-only", "gitclaim~1", "gitclaim", cwd=remote.path).split()
    assert changed == [task_path("fix-login")]


def test_claim_sets_state_holder_and_time_in_one_commit(initialized, store_factory):
    remote, admin = initialized
    admin.add("t", task_id="t1")
    when = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    a = store_factory(remote, "agent-1", clock=lambda: when)
    r = a.claim("t1")
    assert r.changed and r.previous_state == "todo"
    import tomllib

    doc = tomllib.loads(git("show", f"gitclaim:{task_path('t1')}", cwd=remote.path))
    assert doc["state"] == "active"
    assert doc["claim"] == {"holder": "agent-1", "claimed_at": when}


def test_reclaim_by_holder_succeeds_without_a_commit_and_keeps_claimed_at(initialized, store_factory):
    remote, admin = initialized
    admin.add("t", task_id="t1")
    t0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    clock = [t0]
    a = store_factory(remote, "agent-1", clock=lambda: clock[0])
    first = a.claim("t1")
    n = commits(remote)
    clock[0] = t0 + timedelta(hours=1)
    again = a.claim("t1")
    assert not again.changed and again.commit is None
    assert again.task.claim is not None and again.task.claim.claimed_at == t0
    assert commits(remote) == n
    assert first.task.claim == again.task.claim


def test_lost_race_names_holder_time_and_commit(initialized, store_factory):
    remote, admin = initialized
    admin.add("t", task_id="t1")
    a = store_factory(remote, "agent-a")
    b = store_factory(remote, "agent-b")
    won = a.claim("t1")
    with pytest.raises(LostRace) as ei:
        b.claim("t1")
    d = ei.value.details
    assert d["holder"] == "agent-a" and d["commit"] == won.commit and d["claimed_at"]
    assert "agent-a" in ei.value.message


def test_state_gate_and_dependency_gate(initialized, store_factory):
    remote, admin = initialized
    admin.add("base", task_id="base")
    admin.add("top", task_id="top", depends_on=["base"])
    a = store_factory(remote, "a")
    with pytest.raises(Blocked) as ei:
        a.claim("top")
    assert ei.value.details["blockers"] == [{"id": "base", "state": "todo"}]
    a.claim("base")
    with pytest.raises(Blocked) as ei:
        a.claim("top")
    assert ei.value.details["blockers"] == [{"id": "base", "state": "active"}]
    a.done("base")
    with pytest.raises(NotClaimable) as nc:
        a.claim("base")
    assert nc.value.details["state"] == "done" and "done" in nc.value.message
    assert a.claim("top").changed


def test_unrelated_concurrent_change_is_retried_transparently(initialized, store_factory):
    remote, admin = initialized
    admin.add("t", task_id="t1")
    a = store_factory(remote, "agent-a")
    a.transport.fetch()  # a's copy is now current...
    admin.add("other", task_id="t2")  # ...and now stale
    r = a.claim("t1")
    assert r.changed and r.retries == 1
    assert "Gitclaim-Task: t2" in git("log", "--format=%(trailers)", "gitclaim", cwd=remote.path)


def test_a_refusal_on_a_stale_copy_is_checked_again_on_a_fresh_one(initialized, store_factory):
    remote, admin = initialized
    admin.add("t", task_id="t1")
    a = store_factory(remote, "agent-a")
    b = store_factory(remote, "agent-b")
    a.claim("t1")
    with pytest.raises(LostRace):
        b.claim("t1")  # b's copy now shows t1 held by a
    a.release("t1")
    assert b.claim("t1").task.holder == "agent-b"  # not refused on b's stale copy


def test_release_only_by_the_holder(initialized, store_factory):
    remote, admin = initialized
    admin.add("t", task_id="t1")
    a = store_factory(remote, "agent-a")
    b = store_factory(remote, "agent-b")
    a.claim("t1")
    with pytest.raises(NotHolder) as ei:
        b.release("t1")
    assert ei.value.details["holder"] == "agent-a"
    with pytest.raises(NotHolder):
        b.done("t1")
    r = a.release("t1")
    assert r.task.state.value == "todo" and r.task.claim is None
    with pytest.raises(NotClaimable):
        b.release("t1")  # nobody holds it now
    again = a.release("t1")  # the same command again: a's own release already landed
    assert again.changed is False and again.commit is None and again.task.state.value == "todo"
    assert remote.ref() == r.commit  # nothing new was written


def test_next_claims_by_priority_then_age_and_skips_what_is_not_ready(initialized, store_factory):
    remote, admin = initialized
    ticks = iter(range(1000))
    admin.clock = lambda: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=next(ticks))
    admin.add("old p2", task_id="old-p2")
    admin.add("new p1", task_id="new-p1", priority=1)
    admin.add("older p1", task_id="held-p1", priority=1)
    admin.add("blocked p0", task_id="blocked-p0", priority=0, depends_on=["old-p2"])
    other = store_factory(remote, "other")
    other.claim("held-p1")
    a = store_factory(remote, "agent-a")
    assert [x.id for x in a.ready().tasks] == ["new-p1", "old-p2"]
    assert a.next().task.id == "new-p1"
    assert a.next().task.id == "old-p2"
    with pytest.raises(NothingReady):
        a.next()


def test_add_many_with_dependencies_in_one_commit_and_generated_ids(initialized):
    remote, admin = initialized
    n = commits(remote)
    r = admin.add_many(
        [
            {"id": "a", "title": "A"},
            {"id": "b", "title": "B", "depends_on": ["a"]},
            {"title": "generated", "depends_on": ["b"], "tags": ["x"]},
        ]
    )
    assert commits(remote) == n + 1
    gen = r.tasks[2].id
    assert gen.startswith("gc-") and len(gen) == 7
    assert [t.id for t in admin.ready().tasks] == ["a"]
    with pytest.raises(AlreadyExists):
        admin.add("again", task_id="a")
    assert commits(remote) == n + 1


def test_a_generated_id_that_collides_is_lengthened(initialized):
    _remote, admin = initialized
    admin.rng = random.Random(7)
    first = admin.add("one").tasks[0].id
    admin.rng = random.Random(7)  # the same draw again
    second = admin.add("two").tasks[0].id
    assert len(first) == 7 and len(second) == 8 and first != second


def test_dependency_on_a_missing_task_or_a_cycle_is_refused(initialized):
    from gitclaim.errors import BadInput

    remote, admin = initialized
    n = commits(remote)
    with pytest.raises(BadInput, match="neither in the store"):
        admin.add("x", task_id="x", depends_on=["ghost"])
    with pytest.raises(BadInput, match="cycle"):
        admin.add_many([{"id": "p", "title": "p", "depends_on": ["q"]}, {"id": "q", "title": "q", "depends_on": ["p"]}])
    assert commits(remote) == n


def test_not_found(initialized, store_factory):
    remote, _ = initialized
    with pytest.raises(NotFound):
        store_factory(remote, "a").claim("nope")


def test_hand_added_fields_survive_rewrites(initialized, tmp_path):
    remote, admin = initialized
    admin.add("t", task_id="t1")
    human = tmp_path / "human"
    git("clone", "-q", "-b", "gitclaim", remote.url, str(human))
    f = human / task_path("t1")
    f.write_text(f.read_text() + 'estimate = 3\n\n[notes]\nwho = "me"\n')
    git("commit", "-qam", "add notes", cwd=human)
    git("push", "-q", "origin", "gitclaim", cwd=human)
    admin.claim("t1")
    admin.done("t1")
    text = git("show", f"gitclaim:{task_path('t1')}", cwd=remote.path)
    assert "estimate = 3" in text and 'who = "me"' in text and 'state = "done"' in text


def test_unreachable_remote_fails_cleanly_and_changes_nothing(tmp_path):
    daemon = GitDaemon(tmp_path / "srv")
    try:
        remote = daemon.remote("shared")
        admin = Store(clone(remote, tmp_path / "admin"), agent="admin")
        admin.init()
        admin.add("t", task_id="t1")
        tip = remote.ref()
        port = daemon.port
    finally:
        daemon.stop()
    a = Store(clone(remote, tmp_path / "a"), agent="a")
    with pytest.raises(RemoteUnreachable) as ei:
        a.claim("t1")
    assert "127.0.0.1" in ei.value.message
    with pytest.raises(RemoteUnreachable):
        admin.claim("t1")  # optimistic push from a warm clone: refused at connect
    assert remote.ref() == tip
    # the same server comes back: the same command converges
    back = GitDaemon(tmp_path / "srv", port=port)
    try:
        assert a.claim("t1").task.holder == "a"
    finally:
        back.stop()


def test_gitclaim_leaves_worktree_index_and_head_alone(initialized, store_factory, tmp_path):
    _remote, admin = initialized
    admin.add("t", task_id="t1")
    path = Path(admin.repo.repo.workdir)
    (path / "code.py").write_text("print(1)\n")
    git("add", "code.py", cwd=path)
    git("commit", "-qm", "code", cwd=path)
    (path / "code.py").write_text("print(2)\n")  # dirty
    (path / "staged.py").write_text("x\n")
    git("add", "staged.py", cwd=path)
    head = git("rev-parse", "HEAD", cwd=path)
    status = git("status", "--porcelain", cwd=path)
    admin.claim("t1")
    admin.done("t1")
    assert git("rev-parse", "HEAD", cwd=path) == head
    assert git("status", "--porcelain", cwd=path) == status
    assert git("symbolic-ref", "HEAD", cwd=path).strip() == "refs/heads/main"
    # and from a linked worktree of the same clone
    wt = tmp_path / "wt"
    git("worktree", "add", "-q", "-b", "feature", str(wt), cwd=path)
    s = Store(wt, agent="wt-agent")
    s.add("from worktree", task_id="t2")
    assert s.claim("t2").task.holder == "wt-agent"
    assert git("rev-parse", "HEAD", cwd=wt) == head


def test_only_claim_builds_on_the_last_seen_tip(initialized, store_factory):
    """next and done fetch first, so a branch that moved meanwhile costs no
    refused push; claim ID builds on the last tip it saw and pays one retry."""
    remote, admin = initialized
    admin.add_many([{"id": "t1", "title": "a"}, {"id": "t2", "title": "b"}])
    a = store_factory(remote, "agent-a")
    a.transport.fetch()
    admin.add("moved", task_id="m1")  # a's copy is stale now
    got = a.next()
    assert got.retries == 0
    admin.add("moved again", task_id="m2")
    assert a.done(got.task.id).retries == 0
    admin.add("and again", task_id="m3")
    assert a.claim("t2").retries == 1
