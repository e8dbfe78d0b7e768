"""``done ID --next``: finish one task and claim the next in one commit and one push.

Real remotes and clones throughout: the commit is counted on the remote and
the pushes at the transport; the race is separate processes on separate
clones; the server hook is a real ``pre-receive`` behind git daemon, and the
forged commits are made with plain git.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gitclaim import Store
from gitclaim.audit import Record, read, write
from gitclaim.errors import NotHolder
from gitclaim.ids import task_path
from gitclaim.labels import disagreements
from gitclaim.validate import TaskMove

from .conftest import run_cli
from .servers import GIT, Remote, clone, git

PAST = datetime.now(UTC) - timedelta(hours=2)


def commits_on(remote: Remote) -> int:
    return int(git("rev-list", "--count", "gitclaim", cwd=remote.path).strip())


def seeded(remote: Remote, make_clone: Callable[[Remote, str], Path], *tasks: dict[str, Any]) -> Store:
    admin = Store(make_clone(remote, "admin"), agent="admin")
    admin.init()
    admin.add_many(list(tasks) or [{"id": f"t{i}", "title": f"task {i}"} for i in range(1, 4)])
    return admin


def count_pushes(store: Store) -> list[str]:
    """Every push the store's transport makes (the real push still runs)."""
    pushed: list[str] = []
    real = store.transport.push

    def push(new: str, **kw: Any) -> None:
        pushed.append(new)
        real(new, **kw)

    store.transport.push = push  # type: ignore[method-assign]
    return pushed


# --- one commit, one push ---------------------------------------------------------


def test_done_next_is_one_commit_and_one_push_with_both_moves_in_its_trailers(
    remote: Remote, make_clone: Callable[[Remote, str], Path]
) -> None:
    admin = seeded(
        remote,
        make_clone,
        {"id": "first", "title": "first", "priority": 1},
        {"id": "later", "title": "later", "priority": 2},
        {"id": "unlocked", "title": "waits for first", "priority": 0, "depends_on": ["first"]},
    )
    bob = Store(make_clone(remote, "bob"), agent="bob")
    bob.claim("first")
    before = commits_on(remote)
    pushes = count_pushes(bob)
    r = bob.done("first", next=True, result="shipped in abc123", ttl="15m")
    assert commits_on(remote) == before + 1 and len(pushes) == 1
    assert r.changed and r.task.state.value == "done" and r.task.result is not None
    assert r.task.result.text == "shipped in abc123"
    # the task that waited only for the finished one is ready in the same commit, and it is the best
    assert r.next is not None and r.next.task.id == "unlocked" and not r.nothing_ready
    assert r.next.task.holder == "bob" and r.next.task.claim is not None
    assert r.next.task.claim.lease_seconds == 900
    assert r.commit == r.next.commit == pushes[0] == remote.ref()

    message = git("log", "-1", "--format=%B", "gitclaim", cwd=remote.path)
    rec = read(message)
    assert rec is not None and (rec.op, rec.task, rec.agent, rec.from_state, rec.to_state) == (
        "done", "first", "bob", "active", "done",
    )  # fmt: skip
    assert rec.result == "shipped in abc123"
    assert rec.then is not None
    assert (rec.then.op, rec.then.task, rec.then.agent, rec.then.from_state, rec.then.to_state) == (
        "claim", "unlocked", "bob", "todo", "active",
    )  # fmt: skip
    assert rec.then.lease_seconds == 900
    # the trail reads both moves, each task's history names its own, and verify replays it
    [entry] = admin.log(limit=1).entries
    assert {(m.task, m.verb) for m in entry.moves} == {("first", "done"), ("unlocked", "claim")}
    assert entry.violations == ()
    assert [e.op for e in admin.show("unlocked").history][:1] == ["claim"]
    assert [e.op for e in admin.show("first").history][:1] == ["done"]
    assert admin.verify().ok


def test_with_nothing_ready_it_finishes_the_task_and_says_so(
    path_remote: Remote, make_clone: Callable[[Remote, str], Path]
) -> None:
    seeded(path_remote, make_clone, {"id": "only", "title": "the only task"})
    bob = Store(make_clone(path_remote, "bob"), agent="bob")
    bob.claim("only")
    pushes = count_pushes(bob)
    r = bob.done("only", next=True)
    assert len(pushes) == 1 and r.changed and r.task.state.value == "done"
    assert r.next is None and r.nothing_ready is True
    rec = read(git("log", "-1", "--format=%B", "gitclaim", cwd=path_remote.path))
    assert rec is not None and rec.op == "done" and rec.then is None


