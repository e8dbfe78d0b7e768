"""The lifecycle and leases on real clones of real remotes, with real processes.

Time is injected (``Store(clock=...)``, or a ``now`` sent to a worker
process), never slept on. Where it matters, tests run over a local-path
remote and over git daemon on loopback (the ``remote`` fixture).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gitclaim import Store
from gitclaim.cli import main
from gitclaim.errors import BadInput, LostRace, NotClaimable, NotFound, NothingReady, NotHolder
from gitclaim.ids import task_path
from gitclaim.model import State

from .conftest import run_cli
from .servers import Remote, clone, git
from .test_lifecycle import EXPECTED, expected_legal_verbs

WORKER = str(Path(__file__).with_name("race_worker.py"))
T0 = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)


class Clock:
    """A settable clock for ``Store(clock=...)``."""

    def __init__(self, t: datetime = T0) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def at(self, seconds: float) -> Clock:
        self.t = T0 + timedelta(seconds=seconds)
        return self

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def commits(remote: Remote) -> int:
    return int(git("rev-list", "--count", "gitclaim", cwd=remote.path).strip())


def trailers(remote: Remote, rev: str = "gitclaim") -> list[tuple[str, str]]:
    """The commit's trailers as git itself parses them, in order."""
    out = git("log", "-1", "--format=%(trailers:only,unfold)", rev, cwd=remote.path)
    pairs = []
    for line in out.splitlines():
        if line.strip():
            key, _, value = line.partition(":")
            pairs.append((key.strip(), value.strip()))
    return pairs


def trailer(remote: Remote, key: str, rev: str = "gitclaim") -> list[str]:
    return [v for k, v in trailers(remote, rev) if k == key]


def ops_by_task(remote: Remote) -> dict[str, list[str]]:
    """Every Gitclaim-Op on the remote branch, newest first, per Gitclaim-Task."""
    out = git(
        "log", "--format=%x1e%(trailers:key=Gitclaim-Op,valueonly,separator=)%x1f"
        "%(trailers:key=Gitclaim-Task,valueonly,separator=%x2c)", "gitclaim", cwd=remote.path,
    )  # fmt: skip
    per: dict[str, list[str]] = {}
    for rec in out.split("\x1e")[1:]:
        op, _, tasks = rec.strip().partition("\x1f")
        for t in filter(None, tasks.split(",")):
            per.setdefault(t, []).append(op)
    return per


def stored(remote: Remote, task_id: str) -> dict[str, Any]:
    return tomllib.loads(git("show", f"gitclaim:{task_path(task_id)}", cwd=remote.path))


StoreFactory = Callable[..., Store]


# --- the transition table, through the real Store API ---------------------------------------


def _prepare(h: Store, o: Store, cases: list[tuple[State, str, str]]) -> list[str]:
    """One task per case, brought into its state by the holder ``h`` with plain verbs."""
    ids = [f"{state.value}-{i}" for i, (state, _, _) in enumerate(cases)]
    start = {State.BACKLOG: "backlog", State.SOMEDAY: "someday"}
    h.add_many([{"id": i, "title": i, "state": start.get(s, "todo")} for i, (s, _, _) in zip(ids, cases, strict=True)])
    for tid, (state, _, _) in zip(ids, cases, strict=True):
        if state in (State.ACTIVE, State.WAITING, State.REVIEW, State.DONE, State.FAILED):
            h.claim(tid, ttl=60)
        {
            State.WAITING: lambda t: h.wait(t, "the vendor"),
            State.REVIEW: h.review,
            State.DONE: h.done,
            State.FAILED: lambda t: h.fail(t, "broke"),
            State.CANCELLED: h.cancel,
        }.get(state, lambda t: None)(tid)
    for tid, (state, _, _) in zip(ids, cases, strict=True):
        assert o.show(tid).task.state is state
    return ids


# verb -> [(state, who acts: "h" holder / "o" another agent, expected: "ok" / "state" / "holder")]
API_CASES: dict[str, list[tuple[State, str, str]]] = {
    "claim": [(State.TODO, "o", "ok"), (State.BACKLOG, "o", "ok"), (State.DONE, "o", "state")],
    "takeover": [(State.ACTIVE, "o", "ok"), (State.WAITING, "o", "state")],
    "release": [(State.ACTIVE, "h", "ok"), (State.ACTIVE, "o", "holder"), (State.WAITING, "h", "state")],
    "handoff": [(State.ACTIVE, "h", "ok"), (State.ACTIVE, "o", "holder"), (State.REVIEW, "h", "state")],
    "wait": [(State.ACTIVE, "h", "ok"), (State.ACTIVE, "o", "holder"), (State.WAITING, "h", "state")],
    "resume": [(State.WAITING, "h", "ok"), (State.WAITING, "o", "holder"), (State.ACTIVE, "h", "state")],
    "review": [(State.ACTIVE, "h", "ok"), (State.ACTIVE, "o", "holder"), (State.DONE, "h", "state")],
    "done": [(State.ACTIVE, "h", "ok"), (State.REVIEW, "o", "ok"), (State.ACTIVE, "o", "holder"),
             (State.TODO, "h", "state")],
    "fail": [(State.ACTIVE, "h", "ok"), (State.ACTIVE, "o", "holder"), (State.WAITING, "h", "state")],
    "cancel": [(State.TODO, "o", "ok"), (State.ACTIVE, "h", "ok"), (State.ACTIVE, "o", "holder"),
               (State.DONE, "o", "state")],
    "reopen": [(State.DONE, "o", "ok"), (State.REVIEW, "o", "ok"), (State.ACTIVE, "h", "state")],
    "reset": [(State.WAITING, "o", "ok"), (State.TODO, "o", "state")],
    "retry": [(State.FAILED, "o", "ok"), (State.DONE, "o", "ok"), (State.ACTIVE, "o", "state")],
    "edit": [(State.TODO, "o", "ok"), (State.SOMEDAY, "o", "ok"), (State.ACTIVE, "h", "state")],
}  # fmt: skip