def test_plain_done_says_nothing_was_claimed_and_ttl_needs_next(
    path_remote: Remote, make_clone: Callable[[Remote, str], Path]
) -> None:
    seeded(path_remote, make_clone)
    bob = Store(make_clone(path_remote, "bob"), agent="bob")
    bob.claim("t1")
    r = bob.done("t1")
    assert r.next is None and r.nothing_ready is False
    assert r.to_json()["next"] is None and r.to_json()["nothing_ready"] is False
    bob.claim("t2")
    from gitclaim.errors import BadInput

    with pytest.raises(BadInput, match="ttl goes with next"):
        bob.done("t2", ttl=60)


# --- races --------------------------------------------------------------------------


def test_a_lost_race_for_the_next_task_picks_another_and_still_finishes_in_one_commit(
    remote: Remote, make_clone: Callable[[Remote, str], Path]
) -> None:
    seeded(
        remote,
        make_clone,
        {"id": "mine", "title": "mine"},
        {"id": "best", "title": "best", "priority": 0},
        {"id": "second", "title": "second", "priority": 1},
    )
    bob = Store(make_clone(remote, "bob"), agent="bob")
    rival = Store(make_clone(remote, "rival"), agent="rival")
    bob.claim("mine")
    pushes = count_pushes(bob)
    real = bob.transport.push

    def push(new: str, **kw: Any) -> None:
        if not pushes:  # between bob's decision and his first push, the rival takes the best task
            rival.claim("best")
        real(new, **kw)

    bob.transport.push = push  # type: ignore[method-assign]
    before = commits_on(remote)
    r = bob.done("mine", next=True)
    assert r.retries == 1 and len(pushes) == 2
    assert r.next is not None and r.next.task.id == "second"
    assert commits_on(remote) == before + 2  # the rival's claim, then bob's one commit
    tasks = {t.id: t for t in rival.list().tasks}
    assert tasks["best"].holder == "rival" and tasks["second"].holder == "bob"
    assert tasks["mine"].state.value == "done"


def test_when_the_finished_task_changed_it_is_refused_as_done_alone_would(
    path_remote: Remote, make_clone: Callable[[Remote, str], Path]
) -> None:
    seeded(path_remote, make_clone)
    bob = Store(make_clone(path_remote, "bob"), agent="bob", clock=lambda: PAST)
    bob.claim("t1", ttl=60)
    alice = Store(make_clone(path_remote, "alice"), agent="alice")
    assert alice.claim("t1").op == "claim" and alice.claim("t1").task.holder == "alice"  # taken over
    before = commits_on(path_remote)
    bob_now = Store(bob.repo.top, agent="bob")
    with pytest.raises(NotHolder):
        bob_now.done("t1", next=True)
    assert commits_on(path_remote) == before  # nothing finished, nothing claimed
    assert {t.id for t in alice.list(holder="bob").tasks} == set()


def test_done_next_again_after_it_landed_reports_the_same_claim(
    path_remote: Remote, make_clone: Callable[[Remote, str], Path]
) -> None:
    seeded(path_remote, make_clone)
    bob = Store(make_clone(path_remote, "bob"), agent="bob")
    bob.claim("t1")
    first = bob.done("t1", next=True)
    assert first.next is not None
    before = commits_on(path_remote)
    again = bob.done("t1", next=True)  # as after a cut connection: the first push had landed
    assert commits_on(path_remote) == before and not again.changed
    assert again.next is not None and again.next.task.id == first.next.task.id and not again.next.changed


_WORKER = r"""
import json, sys
from gitclaim import RetryPolicy, Store
from gitclaim.errors import NothingReady
store = Store(sys.argv[1], agent=sys.argv[2], policy=RetryPolicy(max_attempts=100_000, deadline=600))
store.transport.fetch()
print("ready", flush=True)
sys.stdin.readline()
claimed, commits = [], []
try:
    task = store.next().task.id
except NothingReady:
    task = None
if task is not None:
    claimed.append(task)
while task is not None:
    r = store.done(task, next=True)
    commits.append(r.commit)
    task = r.next.task.id if r.next is not None else None
    if task is not None:
        claimed.append(task)
print(json.dumps({"claimed": claimed, "commits": commits}), flush=True)
"""