def _act(verb: str, store: Store, tid: str) -> Any:
    if verb in ("claim", "takeover"):
        return store.claim(tid)
    if verb == "handoff":
        return store.handoff(tid, "carol")
    if verb == "wait":
        return store.wait(tid, "CI")
    if verb == "fail":
        return store.fail(tid, "no luck")
    if verb == "edit":
        return store.edit(tid, {"state": "backlog"})
    return getattr(store, verb)(tid)


@pytest.mark.parametrize("verb", list(API_CASES))
def test_the_api_follows_the_table(verb: str, path_remote: Remote, store_factory: StoreFactory) -> None:
    clock = Clock()
    h = store_factory(path_remote, "hal", clock=clock)
    o = store_factory(path_remote, "olga", clock=clock)
    h.init()
    cases = API_CASES[verb]
    ids = _prepare(h, o, cases)
    if verb == "takeover":
        clock.at(61)  # every lease (60 s) has run out; hal sent no heartbeat
    for tid, (state, actor, expect) in zip(ids, cases, strict=True):
        store = h if actor == "h" else o
        before = commits(path_remote)
        what = f"{verb} of a {state.value} task by {store.agent}"
        if expect == "ok":
            r = _act(verb, store, tid)
            targets = {to for v, frm, to, *_ in EXPECTED if v == verb and frm is state}
            target = State.BACKLOG if verb == "edit" else targets.pop()  # _act edits the state to backlog
            assert r.task.state is target, what
            assert r.previous_state == state.value and r.changed, what
            assert commits(path_remote) == before + 1, what
            assert o.show(tid).task.state is target, what
            assert trailer(path_remote, "Gitclaim-Op") == [verb], what
            assert trailer(path_remote, "Gitclaim-Agent") == [store.agent], what
            assert trailer(path_remote, "Gitclaim-From") == [state.value], what
            assert trailer(path_remote, "Gitclaim-To") == [target.value], what
            if verb == "takeover":
                assert r.previous_holder == "hal" and r.task.holder == "olga", what
                assert trailer(path_remote, "Gitclaim-Previous-Holder") == ["hal"], what
            expected_holder = {"claim": store.agent, "takeover": "olga", "handoff": "carol"}.get(verb)
            if target in (State.ACTIVE, State.WAITING, State.REVIEW):
                assert r.task.holder == (expected_holder or "hal"), what
            else:
                assert r.task.claim is None, what
            continue
        with pytest.raises(NotClaimable if expect == "state" else NotHolder) as ei:
            _act(verb, store, tid)
        e = ei.value
        assert commits(path_remote) == before, f"{what}: a refusal wrote a commit"
        assert o.show(tid).task.state is state, what
        if expect == "holder":
            assert e.exit_code == 13 and e.details["holder"] == "hal", what
            continue
        assert e.exit_code == 5, what
        assert state.value in e.message and e.details["state"] == state.value, what
        if verb not in ("claim", "takeover"):  # claim's refusal names the claimable states (test_rules)
            assert set(e.details["legal_verbs"]) == expected_legal_verbs(state), what


# --- retry clears the downstream chain in one commit ------------------------------------------


def test_retry_clears_every_downstream_claim_in_one_commit(remote: Remote, store_factory: StoreFactory) -> None:
    """up <- d1 <- d2 <- d3 (three levels, all held), up <- s1 (waiting) <- s2 (review),
    up <- k (done: keeps its state) <- k2 (held: cleared through the done task), and
    todo / unrelated tasks that must not be touched."""
    admin = store_factory(remote, "admin")
    admin.init()
    admin.add_many(
        [
            {"id": "up", "title": "build the base"},
            {"id": "d1", "title": "level 1", "depends_on": ["up"]},
            {"id": "d2", "title": "level 2", "depends_on": ["d1"]},
            {"id": "d3", "title": "level 3", "depends_on": ["d2"]},
            {"id": "s1", "title": "sibling", "depends_on": ["up"]},
            {"id": "s2", "title": "sibling's child", "depends_on": ["s1"]},
            {"id": "k", "title": "finished downstream", "depends_on": ["up"]},
            {"id": "k2", "title": "after the finished one", "depends_on": ["k"]},
            {"id": "idle", "title": "downstream, never claimed", "depends_on": ["d3"]},
            {"id": "elsewhere", "title": "unrelated"},
        ]
    )
    a, b, c, d, e = (store_factory(remote, n) for n in ("ann", "bob", "cat", "dan", "eve"))
    # Work went ahead on the old result of `up`: each level was claimed when its
    # dependency was done, then the dependency was reopened and taken again.
    a.claim("up")
    a.done("up")
    for who, tid in ((b, "d1"), (c, "d2")):
        who.claim(tid)
        who.done(tid)
    d.claim("d3")
    c.reopen("d2")
    c.claim("d2")
    b.reopen("d1")
    b.claim("d1")
    e.claim("s1")
    e.done("s1")
    d.claim("s2")
    d.review("s2")
    e.reopen("s1")
    e.claim("s1")
    e.wait("s1", "a license")
    a.claim("k")
    a.done("k")
    b.claim("k2")
    e.claim("elsewhere")
    states = {t.id: (t.state.value, t.holder) for t in admin.list().tasks}
    assert states == {
        "up": ("done", None), "d1": ("active", "bob"), "d2": ("active", "cat"), "d3": ("active", "dan"),
        "s1": ("waiting", "eve"), "s2": ("review", "dan"), "k": ("done", None), "k2": ("active", "bob"),
        "idle": ("todo", None), "elsewhere": ("active", "eve"),
    }  # fmt: skip

    before = commits(remote)
    r = admin.retry("up")
    assert commits(remote) == before + 1  # ONE commit
    assert r.task.state is State.TODO and r.previous_state == "done"
    cleared = {"d1": "bob", "d2": "cat", "d3": "dan", "s1": "eve", "s2": "dan", "k2": "bob"}
    assert {t.id: t.state for t in r.also} == dict.fromkeys(cleared, State.TODO)
    assert all(t.claim is None and t.waiting_for is None for t in r.also)

    after = {t.id: (t.state.value, t.holder) for t in admin.list().tasks}
    assert after == {
        "up": ("todo", None), **dict.fromkeys(cleared, ("todo", None)), "k": ("done", None),
        "idle": ("todo", None), "elsewhere": ("active", "eve"),
    }  # fmt: skip
    # the commit touches exactly the retried task and the cleared ones
    changed = git("diff", "--name-only", "gitclaim~1", "gitclaim", cwd=remote.path).split()
    assert sorted(changed) == sorted(task_path(t) for t in ["up", *cleared])

    # `git log` shows it as one operation naming each cleared task and its holder
    assert git("log", "-1", "--format=%s", "gitclaim", cwd=remote.path).strip() == (
        "retry up by admin, clearing 6 downstream claims"
    )
    assert trailer(remote, "Gitclaim-Op") == ["retry"]
    assert trailer(remote, "Gitclaim-Agent") == ["admin"]
    assert sorted(trailer(remote, "Gitclaim-Cleared")) == sorted(f"{t} from {h}" for t, h in cleared.items())
    ops = git("log", "--format=%(trailers:key=Gitclaim-Op,valueonly,separator=)", "gitclaim", cwd=remote.path)
    assert ops.split().count("retry") == 1
    # gitclaim's own trail renders the same operation
    (entry,) = [x for x in admin.log().entries if x.op == "retry"]
    assert entry.agent == "admin" and entry.tasks[0] == "up"
    assert sorted(entry.trailers["Cleared"]) == sorted(f"{t} from {h}" for t, h in cleared.items())


def test_a_cleared_downstream_task_shows_the_retry_in_its_own_history(
    path_remote: Remote, store_factory: StoreFactory
) -> None:
    """`gitclaim log d1` / `show d1` must answer "who took my claim away, and when"."""
    admin = store_factory(path_remote, "admin")
    admin.init()
    admin.add_many([{"id": "up", "title": "u"}, {"id": "d1", "title": "d", "depends_on": ["up"]}])
    admin.claim("up")
    admin.done("up")
    bob = store_factory(path_remote, "bob")
    bob.claim("d1")
    admin.retry("up")
    assert [e.op for e in admin.log("d1").entries][:2] == ["retry", "claim"]
    assert [e.op for e in admin.show("d1").history][:2] == ["retry", "claim"]


def test_retry_of_a_failed_task_with_nothing_downstream_clears_the_reason(
    path_remote: Remote, store_factory: StoreFactory
) -> None:
    s = store_factory(path_remote, "solo")
    s.init()
    s.add("t", task_id="t")
    s.claim("t")
    s.fail("t", "disk full")
    assert stored(path_remote, "t")["fail_reason"] == "disk full"
    r = s.retry("t")
    assert r.also == () and r.task.fail_reason is None
    assert "fail_reason" not in stored(path_remote, "t")
    assert trailer(path_remote, "Gitclaim-Cleared") == []
    assert git("log", "-1", "--format=%s", "gitclaim", cwd=path_remote.path).strip() == "retry t by solo"


# --- a crashed agent's task is taken over ------------------------------------------------------