def test_agents_in_done_next_loops_drain_the_queue_each_task_claimed_once(
    remote: Remote, make_clone: Callable[[Remote, str], Path], tmp_path: Path
) -> None:
    n_tasks, n_agents = 24, 4
    admin = seeded(remote, make_clone, *({"id": f"w{i:02d}", "title": f"work {i}"} for i in range(n_tasks)))
    procs = []
    for k in range(n_agents):
        path = clone(remote, tmp_path / f"agent-{k}")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _WORKER, str(path), f"agent-{k}"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    claimed = Counter(t for r in reports for t in r["claimed"])
    assert sorted(claimed) == [f"w{i:02d}" for i in range(n_tasks)] and set(claimed.values()) == {1}
    tasks = admin.list().tasks
    assert all(t.state.value == "done" and t.claim is None for t in tasks)
    # every done but each agent's last also claimed in its commit: one commit per task, plus the first claims
    finishes = [c for r in reports for c in r["commits"]]
    assert len(finishes) == n_tasks and len(set(finishes)) == n_tasks
    started = sum(1 for r in reports if r["claimed"])
    assert commits_on(remote) == 2 + started + n_tasks  # init, add, each agent's first next, one per done
    assert admin.verify().ok


# --- the hooks: an honest commit of two moves passes, a lying one does not ---------------