class Worker:
    """One tests/race_worker.py process with a clone of its own."""

    def __init__(self, remote: Remote, root: Path, agent: str) -> None:
        self.agent = agent
        self.path = clone(remote, root / agent)
        self.proc = subprocess.Popen(
            [sys.executable, WORKER, str(self.path), agent],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.read() == {"ready": True}

    def send(self, op: str, **kw: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            assert self.proc.stderr is not None
            raise AssertionError(f"worker {self.agent} died: {self.proc.stderr.read()}")
        out = json.loads(line)
        assert isinstance(out, dict)
        return out

    def do(self, op: str, **kw: object) -> dict[str, Any]:
        self.send(op, **kw)
        return self.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(30)
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


def test_a_killed_agents_task_is_taken_over_once_its_lease_expires(
    remote: Remote, store_factory: StoreFactory, tmp_path: Path
) -> None:
    admin = store_factory(remote, "admin")
    admin.init()
    admin.add("Long job", task_id="job")
    crashy = Worker(remote, tmp_path / "procs", "crashy")
    try:
        got = crashy.do("claim", task="job", ttl=60)
        assert got["ok"] and got["changed"], got
        beat = crashy.do("heartbeat")
        assert beat["ok"] and beat["holding"] == ["job"], beat
        crashy.proc.kill()  # SIGKILL, mid-task: no release, no goodbye
        assert crashy.proc.wait(10) == -9
    finally:
        crashy.close()
    assert stored(remote, "job")["claim"]["lease_seconds"] == 60
    last_beat = datetime.fromisoformat(beat["at"])

    # Before the lease runs out, the task is not up for grabs.
    clock = Clock(last_beat + timedelta(seconds=59))
    taker = store_factory(remote, "taker", clock=clock)
    with pytest.raises(NothingReady):
        taker.next(ttl=60)
    with pytest.raises(LostRace) as ei:
        taker.claim("job")
    assert ei.value.details["holder"] == "crashy"
    assert ei.value.details["lease_expires"] == iso(last_beat + timedelta(seconds=60))
    assert [c.task.id for c in taker.stale().claims] == []

    # 61 s after the last sign of life, `next` takes it over.
    clock.t = last_beat + timedelta(seconds=61)
    assert [(c.task.id, c.holder, c.reason) for c in taker.stale().claims] == [("job", "crashy", "expired")]
    before = commits(remote)
    r = taker.next(ttl=60)
    assert r.task.id == "job" and r.changed and r.retries == 0
    assert r.previous_holder == "crashy" and r.task.holder == "taker"
    assert r.previous_state == "active" and r.task.state is State.ACTIVE
    assert commits(remote) == before + 1
    assert trailer(remote, "Gitclaim-Op") == ["takeover"]
    assert trailer(remote, "Gitclaim-Previous-Holder") == ["crashy"]
    assert trailer(remote, "Gitclaim-Agent") == ["taker"]
    assert git("log", "-1", "--format=%an %s", "gitclaim", cwd=remote.path).startswith(
        "taker take over job from crashy by taker"
    )
    doc = stored(remote, "job")
    assert doc["claim"] == {"holder": "taker", "claimed_at": clock.t, "lease_seconds": 60}

    # The history names both agents, in git and in gitclaim's own views.
    hist = admin.log("job").entries
    assert [(e.op, e.agent) for e in hist] == [("takeover", "taker"), ("claim", "crashy"), ("add", "admin")]
    shown = run_cli("log", "job", cwd=Path(admin.path))
    assert shown.returncode == 0, shown.stderr
    assert "crashy" in shown.stdout and "taker" in shown.stdout
    authors = git("log", "--format=%an", "gitclaim", "--", task_path("job"), cwd=remote.path).split()
    assert authors == ["taker", "crashy", "admin"]

    # The crashed agent comes back and tries to finish: refused, naming the new holder.
    back = run_cli("done", "job", "--agent", "crashy", "--json", cwd=Path(admin.path))
    assert back.returncode == 13, back.stdout + back.stderr
    err = json.loads(back.stdout)["error"]
    assert err["code"] == "not_holder" and err["details"]["holder"] == "taker"
    assert "taker" in err["message"]


def test_the_store_default_lease_applies_unless_ttl_says_otherwise(
    path_remote: Remote, store_factory: StoreFactory, tmp_path: Path
) -> None:
    admin = store_factory(path_remote, "admin")
    admin.init()
    admin.add_many([{"id": i, "title": i} for i in ("a", "b", "c")])
    assert admin.claim("a").task.claim.lease_seconds is None  # type: ignore[union-attr]
    human = tmp_path / "human"
    git("clone", "-q", "-b", "gitclaim", path_remote.url, str(human))
    cfg = human / "gitclaim.toml"
    assert "lease_seconds = 0" in cfg.read_text()
    cfg.write_text(cfg.read_text().replace("lease_seconds = 0", "lease_seconds = 300"))
    git("commit", "-qam", "a five-minute lease by default", cwd=human)
    git("push", "-q", "origin", "gitclaim", cwd=human)
    assert admin.claim("b").task.claim.lease_seconds == 300  # type: ignore[union-attr]
    assert admin.claim("c", ttl=0).task.claim.lease_seconds is None  # type: ignore[union-attr]
    assert stored(path_remote, "b")["claim"]["lease_seconds"] == 300
    assert "lease_seconds" not in stored(path_remote, "c")["claim"]
    assert trailer(path_remote, "Gitclaim-Lease-Seconds", "gitclaim~1") == ["300"]


def test_a_heartbeat_extends_the_lease(remote: Remote, store_factory: StoreFactory) -> None:
    admin = store_factory(remote, "admin")
    admin.init()
    admin.add("t", task_id="t")
    hclock, tclock = Clock(), Clock()
    holder = store_factory(remote, "holder", clock=hclock)
    taker = store_factory(remote, "taker", clock=tclock)
    holder.claim("t", ttl=60)
    hclock.at(50)
    hb = holder.heartbeat()
    assert hb.at == T0 + timedelta(seconds=50) and hb.holding == ("t",)

    before = commits(remote)
    tclock.at(61)  # past claim + ttl, but not past heartbeat + ttl
    with pytest.raises(LostRace) as ei:
        taker.claim("t")
    assert ei.value.details["lease_expires"] == iso(T0 + timedelta(seconds=110))
    assert ei.value.details["holder"] == "holder"
    with pytest.raises(NothingReady):
        taker.next()
    tclock.at(109)
    with pytest.raises(LostRace):
        taker.claim("t")
    assert commits(remote) == before
    assert stored(remote, "t")["claim"]["holder"] == "holder"

    tclock.at(110)  # heartbeat + ttl: the lease has run out
    r = taker.claim("t")
    assert r.previous_holder == "holder" and r.task.holder == "taker"
    assert trailer(remote, "Gitclaim-Op") == ["takeover"]
    assert trailer(remote, "Gitclaim-Previous-Holder") == ["holder"]
    assert commits(remote) == before + 1

    # the old holder's next heartbeat no longer lists the task
    hclock.at(111)
    holder.transport.fetch()
    assert holder.heartbeat().holding == ()


# --- renewals neither add commits nor contend with claims -------------------------------------


def _renewals(remote: Remote, store_factory: StoreFactory, agents: int, seconds: int) -> float:
    clock = Clock()
    admin = store_factory(remote, "admin", clock=clock)
    admin.init()
    admin.add_many(
        [{"id": f"held-{i:02d}", "title": "long"} for i in range(agents)]
        + [{"id": f"fresh-{j:02d}", "title": "short", "priority": 0} for j in range(seconds)]
    )
    team = [store_factory(remote, f"agent-{i:02d}", clock=clock) for i in range(agents)]
    for i, s in enumerate(team):
        assert s.claim(f"held-{i:02d}", ttl=5).task.claim.lease_seconds == 5  # type: ignore[union-attr]
    claimer = store_factory(remote, "claimer", clock=clock)
    claimer.transport.fetch()
    before = commits(remote)
    started = time.perf_counter()
    for j in range(seconds):
        clock.advance(1)
        for s in team:
            s.heartbeat()
        # a claim between two rounds of renewals: its optimistic push would be
        # refused (a retry) if any renewal had moved the branch
        r = claimer.claim(f"fresh-{j:02d}")
        assert r.changed and r.retries == 0, (j, r.retries)
    elapsed = time.perf_counter() - started
    assert commits(remote) == before + seconds  # the claims, and nothing for the renewals
    alive = git("for-each-ref", "--format=%(refname)", "refs/gitclaim/alive/", cwd=remote.path).split()
    assert sorted(alive) == [f"refs/gitclaim/alive/agent-{i:02d}" for i in range(agents)]
    # only the last renewal is kept: one parentless commit per agent
    assert git("rev-list", "--count", alive[0], cwd=remote.path).strip() == "1"

    # After `seconds` of 5 s leases, only the renewals keep the claims alive...
    vulture = store_factory(remote, "vulture", clock=clock)
    assert vulture.stale().claims == ()
    with pytest.raises(NothingReady):
        vulture.next()
    last = {c.holder: c.last_seen for c in vulture.stale(silent_after=0).claims if c.task.id.startswith("held-")}
    assert last == {s.agent: T0 + timedelta(seconds=seconds) for s in team}
    # ...and once they stop, every lease runs out 5 s after the last one.
    clock.advance(5)
    expired = vulture.stale().claims
    assert sorted((c.task.id, c.holder, c.reason) for c in expired) == [
        (f"held-{i:02d}", f"agent-{i:02d}", "expired") for i in range(agents)
    ]
    return elapsed


def test_twenty_agents_renewing_every_second_for_a_minute_add_no_commit(
    path_remote: Remote, store_factory: StoreFactory
) -> None:
    elapsed = _renewals(path_remote, store_factory, agents=20, seconds=60)
    print(f"1200 heartbeats and 60 claims over a path remote: {elapsed:.1f}s")


def test_renewals_over_git_daemon_add_no_commit(daemon_remote: Remote, store_factory: StoreFactory) -> None:
    # 1,200 renewals over git daemon take about a minute; the bulk runs on the
    # path remote above, the network transport gets a smaller team.
    elapsed = _renewals(daemon_remote, store_factory, agents=4, seconds=8)
    print(f"32 heartbeats and 8 claims over git daemon: {elapsed:.1f}s")


# --- the holder's done racing a takeover -------------------------------------------------------


def test_done_racing_a_takeover_has_exactly_one_winner(remote: Remote, tmp_path: Path) -> None:
    rounds = 20
    admin = Store(clone(remote, tmp_path / "admin"), agent="admin")
    admin.init()
    admin.add_many([{"id": f"race-{r:02d}", "title": f"round {r}"} for r in range(rounds)])
    holder = Worker(remote, tmp_path / "procs", "holder")
    taker = Worker(remote, tmp_path / "procs", "taker")
    winners: dict[str, str] = {}
    try:
        for r in range(rounds):
            tid = f"race-{r:02d}"
            claimed_at = T0 + timedelta(hours=r)
            got = holder.do("claim", task=tid, ttl=60, now=iso(claimed_at))
            assert got["ok"], got
            assert holder.do("fetch")["tip"] == taker.do("fetch")["tip"] == remote.ref()
            # Both decide on the same tip: the lease has expired for the taker,
            # the holder has just finished. Odd rounds give one side a small head start,
            # so that both orders are exercised whatever the machine's speed.
            first, second = (holder, taker) if r % 4 < 2 else (taker, holder)
            cmds = {
                holder: {"op": "done", "task": tid},
                taker: {"op": "claim", "task": tid, "ttl": 60, "now": iso(claimed_at + timedelta(seconds=61))},
            }
            first.send(**cmds[first])  # type: ignore[arg-type]
            if r % 2:
                time.sleep(0.005 * (r % 7))
            second.send(**cmds[second])  # type: ignore[arg-type]
            h, t = holder.read(), taker.read()
            assert h["ok"] != t["ok"], f"round {r}: exactly one must win: holder {h}, taker {t}"
            if h["ok"]:
                winners[tid] = "done"
                assert t["code"] == "not_claimable" and t["exit"] == 5, t
                assert t["details"]["state"] == "done" and "done" in t["message"], t
            else:
                winners[tid] = "takeover"
                assert t["previous_holder"] == "holder", t
                assert h["code"] == "not_holder" and h["exit"] == 13, h
                assert h["details"]["holder"] == "taker" and "taker" in h["message"], h
    finally:
        holder.close()
        taker.close()
    print("winners:", Counter(winners.values()))
    # The remote history has exactly one of {done, takeover} per round, and the
    # stored task agrees with the winner: nothing half-applied.
    per = ops_by_task(remote)
    final = {t.id: t for t in admin.list().tasks}
    for r in range(rounds):
        tid = f"race-{r:02d}"
        finishing = [op for op in per[tid] if op in ("done", "takeover")]
        assert finishing == [winners[tid]], (tid, per[tid])
        assert per[tid].count("claim") == 1
        t = final[tid]
        if winners[tid] == "done":
            assert t.state is State.DONE and t.claim is None
        else:
            assert t.state is State.ACTIVE and t.holder == "taker"
            assert t.claim is not None and t.claim.claimed_at == T0 + timedelta(hours=r, seconds=61)


# --- stale and reap ------------------------------------------------------------------------------


def test_stale_lists_expired_and_silent_claims_and_reap_returns_them_in_one_commit(
    remote: Remote, store_factory: StoreFactory
) -> None:
    clock = Clock()
    admin = store_factory(remote, "admin", clock=clock)
    admin.init()
    admin.add_many([{"id": i, "title": i} for i in ("t1", "t2", "t3", "w", "fine")])
    a = store_factory(remote, "ann", clock=clock)
    b = store_factory(remote, "bob", clock=clock)
    c = store_factory(remote, "cat", clock=clock)
    a.claim("t1", ttl=60)  # expires at 60
    a.claim("t3", ttl=0)  # no lease: never expires, but goes silent
    b.claim("t2", ttl=600)  # renewed at 350
    c.claim("w", ttl=30)
    c.wait("w", "a reply")  # parked: leases apply to active claims only
    b.claim("fine")  # no lease, renewed at 350
    clock.at(350)
    b.heartbeat()

    clock.at(59)
    assert admin.stale().claims == ()
    clock.at(400)
    expired = admin.stale()
    assert expired.now == T0 + timedelta(seconds=400)
    assert [(s.task.id, s.holder, s.reason) for s in expired.claims] == [("t1", "ann", "expired")]
    (st,) = expired.claims
    assert st.lease_expires == T0 + timedelta(seconds=60) and st.last_seen is None
    assert st.claimed_at == T0
    j = st.to_json()
    assert j == {
        "task": st.task.to_json(), "holder": "ann", "claimed_at": iso(T0),
        "lease_expires": iso(T0 + timedelta(seconds=60)), "last_seen": None, "reason": "expired",
    }  # fmt: skip
    assert j["task"]["id"] == "t1" and j["task"]["state"] == "active"

    silent = admin.stale(silent_after=300)
    assert [(s.task.id, s.holder, s.reason) for s in silent.claims] == [
        ("t1", "ann", "expired"),
        ("t3", "ann", "silent"),
        ("w", "cat", "silent"),
    ]
    assert [s.task.id for s in admin.stale(silent_after=30).claims] == ["fine", "t1", "t2", "t3", "w"]

    before = commits(remote)
    reaped = admin.reap(silent_after=300)
    assert commits(remote) == before + 1
    assert reaped.commit == remote.ref() and reaped.retries == 0
    assert [(s.task.id, s.holder, s.reason) for s in reaped.reaped] == [
        ("t1", "ann", "expired"),
        ("t3", "ann", "silent"),
        ("w", "cat", "silent"),
    ]
    assert trailer(remote, "Gitclaim-Op") == ["reap"]
    assert sorted(trailer(remote, "Gitclaim-Task")) == ["t1", "t3", "w"]
    assert trailer(remote, "Gitclaim-Cleared") == [
        "t1 from ann (expired)",
        "t3 from ann (silent)",
        "w from cat (silent)",
    ]
    changed = git("diff", "--name-only", "gitclaim~1", "gitclaim", cwd=remote.path).split()
    assert sorted(changed) == sorted(task_path(t) for t in ("t1", "t3", "w"))
    states = {t.id: (t.state.value, t.holder, t.waiting_for) for t in admin.list().tasks}
    assert states == {
        "t1": ("todo", None, None), "t3": ("todo", None, None), "w": ("todo", None, None),
        "t2": ("active", "bob", None), "fine": ("active", "bob", None),
    }  # fmt: skip
    assert {"t1", "t3", "w"} <= {t.id for t in admin.ready().tasks}
    # each previous holder shows in the history of its own task
    assert next(e.op for e in admin.log("w").entries) == "reap"

    # nothing stale: no commit
    again = admin.reap(silent_after=300)
    assert again.reaped == () and again.commit is None
    assert commits(remote) == before + 1


def test_reap_on_a_store_with_nothing_stale_writes_nothing(path_remote: Remote, store_factory: StoreFactory) -> None:
    s = store_factory(path_remote, "admin")
    s.init()
    s.add("t", task_id="t")
    s.claim("t", ttl=3600)
    n = commits(path_remote)
    r = s.reap()
    assert r.reaped == () and r.commit is None and r.retries == 0
    assert commits(path_remote) == n


# --- handoff, wait/resume, fail, edit --------------------------------------------------------------


def test_handoff_records_both_agents(remote: Remote, store_factory: StoreFactory) -> None:
    clock = Clock()
    a = store_factory(remote, "ann", clock=clock)
    a.init()
    a.add("t", task_id="t")
    a.claim("t", ttl=120)
    clock.at(30)
    before = commits(remote)
    r = a.handoff("t", "bob")
    assert commits(remote) == before + 1
    assert r.task.holder == "bob" and r.task.state is State.ACTIVE and r.previous_state == "active"
    assert r.task.claim is not None and r.task.claim.claimed_at == T0 + timedelta(seconds=30)
    assert r.task.claim.lease_seconds == 120
    assert git("log", "-1", "--format=%an %s", "gitclaim", cwd=remote.path).strip() == "ann hand off t from ann to bob"
    assert trailer(remote, "Gitclaim-Op") == ["handoff"]
    assert trailer(remote, "Gitclaim-Agent") == ["ann"]
    assert trailer(remote, "Gitclaim-To-Agent") == ["bob"]
    assert stored(remote, "t")["claim"]["holder"] == "bob"
    # the new holder works it; the old one no longer may
    b = store_factory(remote, "bob", clock=clock)
    assert b.claim("t").changed is False
    with pytest.raises(NotHolder) as ei:
        a.done("t")
    assert ei.value.details["holder"] == "bob"
    with pytest.raises(BadInput):
        b.handoff("t", "bob")  # to oneself
    with pytest.raises(BadInput):
        b.handoff("t", "not a name")
    assert b.done("t").task.state is State.DONE


def test_handoff_names_the_previous_holder(path_remote: Remote, store_factory: StoreFactory) -> None:
    a = store_factory(path_remote, "ann")
    a.init()
    a.add("t", task_id="t")
    a.claim("t")
    r = a.handoff("t", "bob")
    assert r.previous_holder == "ann"
    assert trailer(path_remote, "Gitclaim-Previous-Holder") == ["ann"]


def test_wait_and_resume_keep_the_holder(remote: Remote, store_factory: StoreFactory) -> None:
    clock = Clock()
    a = store_factory(remote, "ann", clock=clock)
    a.init()
    a.add("t", task_id="t")
    claimed = a.claim("t", ttl=60).task.claim
    clock.at(600)
    w = a.wait("t", "the vendor's\nreply")  # flattened to one line
    assert w.task.state is State.WAITING and w.task.waiting_for == "the vendor's reply"
    assert w.task.claim == claimed  # same holder, same claimed-at
    doc = stored(remote, "t")
    assert doc["state"] == "waiting" and doc["waiting_for"] == "the vendor's reply"
    assert doc["claim"]["holder"] == "ann"
    assert trailer(remote, "Gitclaim-Note") == ["the vendor's reply"]
    assert (
        git("log", "-1", "--format=%s", "gitclaim", cwd=remote.path).strip() == "wait on t by ann: the vendor's reply"
    )

    # a waiting task is not claimable, and its lease does not run out while parked
    bob = store_factory(remote, "bob", clock=clock)
    with pytest.raises(NotClaimable) as ei:
        bob.claim("t")
    assert ei.value.details["state"] == "waiting"
    assert bob.stale().claims == ()
    with pytest.raises(NotHolder):
        bob.resume("t")
    with pytest.raises(BadInput):
        a.wait("t", "   ")

    r = a.resume("t")
    assert r.task.state is State.ACTIVE and r.task.waiting_for is None and r.task.claim == claimed
    assert "waiting_for" not in stored(remote, "t")


def test_resume_restarts_the_lease(path_remote: Remote, store_factory: StoreFactory) -> None:
    """A parked task needs no live holder (docs/lifecycle.md); the holder's own
    resume is a sign of life, so the task is not up for takeover a second later."""
    clock = Clock()
    a = store_factory(path_remote, "ann", clock=clock)
    a.init()
    a.add("t", task_id="t")
    a.claim("t", ttl=60)
    a.wait("t", "a reply")
    clock.at(3600)  # an hour parked, no heartbeats: allowed
    a.resume("t")
    bob = store_factory(path_remote, "bob", clock=clock)
    clock.at(3601)
    with pytest.raises(LostRace):
        bob.claim("t")


def test_fail_records_the_reason(path_remote: Remote, store_factory: StoreFactory) -> None:
    a = store_factory(path_remote, "ann")
    a.init()
    a.add("t", task_id="t")
    a.claim("t")
    with pytest.raises(BadInput):
        a.fail("t", "")
    r = a.fail("t", "tests time out on arm64")
    assert r.task.state is State.FAILED and r.task.claim is None
    assert r.task.fail_reason == "tests time out on arm64"
    assert stored(path_remote, "t")["fail_reason"] == "tests time out on arm64"
    assert trailer(path_remote, "Gitclaim-Note") == ["tests time out on arm64"]
    assert git("log", "-1", "--format=%s", "gitclaim", cwd=path_remote.path).strip() == (
        "fail t by ann: tests time out on arm64"
    )
    assert a.show("t").task.fail_reason == "tests time out on arm64"


def test_edit_changes_plain_fields_with_validation_and_keeps_hand_added_ones(
    remote: Remote, store_factory: StoreFactory, tmp_path: Path
) -> None:
    a = store_factory(remote, "ann")
    a.init()
    a.add_many([{"id": "t", "title": "Old title"}, {"id": "base", "title": "b"}, {"id": "top", "title": "c"}])
    a.edit("top", {"depends_on": "t"})
    # a human adds fields of their own with plain git
    human = tmp_path / "human"
    git("clone", "-q", "-b", "gitclaim", remote.url, str(human))
    f = human / task_path("t")
    f.write_text(f.read_text() + 'estimate = 3\n\n[notes]\nreviewer = "ann"\n')
    git("commit", "-qam", "hand edit", cwd=human)
    git("push", "-q", "origin", "gitclaim", cwd=human)

    before = commits(remote)
    r = a.edit("t", {"title": "New title", "priority": "1", "tags": "web, urgent", "depends_on": "base"})
    assert commits(remote) == before + 1
    assert r.op == "edit" and r.task.title == "New title" and r.task.priority == 1
    assert r.task.tags == ("web", "urgent") and r.task.depends_on == ("base",)
    doc = stored(remote, "t")
    assert doc["estimate"] == 3 and doc["notes"] == {"reviewer": "ann"}  # kept
    assert doc["title"] == "New title"
    assert trailer(remote, "Gitclaim-Op") == ["edit"]
    assert sorted(trailer(remote, "Gitclaim-Field")) == ["depends_on", "priority", "tags", "title"]
    assert a.edit("t", {"estimate": "5"}).task.extra["estimate"] == 5  # a field of one's own
    assert a.edit("t", {"state": "someday"}).task.state is State.SOMEDAY
    assert a.edit("t", {"state": "todo"}).task.state is State.TODO

    n = commits(remote)
    refusals: list[tuple[dict[str, str], type[Exception], str]] = [
        ({"priority": "11"}, BadInput, "priority"),
        ({"priority": "-1"}, BadInput, "priority"),
        ({"title": ""}, BadInput, "title"),
        ({"claim": "x"}, BadInput, "claim"),
        ({"id": "other"}, BadInput, "id"),
        ({"waiting_for": "x"}, BadInput, "waiting_for"),
        ({"fail_reason": "x"}, BadInput, "fail_reason"),
        ({"state": "done"}, BadInput, "done"),
        ({"state": "active"}, BadInput, "active"),
        ({"state": "nonsense"}, BadInput, "nonsense"),
        ({"depends_on": "ghost"}, BadInput, "ghost"),
        ({"depends_on": "top"}, BadInput, "cycle"),  # top depends on t
        ({"depends_on": "t"}, BadInput, "itself"),
        ({}, BadInput, "nothing to change"),
    ]
    for changes, exc, says in refusals:
        with pytest.raises(exc) as ei:
            a.edit("t", changes)
        assert says in ei.value.message, (changes, ei.value.message)
        assert ei.value.exit_code == 2, changes  # type: ignore[attr-defined]
    with pytest.raises(NotFound):
        a.edit("ghost", {"title": "x"})
    # the state of a held task moves only through verbs
    a.claim("base")
    with pytest.raises(NotClaimable) as ei2:
        a.edit("base", {"state": "todo"})
    assert ei2.value.details["state"] == "active" and ei2.value.details["verb"] == "edit"
    assert a.edit("base", {"title": "still editable while held"}).task.holder == "ann"
    assert commits(remote) == n + 2  # the claim and the last edit
    doc = stored(remote, "t")
    assert doc["estimate"] == 5 and doc["notes"] == {"reviewer": "ann"} and doc["priority"] == 1


# --- the CLI: every new command with --json -----------------------------------------------------


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str], one: Path, two: Path) -> None:
        self.capsys, self.one, self.two = capsys, one, two

    def __call__(self, *args: str, where: Path | None = None, exit: int = 0) -> dict[str, Any]:
        self.capsys.readouterr()
        code = main(["-C", str(where or self.one), *args, "--json"])
        out = self.capsys.readouterr().out
        lines = [x for x in out.splitlines() if x.strip()]
        assert len(lines) == 1, out
        obj = json.loads(lines[0])
        assert code == exit, obj
        assert obj["ok"] is (exit == 0), obj
        if exit:
            assert obj["error"]["exit"] == exit
            return obj["error"]  # type: ignore[no-any-return]
        return obj["result"]  # type: ignore[no-any-return]


OP_KEYS = {"op", "task", "from", "to", "commit", "changed", "retries", "previous_holder", "also"}


@pytest.fixture
def cli(path_remote: Remote, make_clone: Callable[[Remote, str], Path], capsys: pytest.CaptureFixture[str]) -> Cli:
    one, two = make_clone(path_remote, "agent-1"), make_clone(path_remote, "agent-2")
    git("config", "gitclaim.agent", "agent-1", cwd=one)
    git("config", "gitclaim.agent", "agent-2", cwd=two)
    c = Cli(capsys, one, two)
    c("init")
    c("add", "--file", str(_batch(one.parent)))
    return c


def _batch(folder: Path) -> Path:
    f = folder / "tasks.json"
    f.write_text(json.dumps([{"id": i, "title": i} for i in ("a", "b", "c", "d", "e")]))
    return f


def test_cli_claim_and_next_take_a_ttl_and_heartbeat(cli: Cli) -> None:
    r = cli("claim", "a", "--ttl", "120")
    assert set(r) == OP_KEYS and r["task"]["claim"]["lease_seconds"] == 120
    r = cli("next", "--ttl", "30", where=cli.two)
    assert r["op"] == "next" and r["task"]["id"] == "b"
    assert r["task"]["claim"]["holder"] == "agent-2" and r["task"]["claim"]["lease_seconds"] == 30
    hb = cli("heartbeat")
    assert set(hb) == {"agent", "at", "holding"} and hb["agent"] == "agent-1" and hb["holding"] == ["a"]
    assert cli("claim", "c", "--ttl", "-1", exit=2)["code"] == "bad_input"