def _hooked(daemon_remote: Remote, make_clone: Callable[[Remote, str], Path]) -> tuple[Store, Path]:
    seeded(daemon_remote, make_clone, *({"id": f"t{i}", "title": f"task {i}"} for i in range(1, 5)))
    r = run_cli("hooks", "install", "--server", str(daemon_remote.path), "--json", cwd=daemon_remote.path.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    bob_clone = make_clone(daemon_remote, "bob")
    r = run_cli("hooks", "install", "--json", cwd=bob_clone)
    assert r.returncode == 0, r.stdout + r.stderr
    return Store(bob_clone, agent="bob"), bob_clone


def _as_bob(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_"))}
    who = ("-c", "user.name=bob", "-c", "user.email=bob@agents.invalid")
    return subprocess.run([GIT, *who, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def _finish_and_claim_by_hand(wc: Path, finished: str, claimed: str) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    done = wc / task_path(finished)
    text = done.read_text()
    text = re.sub(r'^state = ".*"$', 'state = "done"', text, count=1, flags=re.M)
    done.write_text(text[: text.index("[claim]")].rstrip("\n") + "\n")
    nxt = wc / task_path(claimed)
    text = re.sub(r'^state = ".*"$', 'state = "active"', nxt.read_text(), count=1, flags=re.M)
    nxt.write_text(text.rstrip("\n") + f'\n\n[claim]\nholder = "bob"\nclaimed_at = {now}\n')


def test_the_server_hook_takes_done_next_and_refuses_trailers_that_lie_about_one_move(
    daemon_remote: Remote, make_clone: Callable[[Remote, str], Path], tmp_path: Path
) -> None:
    bob, _ = _hooked(daemon_remote, make_clone)
    bob.claim("t1")
    r = bob.done("t1", next=True)  # through gitclaim's own check, the client hook and the server hook
    assert r.next is not None and r.next.task.id == "t2" and daemon_remote.ref() == r.commit

    wc = tmp_path / "wc"
    git("clone", "-q", "-b", "gitclaim", daemon_remote.url, str(wc))
    _finish_and_claim_by_hand(wc, "t2", "t3")
    truthful = Record(
        op="done", agent="bob", task="t2", from_state="active", to_state="done",
        then=Record(op="claim", agent="bob", task="t3", from_state="todo", to_state="active"),
    )  # fmt: skip
    claim_t3 = truthful.then
    assert claim_t3 is not None
    lies = {
        "Then-From": replace(truthful, then=replace(claim_t3, from_state="backlog")),
        "Then-Task": replace(truthful, then=replace(claim_t3, task="t4")),
        "Then-Op": replace(truthful, then=replace(claim_t3, op="reset")),
        "Task": replace(truthful, task="t1"),
    }
    git("add", "-A", cwd=wc)
    tip = daemon_remote.ref()
    for lie, record in lies.items():
        made = _as_bob("commit", "-q", "-m", write("done t2 by bob; claim t3 by bob", record), cwd=wc)
        assert made.returncode == 0, made.stderr
        pushed = _as_bob("push", "origin", "gitclaim", cwd=wc)
        assert pushed.returncode != 0, lie
        assert "pre-receive hook declined" in pushed.stderr and "[trailers]" in pushed.stderr, (lie, pushed.stderr)
        assert daemon_remote.ref() == tip
        git("reset", "-q", "--soft", "HEAD~1", cwd=wc)
    made = _as_bob("commit", "-q", "-m", write("done t2 by bob; claim t3 by bob", truthful), cwd=wc)
    assert made.returncode == 0, made.stderr
    pushed = _as_bob("push", "origin", "gitclaim", cwd=wc)
    assert pushed.returncode == 0, pushed.stderr  # two moves by one author, told truthfully: accepted
    assert bob.verify().ok


def test_labels_check_each_half_of_a_two_move_record() -> None:
    moves = [
        TaskMove("a", "done", "active", "done", "bob", None, ("done",)),
        TaskMove("b", "claim", "todo", "active", None, "bob", ("claim",)),
    ]
    good = Record(op="done", agent="bob", task="a", from_state="active", to_state="done",
                  then=Record(op="claim", agent="bob", task="b", from_state="todo", to_state="active"))  # fmt: skip
    assert disagreements(good, moves, "bob") == []
    assert read(write("s", good)) == good
    # a second move the trailers do not name
    assert any("which its trailers do not name" in t for t in disagreements(replace(good, then=None),
                                                                               moves, "bob"))  # fmt: skip
    # a second move that is not a claim, or that names the first task again
    bad_op = replace(good, then=Record(op="release", agent="bob", task="b"))
    assert any("second move" in t for t in disagreements(bad_op, moves, "bob"))
    same = replace(good, then=Record(op="claim", agent="bob", task="a"))
    assert any("other than a" in t for t in disagreements(same, moves, "bob"))
    # each task's own view: the half about it
    assert disagreements(good, moves[1:], "bob", about="b") == []
    assert disagreements(good, moves[:1], "bob", about="a") == []


# --- the surfaces: CLI --json and MCP --------------------------------------------------


def test_cli_json_answers(path_remote: Remote, make_clone: Callable[[Remote, str], Path]) -> None:
    seeded(path_remote, make_clone)
    wc = make_clone(path_remote, "bob")
    assert run_cli("claim", "t1", "--agent", "bob", "--json", cwd=wc).returncode == 0
    r = run_cli("done", "t1", "--next", "--result", "all green", "--ttl", "10m", "--agent", "bob", "--json", cwd=wc)
    assert r.returncode == 0, r.stderr
    env = json.loads(r.stdout)
    assert env["ok"] and env["command"] == "done"
    res = env["result"]
    assert set(res) == {"op", "task", "from", "to", "commit", "changed", "retries", "previous_holder", "also",
                        "next", "nothing_ready"}  # fmt: skip
    assert res["task"]["result"]["text"] == "all green" and res["nothing_ready"] is False
    assert res["next"]["op"] == "next" and res["next"]["task"]["id"] == "t2" and res["next"]["to"] == "active"
    assert res["next"]["task"]["claim"]["lease_seconds"] == 600 and res["next"]["commit"] == res["commit"]
    human = run_cli("done", "t2", "--next", "--agent", "bob", cwd=wc)
    assert human.returncode == 0 and "finished t2" in human.stdout and "claimed t3 as bob" in human.stdout
    last = json.loads(run_cli("done", "t3", "--next", "--agent", "bob", "--json", cwd=wc).stdout)["result"]
    assert last["next"] is None and last["nothing_ready"] is True
    bad = run_cli("done", "t3", "--ttl", "10m", "--agent", "bob", "--json", cwd=wc)
    assert bad.returncode == 2 and json.loads(bad.stdout)["error"]["code"] == "bad_input"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_mcp_done_with_next(path_remote: Remote, make_clone: Callable[[Remote, str], Path]) -> None:
    from .test_mcp import connect, ok

    seeded(path_remote, make_clone)
    async with connect(make_clone(path_remote, "bob"), "bob") as s:
        await ok(s, "claim", task_id="t1")
        res = await ok(s, "done", task_id="t1", next=True, result="done well", ttl=120)
        assert res["task"]["state"] == "done" and res["next"]["task"]["id"] == "t2"
        assert res["next"]["task"]["claim"]["lease_seconds"] == 120 and res["nothing_ready"] is False