def test_cli_handoff(cli: Cli) -> None:
    cli("claim", "a")
    r = cli("handoff", "a", "--to", "agent-2")
    assert set(r) == OP_KEYS and r["op"] == "handoff" and r["task"]["claim"]["holder"] == "agent-2"
    assert cli("handoff", "a", "--to", "agent-3", exit=13)["details"]["holder"] == "agent-2"
    assert cli("handoff", "a", "--to", "bad name", where=cli.two, exit=2)["code"] == "bad_input"
    assert cli("handoff", "b", "--to", "agent-2", exit=5)["details"]["state"] == "todo"


def test_cli_wait_and_resume(cli: Cli) -> None:
    cli("claim", "a")
    r = cli("wait", "a", "--for", "CI on main")
    assert r["to"] == "waiting" and r["task"]["waiting_for"] == "CI on main"
    assert cli("resume", "a", where=cli.two, exit=13)["code"] == "not_holder"
    r = cli("resume", "a")
    assert r["from"] == "waiting" and r["to"] == "active" and r["task"]["waiting_for"] is None
    again = cli("resume", "a")  # the same command again: its own change already landed
    assert again["changed"] is False and again["commit"] is None and again["to"] == "active"
    err = cli("resume", "a", where=cli.two, exit=5)  # not its change: still refused
    assert err["code"] == "not_claimable" and "wait" in err["details"]["legal_verbs"]


def test_cli_review_then_a_reviewer_approves(cli: Cli) -> None:
    cli("claim", "a")
    r = cli("review", "a")
    assert r["to"] == "review" and r["task"]["claim"]["holder"] == "agent-1"
    r = cli("done", "a", where=cli.two)
    assert r["from"] == "review" and r["to"] == "done" and r["task"]["claim"] is None
    assert cli("review", "a", exit=5)["details"]["state"] == "done"


def test_cli_fail_and_retry(cli: Cli) -> None:
    cli("claim", "a")
    r = cli("fail", "a", "--reason", "flaky network")
    assert r["to"] == "failed" and r["task"]["fail_reason"] == "flaky network"
    r = cli("retry", "a", where=cli.two)
    assert r["from"] == "failed" and r["to"] == "todo" and r["also"] == [] and r["task"]["fail_reason"] is None
    assert cli("retry", "a", exit=5)["details"]["state"] == "todo"
    assert cli("fail", "zzz", "--reason", "x", exit=3)["code"] == "not_found"


def test_cli_cancel_and_reopen(cli: Cli) -> None:
    r = cli("cancel", "a")
    assert r["from"] == "todo" and r["to"] == "cancelled"
    r = cli("reopen", "a", where=cli.two)
    assert r["from"] == "cancelled" and r["to"] == "todo"
    cli("claim", "b")
    assert cli("cancel", "b", where=cli.two, exit=13)["details"]["holder"] == "agent-1"
    assert cli("reopen", "b", exit=5)["details"]["state"] == "active"


def test_cli_reset(cli: Cli) -> None:
    cli("claim", "a")
    r = cli("reset", "a", where=cli.two)
    assert r["op"] == "reset" and r["to"] == "todo" and r["previous_holder"] == "agent-1"
    assert r["task"]["claim"] is None
    assert cli("reset", "a", exit=5)["details"]["state"] == "todo"


def test_cli_release_by_another_agent_is_not_holder(cli: Cli) -> None:
    cli("claim", "a")
    err = cli("release", "a", where=cli.two, exit=13)
    assert err["code"] == "not_holder" and err["details"]["holder"] == "agent-1"


def test_cli_edit(cli: Cli) -> None:
    r = cli("edit", "a", "--set", "priority=0", "--set", "tags=x,y", "--set", "title=Renamed")
    assert r["op"] == "edit" and r["task"]["priority"] == 0 and r["task"]["tags"] == ["x", "y"]
    assert r["task"]["title"] == "Renamed"
    assert cli("edit", "a", "--set", "priority=11", exit=2)["code"] == "bad_input"
    assert cli("edit", "a", "--set", "claim=agent-1", exit=2)["code"] == "bad_input"
    assert cli("edit", "a", "--set", "priority", exit=2)["code"] == "bad_input"
    assert cli("edit", "a", "--set", "depends_on=ghost", exit=2)["code"] == "bad_input"
    assert cli("edit", "zzz", "--set", "priority=1", exit=3)["code"] == "not_found"


def test_cli_stale_and_reap(cli: Cli) -> None:
    # a claim whose one-minute lease ran out an hour ago (the clock injected into the API)
    old = Store(cli.two, agent="agent-2", clock=lambda: datetime.now(UTC) - timedelta(hours=1))
    old.claim("a", ttl=60)
    cli("claim", "b", "--ttl", "3600")
    st = cli("stale")
    assert set(st) == {"claims", "problems", "commit", "now", "total", "cut"}
    assert [(c["task"]["id"], c["holder"], c["reason"]) for c in st["claims"]] == [("a", "agent-2", "expired")]
    r = cli("reap")
    assert set(r) == {"reaped", "commit", "retries"} and r["commit"]
    assert [c["task"]["id"] for c in r["reaped"]] == ["a"]
    again = cli("reap")
    assert again["reaped"] == [] and again["commit"] is None
    assert cli("stale", "--silent-after", "0")["claims"][0]["reason"] == "silent"
