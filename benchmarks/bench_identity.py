"""Identity (issue 12): what signing costs a claim, and how fast ``gitclaim verify`` replays a history.

    python benchmarks/bench_identity.py                 # 2-3 min on a 2-core machine
    python benchmarks/bench_identity.py --full          # the 100,000-commit history, one round: ~15 min
    python benchmarks/bench_identity.py --only claims --claims 100
    python benchmarks/bench_identity.py --only verify --commits 50000 --profile

(1) claims: the same claims through ``Store.claim`` in four lanes, each with
its own bare remote (path) and one long-lived Store, that differ only in the
signing: a unsigned (the baseline); b an unencrypted ed25519 key file
(in-process SSHSIG); c the key held by a real ssh-agent started here
(``ssh-keygen -Y sign`` per commit); b+ as b on a store that requires signed
commits. Then the whole process, ``gitclaim claim ID --json``, for a and b.

(2) verify: a store history written directly with ``git fast-import`` (each
commit one task's add, claim or done, with gitclaim's trailers and task files,
in its layout), then ``gitclaim verify --offline`` on it beside ``git log`` and
``git rev-list`` over the same history; then a history whose every commit is
signed, beside an unsigned one of the same size. Every verify must exit 0; a
forged commit must make it exit 21.

Medians, and ratios to a baseline measured in the same run. benchmarks/README.md
says how to read them. Everything lives in one temporary folder (HOME and git's
configuration included), removed at the end; the ssh-agent is stopped.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import bench_common as bc  # beside this script; it puts the repository root on sys.path

from tests.servers import git, make_bare

if TYPE_CHECKING:
    from gitclaim.api import Store
    from gitclaim.sshkeys import PublicKey, SigningKey

AGENT = "agent-bench"
ADMIN = "alice"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
REF = "refs/remotes/origin/gitclaim"  # what `verify --offline` reads: the clone's copy of the store branch
DEFAULT_COMMITS, FULL_COMMITS, DEFAULT_SIGNED = 20_000, 100_000, 5_000
TARGET_PER_S = 1_000  # the target for verify


# --- keys and an ssh-agent ----------------------------------------------------------


def keygen(path: Path, comment: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path


def start_agent(env: bc.Env, sock: Path) -> subprocess.Popen[Any]:
    """``ssh-agent -D -a SOCK`` in its own process group (stopped by env.close)."""
    p = env.procs.popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not sock.exists():
        if p.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("ssh-agent did not start")
        time.sleep(0.01)
    return p


def sign_config(clone: Path, key: Path) -> None:
    """git's own settings for ssh signing, which gitclaim reads (gitclaim.signing)."""
    for k, v in (("gpg.format", "ssh"), ("user.signingkey", str(key)), ("gitclaim.sign", "true")):
        git("config", k, v, cwd=clone)


# --- (1) claims ---------------------------------------------------------------------


@dataclass
class Lane:
    name: str
    what: str
    clone: Path
    remote: Path
    store: Store
    signed: bool
    key: PublicKey | None  # the agent's key, to check the signatures
    admins: list[str]  # verify's --admin anchors (a store with a first policy)
    base: str = ""  # the remote's tip before the first claim
    times: list[float] = field(default_factory=list)
    cli_times: list[float] = field(default_factory=list)
    claimed: list[str] = field(default_factory=list)


def make_lane(
    env: bc.Env, name: str, what: str, tasks: int, *, key: Path | None, require: bool, admin_key: Path | None
) -> Lane:
    from gitclaim.api import Store
    from gitclaim.sshkeys import parse_public_key

    base = env.tmp(f"claims-{name}")
    remote = make_bare(base / "remote.git")
    admin_clone = bc.make_clone(str(remote), base / "admin")
    admins: list[str] = []
    if require:
        assert admin_key is not None and key is not None
        sign_config(admin_clone, admin_key)
        admin = Store(admin_clone, agent=ADMIN)
        admin.init(require_signed=True)
        admin.signers_add(AGENT, f"{key}.pub")
        admins = [f"{ADMIN}={admin_key}.pub"]
    else:
        admin = Store(admin_clone, agent=ADMIN)
        admin.init()
    admin.add_many([{"id": f"t-{i:04d}", "title": f"claim benchmark task {i}"} for i in range(tasks)])
    clone = bc.make_clone(str(remote), base / "agent")
    if key is not None:
        sign_config(clone, key)
    store = Store(clone, agent=AGENT)
    pub = None
    if key is not None:
        pub = parse_public_key(Path(str(key) if key.suffix == ".pub" else f"{key}.pub").read_text())
    return Lane(name, what, clone, remote, store, key is not None, pub, admins)


def bench_claims(env: bc.Env, args: argparse.Namespace) -> dict[str, Any]:
    n, n_cli, warm = args.claims, args.cli_samples, 2
    cmd, cmd_text = bc.gitclaim_command()
    bc.heading("(1) claims: signed vs unsigned, the same claims in every lane")
    keys = env.tmp("keys")
    agent_key = keygen(keys / "agent_ed25519", AGENT)
    admin_key = keygen(keys / "admin_ed25519", ADMIN)
    # lane c: the private key lives only in the agent; the .pub alone (no private file beside it,
    # which gitclaim would load and sign with in-process) is what user.signingKey names
    held = keygen(env.tmp("agent-held") / "id_ed25519", AGENT)
    sock = env.root / "ssh-agent.sock"
    start_agent(env, sock)
    os.environ["SSH_AUTH_SOCK"] = str(sock)  # for gitclaim and the ssh-keygen it runs
    subprocess.run(["ssh-add", "-q", str(held)], check=True, capture_output=True, timeout=60)
    pub_only = keys / "agent-in-ssh-agent.pub"
    pub_only.write_text(Path(f"{held}.pub").read_text())
    held.unlink()

    tasks = warm + n + 1 + n_cli
    bc.progress("setting up four stores")
    lanes = [
        make_lane(env, "a", "unsigned", tasks, key=None, require=False, admin_key=None),
        make_lane(env, "b", "key file (in-process SSHSIG)", tasks, key=agent_key, require=False, admin_key=None),
        make_lane(env, "c", "ssh-agent (ssh-keygen -Y sign)", tasks, key=pub_only, require=False, admin_key=None),
        make_lane(
            env, "b+", "key file, store requires signed", tasks, key=agent_key, require=True, admin_key=admin_key
        ),
    ]
    problems: list[str] = []
    kinds = {"a": None, "b": "KeyFileSigner", "c": "ProgramSigner", "b+": "KeyFileSigner"}
    for lane in lanes:
        got = type(lane.store.signer).__name__ if lane.store.signer is not None else None
        if got != kinds[lane.name]:
            problems.append(f"lane {lane.name}: gitclaim signs with {got}, expected {kinds[lane.name]}")
        lane.base = git("rev-parse", "refs/heads/gitclaim", cwd=lane.remote).strip()
    note_lines = [
        f"{n} claims per lane after {warm} untimed warm-ups; one long-lived Store per lane, its own bare remote"
        " (path): every claim is optimistic (no fetch, one compare-and-swap)",
        "lanes take turns, one claim each per round, in a new (seeded) random order each round",
        f"then the whole process: {cmd_text} claim ID --json, lanes a and b, {n_cli} each after 1 warm-up",
    ]
    for line in note_lines:
        bc.note(line)

    def claim(lane: Lane, tid: str) -> float:
        t = time.perf_counter()
        r = lane.store.claim(tid)
        elapsed = time.perf_counter() - t
        if not r.changed or r.task.holder != AGENT or r.retries:
            problems.append(
                f"lane {lane.name}: claim {tid} gave changed={r.changed} holder={r.task.holder} retries={r.retries}"
            )
        lane.claimed.append(tid)
        return elapsed

    next_task = 0
    order = random.Random(12)  # a new order each round: a rotation would keep every lane behind the same one
    for round_no in range(warm + n):
        tid = f"t-{next_task:04d}"
        next_task += 1
        for lane in order.sample(lanes, len(lanes)):
            elapsed = claim(lane, tid)
            if round_no >= warm:
                lane.times.append(elapsed)
        bc.progress(f"claims: round {round_no + 1}/{warm + n}")

    cli_lanes = [lane for lane in lanes if lane.name in ("a", "b")]
    for round_no in range(1 + n_cli):
        tid = f"t-{next_task:04d}"
        next_task += 1
        for lane in cli_lanes if round_no % 2 == 0 else cli_lanes[::-1]:
            t = time.perf_counter()
            r = subprocess.run(
                [*cmd, "claim", tid, "--agent", AGENT, "--json"],
                cwd=lane.clone,
                capture_output=True,
                text=True,
                timeout=120,
            )
            elapsed = time.perf_counter() - t
            if r.returncode != 0:
                problems.append(f"lane {lane.name}: gitclaim claim {tid} exited {r.returncode}: {r.stdout[-300:]}")
            lane.claimed.append(tid)
            if round_no > 0:
                lane.cli_times.append(elapsed)
        bc.progress(f"whole-process claims: round {round_no + 1}/{1 + n_cli}")

    for lane in lanes:
        problems += check_lane(lane)
    signing = sign_alone(lanes, n)

    figures = lane_table("Store.claim, in-process", lanes, lambda lane: lane.times)
    print()
    cli = lane_table("gitclaim claim, whole process", cli_lanes, lambda lane: lane.cli_times)
    figures |= {f"cli-{k}": v for k, v in cli.items()}
    print()
    rows = [
        [f"{name}  {what}", f"{m * 1000:.2f}", bc.rx(bc.ratio(m, figures["a"]["median_s"]))]
        for name, what, m in signing
    ]
    print(bc.table(["the signature alone (signer.sign, a commit's bytes)", "median ms", "x a claim in lane a"], rows))
    figures["sign"] = {name: m for name, _, m in signing}
    for p in problems:
        bc.note(f"PROBLEM {p}")
    f = figures
    summary = [
        f"(1) claim, in-process (median of {n}): unsigned {bc.ms(f['a']['median_s'])} ms; key file"
        f" {bc.ms(f['b']['median_s'])} ms (b/a {bc.rx(f['b']['ratio_to_a'])}); ssh-agent"
        f" {bc.ms(f['c']['median_s'])} ms (c/a {bc.rx(f['c']['ratio_to_a'])}); key file on a store requiring"
        f" signatures {bc.ms(f['b+']['median_s'])} ms ({bc.rx(f['b+']['ratio_to_a'])}); the signature alone: key"
        f" file {f['sign']['b'] * 1000:.2f} ms, ssh-agent {bc.ms(f['sign']['c'])} ms",
        f"(1) claim, whole process (median of {n_cli}): unsigned {bc.ms(f['cli-a']['median_s'])} ms; key file"
        f" {bc.ms(f['cli-b']['median_s'])} ms (b/a {bc.rx(f['cli-b']['ratio_to_a'])})",
    ]
    return {"figures": figures, "problems": problems, "summary": summary}


def lane_table(what: str, lanes: list[Lane], times: Callable[[Lane], list[float]]) -> dict[str, Any]:
    """Median per lane, its ratio to lane a's median and the spread of the per-round ratios."""
    base = times(lanes[0])
    out, rows = {}, []
    for lane in lanes:
        xs = times(lane)
        m = bc.median(xs)
        r = bc.ratio(m, bc.median(base))
        lo, hi = bc.iqr(xs)
        plo, phi = bc.iqr([x / a for x, a in zip(xs, base, strict=True)])
        rows.append(
            [
                f"{lane.name}  {lane.what}",
                bc.ms(m),
                f"{bc.ms(lo)}-{bc.ms(hi)}",
                bc.rx(r),
                f"{plo:.2f}-{phi:.2f}",
                bc.ms(m - bc.median(base)),
            ]
        )
        out[lane.name] = {
            "median_s": m,
            "iqr_s": [lo, hi],
            "ratio_to_a": r,
            "pair_ratio_iqr": [plo, phi],
            "samples_s": xs,
        }
    print(bc.table([f"lane ({what})", "median ms", "IQR ms", "x lane a", "pair-ratio IQR", "+ms"], rows))
    return out


def sign_alone(lanes: list[Lane], n: int) -> list[tuple[str, str, float]]:
    """What the signature itself takes in the signing lanes: ``signer.sign`` of the bytes of a commit."""
    from gitclaim.git import Repo

    out = []
    for lane in lanes:
        signer = lane.store.signer
        if signer is None or lane.name == "b+":
            continue
        tip = Repo(lane.remote).ref("refs/heads/gitclaim")
        assert tip is not None
        signed = Repo(lane.remote).commit_signature(tip)
        assert signed is not None
        payload = signed[1]
        signer.sign(payload)  # warm-up
        xs = []
        for _ in range(n):
            t = time.perf_counter()
            signer.sign(payload)
            xs.append(time.perf_counter() - t)
        out.append((lane.name, lane.what, bc.median(xs)))
    return out


def check_lane(lane: Lane) -> list[str]:
    """Every claim landed on the lane's remote, signed as the lane signs (and verifiably),
    and ``verify`` accepts the lane's whole history."""
    from gitclaim import sshsig
    from gitclaim.errors import VerifyFailed
    from gitclaim.git import Repo

    out = []
    remote = Repo(lane.remote)
    tip = remote.ref("refs/heads/gitclaim")
    assert tip is not None
    commits = remote.new_commits(lane.base, tip, limit=10_000) or []
    if len(commits) != len(lane.claimed):
        out.append(f"lane {lane.name}: {len(commits)} new commits on the remote for {len(lane.claimed)} claims")
    signers = sshsig.AllowedSigners().with_added(AGENT, lane.key) if lane.key is not None else None
    for info in commits:
        signed = remote.commit_signature(info.id)
        if (signed is not None) != lane.signed:
            out.append(f"lane {lane.name}: {info.id[:10]} is {'' if signed else 'not '}signed")
            break
        if signed is not None and signers is not None and sshsig.verify(signed[1], signed[0], signers) is None:
            out.append(f"lane {lane.name}: the signature of {info.id[:10]} does not verify")
            break
    try:
        lane.store.verify(admins=lane.admins or None)
    except VerifyFailed as e:
        out.append(f"lane {lane.name}: verify refused the lane's history: {e.message[:300]}")
    return out


# --- (2) a store history, written directly ------------------------------------------


@dataclass(frozen=True)
class Change:
    """One commit as gitclaim would write it: its author, time, message and the files it replaces."""

    author: str
    when: datetime
    message: str
    files: dict[str, bytes]


def init_change(admin: str, when: datetime = T0, extra: dict[str, bytes] | None = None) -> Change:
    """The first commit of a store as ``gitclaim init`` writes it (``extra``: more files, e.g. a policy)."""
    from gitclaim import audit
    from gitclaim.ids import STORE_FILE, TASKS_DIR
    from gitclaim.model import StoreConfig, dump_store_config
    from gitclaim.ops.bootstrap import SCHEMA, TASKS_README

    files = {
        STORE_FILE: dump_store_config(StoreConfig(created_at=when, created_by=admin)),
        f"{TASKS_DIR}/README.md": TASKS_README.encode(),
        **(extra or {}),
    }
    init = audit.Record(op="init", agent=admin, schema=SCHEMA)
    return Change(admin, when, audit.write(f"init gitclaim store by {admin}", init), files)


def store_history(
    n: int, *, seed: int = 12, agents: Sequence[str] = (), admin: str = ADMIN, keys: dict[str, PublicKey] | None = None
) -> Iterator[Change]:
    """``n`` commits of a store's life: init, then adds, claims and dones of one task each
    (a fifth of the tasks depend on an earlier one and are claimed only once it is done).

    With ``keys`` (name -> public key, the admin's included) the store requires signed
    commits from its first one, as ``init --require-signed`` makes it (the admin's key),
    and the admin lists each agent's key with a ``signers add`` commit before any task.
    """
    from gitclaim import audit, rules
    from gitclaim.ids import task_path
    from gitclaim.model import Task, dump_task
    from gitclaim.policy import ACCESS_FILE, SIGNERS_FILE, Policy
    from gitclaim.policy import dump as dump_policy
    from gitclaim.sshsig import AllowedSigners

    agents = tuple(agents) or tuple(f"agent-{i}" for i in range(8))
    rng = random.Random(seed)
    extra: dict[str, bytes] = {}
    if keys is not None:
        signers = AllowedSigners().with_added(admin, keys[admin])
        policy = Policy(require_signed=True, admins=(admin,), operators=(admin,), signers=signers.text(), defined=True)
        extra = {ACCESS_FILE: dump_policy(policy), SIGNERS_FILE: signers.text().encode()}
    yield init_change(admin, T0, extra)
    made = 1
    if keys is not None:
        for name in agents:
            if made >= n:
                return
            signers = signers.with_added(name, keys[name])
            what = f"add signer {name}"
            rec = audit.Record(op="signers", agent=admin, note=what, fields=(SIGNERS_FILE,))
            yield Change(
                admin,
                T0 + timedelta(seconds=made),
                audit.write(f"{what} by {admin}", rec),
                {SIGNERS_FILE: signers.text().encode()},
            )
            made += 1
    tasks: dict[str, Task] = {}
    ready: list[str] = []  # todo, every dependency done, oldest first
    active: list[str] = []
    waiting: dict[str, list[str]] = {}  # a task not done -> the todo tasks that wait for it
    done: set[str] = set()
    while made < n:
        when = T0 + timedelta(seconds=made)
        r = rng.random()
        if r < 1 / 3 or (not ready and not active):
            tid = f"task-{len(tasks) + 1:06d}"
            deps = (rng.choice(list(tasks)[-200:]),) if tasks and rng.random() < 0.2 else ()
            who = rng.choice(agents)
            t = Task(
                id=tid,
                title=f"benchmark task {len(tasks) + 1}",
                priority=rng.randint(0, 4),
                depends_on=deps,
                tags=("bench",),
                description="a task of the verify benchmark",
                created_at=when,
                created_by=who,
            )
            tasks[tid] = t
            if deps and deps[0] not in done:
                waiting.setdefault(deps[0], []).append(tid)
            else:
                ready.append(tid)
            rec = audit.Record(op="add", agent=who, to_state=t.state.value, added=(tid,))
            yield Change(who, when, audit.write(f"add {tid} by {who}", rec), {task_path(tid): dump_task(t)})
        elif (r < 2 / 3 and ready) or not active:
            tid = ready.pop(0)
            who = rng.choice(agents)
            old = tasks[tid]
            new = tasks[tid] = rules.apply_claim(old, who, when, None)
            active.append(tid)
            rec = audit.Record(op="claim", agent=who, task=tid, from_state=old.state.value, to_state=new.state.value)
            yield Change(who, when, audit.write(f"claim {tid} by {who}", rec), {task_path(tid): dump_task(new)})
        else:
            tid = active.pop(rng.randrange(len(active)))
            old = tasks[tid]
            assert old.claim is not None
            who = old.claim.holder
            new = tasks[tid] = rules.apply_move(rules.check_move("done", old, who), old, now=when)
            done.add(tid)
            ready.extend(waiting.pop(tid, ()))
            rec = audit.Record(op="done", agent=who, task=tid, from_state=old.state.value, to_state=new.state.value)
            yield Change(who, when, audit.write(f"done {tid} by {who}", rec), {task_path(tid): dump_task(new)})
        made += 1


def fast_import(git_dir: Path, changes: Iterable[Change], ref: str = REF) -> int:
    """Write ``changes`` as one chain of commits on ``ref`` with ``git fast-import`` (one pack)."""
    from gitclaim.identity import agent_email

    p = subprocess.Popen(["git", "fast-import", "--quiet", "--date-format=raw"], cwd=git_dir, stdin=subprocess.PIPE)
    assert p.stdin is not None
    count = 0
    try:
        for c in changes:
            ts = int(c.when.timestamp())
            who = f"{c.author} <{agent_email(c.author)}> {ts} +0000\n".encode()
            msg = c.message.encode()
            out = [f"commit {ref}\n".encode(), b"author " + who, b"committer " + who, b"data %d\n" % len(msg), msg]
            for path, data in c.files.items():
                out += [f"M 100644 inline {path}\ndata {len(data)}\n".encode(), data, b"\n"]
            p.stdin.write(b"".join(out))
            count += 1
    finally:
        p.stdin.close()
        rc = p.wait(timeout=600)
    if rc != 0:
        raise RuntimeError(f"git fast-import exited {rc}")
    return count


def write_signed(
    clone: Path, changes: Sequence[Change], keys: dict[str, SigningKey], *, unsigned_last: bool = False, ref: str = REF
) -> None:
    """Write ``changes`` with pygit2, each signed by its author's key (in-process SSHSIG) exactly as
    gitclaim signs its own (``Repo.write_commit(sign=...)``: pygit2's ``create_commit_with_signature``);
    ``unsigned_last``: the last one without a signature. Then one ``git repack``, to read from a pack."""
    from gitclaim import sshsig
    from gitclaim.git import Repo
    from gitclaim.identity import agent_email

    repo = Repo(clone)
    tip: str | None = None
    for i, c in enumerate(changes):
        key = keys[c.author]
        sign = None if unsigned_last and i == len(changes) - 1 else lambda b, k=key: sshsig.sign_with(k, b, "git")
        tip = repo.write_commit(tip, c.files, c.message, c.author, agent_email(c.author), c.when, sign=sign)
    assert tip is not None
    repo.set_ref(ref, tip, "bench: a signed history")
    git("repack", "-adfq", cwd=clone)


def history_clone(env: bc.Env, name: str) -> Path:
    """A clone whose remote exists (gitclaim needs one) and whose copy of the store branch we write."""
    base = env.tmp(name)
    make_bare(base / "remote.git")
    return bc.make_clone(str(base / "remote.git"), base / "clone")


def forged(after: datetime, *, signed_store: bool) -> list[Change]:
    """Commits verify must refuse, to append to a history: for an unsigned store, a task added and
    claimed by agent-0, then a ``done`` by mallory, who does not hold it, with trailers that say so
    honestly (rule ownership); for a signed store, one plain ``add`` (written unsigned: rule unsigned)."""
    from gitclaim import audit, rules
    from gitclaim.ids import task_path
    from gitclaim.model import Task, dump_task

    tid, who, path = "forged-task", "agent-0", task_path("forged-task")
    when = [after + timedelta(seconds=k) for k in (1, 2, 3)]
    task = Task(id=tid, title="a task for a forged commit", created_at=when[0], created_by=who)
    add = audit.Record(op="add", agent=who, to_state="todo", added=(tid,))
    out = [Change(who, when[0], audit.write(f"add {tid} by {who}", add), {path: dump_task(task)})]
    if signed_store:
        return out
    held = rules.apply_claim(task, who, when[1], None)
    claim = audit.Record(op="claim", agent=who, task=tid, from_state="todo", to_state="active")
    out.append(Change(who, when[1], audit.write(f"claim {tid} by {who}", claim), {path: dump_task(held)}))
    finished = rules.apply_move(rules.check_move("done", held, who), held, now=when[2])
    done = audit.Record(op="done", agent="mallory", task=tid, from_state="active", to_state="done")
    out.append(Change("mallory", when[2], audit.write(f"done {tid} by mallory", done), {path: dump_task(finished)}))
    return out


def run_verify(cmd: list[str], clone: Path, extra: Sequence[str] = ()) -> tuple[float, int, dict[str, Any]]:
    """``gitclaim verify --offline --json`` as its own process: seconds, exit status, output."""
    t = time.perf_counter()
    r = subprocess.run(
        [*cmd, "verify", "--offline", "--json", *extra], cwd=clone, capture_output=True, text=True, timeout=7200
    )
    elapsed = time.perf_counter() - t
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        doc = {"unparsed": (r.stdout + r.stderr)[-500:]}
    return elapsed, r.returncode, doc


def violations_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The violations a ``verify --json`` output lists, wherever the envelope keeps them."""
    found: list[dict[str, Any]] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            if isinstance(x.get("violations"), list):
                found.extend(v for v in x["violations"] if isinstance(v, dict))
                return
            for v in x.values():
                walk(v)

    walk(doc)
    return found


def rules_of(doc: dict[str, Any]) -> list[str]:
    return sorted({str(v.get("rule")) for v in violations_of(doc)})


def verify_once(cmd: list[str], clone: Path, extra: Sequence[str], problems: list[str], what: str) -> float:
    """One timed verify that must exit 0: a refusal means the generator or gitclaim is wrong."""
    elapsed, rc, doc = run_verify(cmd, clone, extra)
    if rc != 0:
        found = violations_of(doc)
        shown = "; ".join(f"{str(v.get('commit'))[:10]} [{v.get('rule')}] {v.get('message')}" for v in found[:5])
        problems.append(
            f"{what}: verify exited {rc} on the generated history ({len(found)} violations: {shown or doc});"
            " the generator or gitclaim is wrong"
        )
    return elapsed


def timed(argv: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=3600)
    return time.perf_counter() - t


@dataclass
class Row:
    """One command timed over a history: its name, the commits it covers, how to run it once."""

    name: str
    commits: int
    run: Callable[[], float]
    samples: list[float] = field(default_factory=list)


def interleave(rows: list[Row], runs: int, problems: list[str], what: str) -> None:
    """Every row once per round, the order rotated each round, so that all see the same noise."""
    for run_no in range(runs):
        shift = run_no % len(rows)
        for row in rows[shift:] + rows[:shift]:
            bc.progress(f"{what}: round {run_no + 1}/{runs}: {row.name}")
            row.samples.append(row.run())
        if problems:
            return


def net_rate(commits: int, samples: list[float], fixed_s: float) -> float:
    """Commits per second less the fixed cost (start-up); nan when the run is no longer than that."""
    spent = bc.median(samples) - fixed_s
    return commits / spent if spent > 0 else float("nan")


def per_s(x: float) -> str:
    return "-" if x != x else f"{x:,.0f}"


def verify_table(rows: list[Row], baseline: Row, verify: Row) -> dict[str, Any]:
    """Medians, commits/s and the ratio to ``baseline`` (rows over the same commits); the figures of ``verify``."""
    base = bc.median(baseline.samples)
    out = []
    for row in rows:
        m = bc.median(row.samples)
        lo, hi = bc.iqr(row.samples)
        same = row.commits == baseline.commits
        out.append(
            [
                row.name,
                f"{row.commits:,}",
                bc.secs(m),
                f"{bc.secs(lo)}-{bc.secs(hi)}",
                f"{row.commits / m:,.0f}",
                bc.rx(bc.ratio(m, base)) if same else "-",
            ]
        )
    print(bc.table(["command", "commits", "median s", "IQR s", "commits/s", f"x {baseline.name}"], out))
    m = bc.median(verify.samples)
    return {
        "median_s": m,
        "rate": verify.commits / m,
        "ratio": bc.ratio(m, base),
        "baseline": baseline.name,
        "rows": {r.name: {"commits": r.commits, "samples_s": r.samples} for r in rows},
    }


def git_rows(clone: Path, n: int) -> list[Row]:
    return [
        Row("git log --format=%H%n%B", n, lambda: timed(["git", "log", "--format=%H%n%B", REF], clone)),
        Row("git rev-list --count", n, lambda: timed(["git", "rev-list", "--count", REF], clone)),
        Row("git log --raw", n, lambda: timed(["git", "log", "--format=%H", "--raw", REF], clone)),
    ]


def pack_mib(clone: Path) -> float:
    out = git("count-objects", "-v", cwd=clone)
    kib = dict(line.split(": ") for line in out.strip().splitlines()).get("size-pack", "0")
    return int(kib) / 1024


def build_unsigned(env: bc.Env, name: str, n: int, agents: Sequence[str] = ()) -> tuple[Path, float]:
    """A clone holding an ``n``-commit store history in one pack; the seconds it took."""
    clone = history_clone(env, name)
    t = time.perf_counter()
    fast_import(clone / ".git", store_history(n, agents=agents))
    # fast-import deltifies each version against the one before (the newest trees at the end of the
    # longest chains); a server's pack, which a CI clone receives, keeps the newest whole, as this does
    git("repack", "-adfq", cwd=clone)
    return clone, time.perf_counter() - t


def bench_verify(env: bc.Env, args: argparse.Namespace) -> dict[str, Any]:
    cmd, cmd_text = bc.gitclaim_command()
    n, runs = args.commits, args.runs
    problems: list[str] = []
    figures: dict[str, Any] = {}
    bc.heading(
        f"(2) verify: a {n:,}-commit store history"
        + (f", and {args.signed_commits:,} signed commits" if args.signed_commits else "")
    )
    bc.note(
        f"histories written directly (git fast-import; pygit2 + sshsig.sign_with when signed), one pack each;"
        f" then {runs} round{'s' if runs > 1 else ''} of: {cmd_text} verify --offline --json (whole process)"
        " and the git baselines, interleaved, the order rotated"
    )
    bc.progress(f"writing {n:,} commits")
    clone, build_s = build_unsigned(env, "verify", n)
    counted = int(git("rev-list", "--count", REF, cwd=clone))
    if counted != n:
        problems.append(f"the history has {counted} commits, expected {n}")
    tip = git("rev-parse", REF, cwd=clone).strip()
    tasks = len([p for p in git("ls-tree", "-r", "--name-only", f"{tip}:tasks", cwd=clone).split("\n") if p]) - 1
    bc.note(
        f"history: {n:,} commits (adds, claims and dones, about a third each; {tasks:,} tasks at the tip),"
        f" written and packed in {build_s:.0f} s, {pack_mib(clone):.0f} MiB"
    )
    newest = min(2_000, n // 10)
    since = git("rev-parse", f"{REF}~{newest}", cwd=clone).strip()
    verify = Row("gitclaim verify --offline", n, lambda: verify_once(cmd, clone, [], problems, "verify"))
    recent = Row(
        f"gitclaim verify --since TIP~{newest}",
        newest,
        lambda: verify_once(cmd, clone, ["--since", since], problems, "verify --since"),
    )
    fixed = Row(
        "gitclaim verify --since TIP (nothing)",
        0,
        lambda: verify_once(cmd, clone, ["--since", tip], problems, "verify --since TIP"),
    )
    rows = [*git_rows(clone, n), verify, recent, fixed]
    interleave(rows, runs, problems, f"{n:,} commits")
    figures["unsigned"] = verify_table(rows, rows[0], verify)
    start_s = bc.median(fixed.samples)
    net = {
        "all": net_rate(n, verify.samples, start_s),
        "newest": net_rate(newest, recent.samples, start_s),
    }
    figures["unsigned"] |= {
        "tasks": tasks,
        "fixed_s": start_s,
        "net_rate_all": net["all"],
        "net_rate_newest": net["newest"],
        "newest": newest,
    }
    bc.note(
        f"less the fixed cost (start-up: verify --since TIP, nothing to check, {bc.secs(start_s)} s), verify checks"
        f" {per_s(net['all'])} commits/s over the whole history and {per_s(net['newest'])} commits/s over the"
        f" newest {newest:,} (a store of ~{tasks:,} tasks): a commit costs more as the store grows"
    )
    problems += check_refuses_forgery(env, cmd)

    signed: tuple[Path, list[str]] | None = None
    if args.signed_commits:
        figures["signed"], *rest = bench_signed(env, cmd, args.signed_commits, runs, problems)
        signed = (rest[0], rest[1])
    if args.profile:
        what = f"the newest {newest:,} commits of the {n:,}-commit history ({tasks:,} tasks)"
        profile_verify(clone, [], args.profile_top, what, since=since)
        if signed is not None:
            profile_verify(signed[0], [signed[1][1]], args.profile_top, f"the {args.signed_commits:,} signed commits")

    for p in problems:
        bc.note(f"PROBLEM {p}")
    u = figures["unsigned"]
    if n >= FULL_COMMITS:
        verdict = f"{'meets' if u['rate'] >= TARGET_PER_S else 'MISSES'} the target of {TARGET_PER_S:,}/s"
    else:  # the cost of a commit grows with the store: a smaller history says nothing about the target
        verdict = f"the target, {TARGET_PER_S:,}/s, is for {FULL_COMMITS:,} commits: --full"
    summary = [
        f"(2) verify, {n:,} commits ({tasks:,} tasks; median of {runs}): {u['rate']:,.0f} commits/s ({verdict});"
        f" the newest {newest:,} at {per_s(u['net_rate_newest'])}/s; {u['ratio']:,.0f}x the time of"
        " git log --format=%H%n%B over the same history"
    ]
    if "signed" in figures:
        s = figures["signed"]
        summary.append(
            f"(2) verify, {args.signed_commits:,} signed commits: {s['rate']:,.0f} commits/s"
            f" ({per_s(s['net_rate'])} less start-up); {s['ratio']:.2f}x the time of verify on an unsigned history"
            f" of the same size ({s['net_ratio']:.2f}x less start-up)"
        )
    return {"figures": figures, "problems": problems, "summary": summary}


def check_refuses_forgery(env: bc.Env, cmd: list[str]) -> list[str]:
    """verify has teeth: a forged commit appended to a small history of the same kind is refused."""
    small = list(store_history(300))
    bad = history_clone(env, "verify-forged")
    fast_import(bad / ".git", [*small, *forged(small[-1].when, signed_store=False)])
    _, rc, doc = run_verify(cmd, bad)
    if rc != 21 or "ownership" not in rules_of(doc):
        return [f"verify did not refuse a forged done (exit {rc}, rules {rules_of(doc)})"]
    bc.note(
        "check: a `done` by a non-holder appended to a 300-commit history:"
        f" verify exits 21 ({', '.join(rules_of(doc))})"
    )
    return []


def bench_signed(
    env: bc.Env, cmd: list[str], n: int, runs: int, problems: list[str]
) -> tuple[dict[str, Any], Path, list[str]]:
    """Signed verify: ``n`` commits each signed by its author's key, against an unsigned history of the same
    size and shape (the baseline), interleaved."""
    from gitclaim.sshkeys import load_signing_key

    agents = tuple(f"agent-{i}" for i in range(8))
    keydir = env.tmp("verify-keys")
    key_files = {name: keygen(keydir / name, name) for name in (ADMIN, *agents)}
    keys = {name: load_signing_key(p.read_bytes()) for name, p in key_files.items()}
    pubs = {name: k.public_key for name, k in keys.items()}
    anchor = ["--admin", f"{ADMIN}={key_files[ADMIN]}.pub"]
    signed = history_clone(env, "verify-signed")
    bc.progress(f"writing {n:,} signed commits")
    t = time.perf_counter()
    write_signed(signed, list(store_history(n, agents=agents, keys=pubs)), keys)
    signed_s = time.perf_counter() - t
    plain, _ = build_unsigned(env, "verify-plain", n, agents)
    print()
    bc.note(
        f"signed: {n:,} commits, each signed by its author's ed25519 key (sshsig.sign_with), written and packed"
        f" in {signed_s:.0f} s; the first policy requires signatures (admin {ADMIN}, anchored with --admin"
        f" {ADMIN}=PUB), {len(agents)} `signers add` commits by {ADMIN}, then tasks"
    )
    signed_tip = git("rev-parse", REF, cwd=signed).strip()
    plain_tip = git("rev-parse", REF, cwd=plain).strip()
    verify = Row("verify, signed (--admin)", n, lambda: verify_once(cmd, signed, anchor, problems, "signed verify"))
    base = Row("verify, unsigned", n, lambda: verify_once(cmd, plain, [], problems, "unsigned verify"))
    fixed_signed = Row(
        "verify --since TIP, signed (nothing)",
        0,
        lambda: verify_once(cmd, signed, [*anchor, "--since", signed_tip], problems, "signed --since"),
    )
    fixed_plain = Row(
        "verify --since TIP, unsigned (nothing)",
        0,
        lambda: verify_once(cmd, plain, ["--since", plain_tip], problems, "unsigned --since"),
    )
    log = Row("git log --format=%H%n%B, signed", n, lambda: timed(["git", "log", "--format=%H%n%B", REF], signed))
    rows = [base, verify, log, fixed_plain, fixed_signed]
    interleave(rows, runs, problems, f"{n:,} signed commits")
    figures = verify_table(rows, base, verify)
    net_signed = net_rate(n, verify.samples, bc.median(fixed_signed.samples))
    net_plain = net_rate(n, base.samples, bc.median(fixed_plain.samples))
    figures |= {"net_rate": net_signed, "net_rate_unsigned": net_plain, "net_ratio": net_plain / net_signed}
    bc.note(
        f"less the fixed cost of each (verify --since TIP): signed {per_s(net_signed)} commits/s, unsigned"
        f" {per_s(net_plain)} commits/s: signed/unsigned time {net_plain / net_signed:.2f}x"
    )

    # verify has teeth here too: no anchor for the first policy (rule trust); one unsigned commit (rule unsigned)
    small = list(store_history(60, agents=agents, keys=pubs))
    unanchored = history_clone(env, "verify-unanchored")
    write_signed(unanchored, small, keys)
    _, rc_trust, doc_trust = run_verify(cmd, unanchored)
    tail = history_clone(env, "verify-unsigned-tail")
    write_signed(tail, [*small, *forged(small[-1].when, signed_store=True)], keys, unsigned_last=True)
    _, rc_unsigned, doc_unsigned = run_verify(cmd, tail, anchor)
    if rc_trust != 21 or "trust" not in rules_of(doc_trust):
        problems.append(f"verify without --admin accepted an unanchored first policy (exit {rc_trust})")
    elif rc_unsigned != 21 or rules_of(doc_unsigned) != ["unsigned"]:
        problems.append(f"verify did not refuse one unsigned commit (exit {rc_unsigned}: {rules_of(doc_unsigned)})")
    else:
        bc.note(
            "checks: the signed history of 60 commits without --admin: exit 21 (trust); with --admin and one"
            " unsigned commit appended: exit 21 (unsigned)"
        )
    return figures, signed, anchor


def function_name(file: str, line: int, name: str) -> str:
    """``name (folder/file.py:line)``; a C function as ``Class.method [C]``."""
    if file != "~":
        return f"{name} ({'/'.join(Path(file).parts[-2:])}:{line})"
    m = re.fullmatch(r"<method '(\w+)' of '([\w.]+)' objects>", name)
    if m:
        return f"{m.group(2).rsplit('.', 1)[-1]}.{m.group(1)} [C]"
    m = re.fullmatch(r"<built-in method ([\w.]+)>", name)
    return f"{m.group(1)} [C]" if m else name


def profile_verify(clone: Path, admins: list[str], top: int, what: str, since: str | None = None) -> None:
    """``Store.verify`` once under cProfile: where the time goes, by function (own time, then cumulative).
    cProfile slows Python code more than code in C (libgit2, hashing): read shares, not totals."""
    from gitclaim.api import Store

    bc.progress(f"profiling Store.verify on {what}")
    prof = cProfile.Profile()
    store = Store(clone, agent="bench-verify")
    t = time.perf_counter()
    prof.runcall(store.verify, since=since, admins=admins or None, offline=True)
    total = time.perf_counter() - t
    entries = pstats.Stats(prof).stats  # type: ignore[attr-defined]  # {(file, line, name): (cc, calls, own, cumulative, callers)}
    whole = max(v[3] for v in entries.values())  # Store.verify's own cumulative time
    print()
    bc.note(f"profile: Store.verify on {what}, in-process under cProfile ({total:.1f} s with the profiler on)")
    for idx, label in ((2, "own time"), (3, "cumulative")):
        rows = []
        for (file, line, name), v in sorted(entries.items(), key=lambda kv: -kv[1][idx])[:top]:
            rows.append([function_name(file, line, name), f"{v[1]:,}", bc.secs(v[idx]), f"{100 * v[idx] / whole:.0f}%"])
        bc.note(f"by {label}:")
        print(bc.table(["function", "calls", "s", "share"], rows, indent="    "))


# --- the command ----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/bench_identity.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--only", default="claims,verify", help="claims, verify or both (default both)")
    p.add_argument("--claims", type=int, default=40, help="claims per lane, in-process (default 40)")
    p.add_argument("--cli-samples", type=int, default=10, help="whole-process claims per lane (default 10)")
    p.add_argument(
        "--commits",
        type=int,
        default=0,
        help=f"commits of the verify history (default {DEFAULT_COMMITS:,}; --full {FULL_COMMITS:,})",
    )
    p.add_argument(
        "--full", action="store_true", help=f"the {FULL_COMMITS:,}-commit history (one verify takes minutes)"
    )
    p.add_argument(
        "--signed-commits",
        type=int,
        default=DEFAULT_SIGNED,
        help=f"commits of the signed history (default {DEFAULT_SIGNED:,}; 0: none)",
    )
    p.add_argument("--runs", type=int, default=0, help="verify runs per history (default 3; --full 1)")
    p.add_argument(
        "--profile",
        action="store_true",
        help="also profile Store.verify (cProfile) on the newest commits of the big history, and the signed one",
    )
    p.add_argument("--profile-top", type=int, default=20, help="functions listed by the profile (default 20)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    a = p.parse_args(argv)
    a.only = [x.strip() for x in a.only.split(",") if x.strip()]
    if not a.only or set(a.only) - {"claims", "verify"}:
        p.error("--only takes claims, verify or both")
    a.commits = a.commits or (FULL_COMMITS if a.full else DEFAULT_COMMITS)
    a.runs = a.runs or (1 if a.full else 3)
    if a.claims < 1 or a.cli_samples < 1 or a.runs < 1 or a.commits < 10:
        p.error("--claims, --cli-samples and --runs need at least 1, --commits at least 10")
    return a


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through the cleanup below


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env, cleanup = bc.make_env(keep=args.keep, quick=False)
    signal.signal(signal.SIGTERM, _on_sigterm)
    started = time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    try:
        bc.isolate_env(env.root / "home")  # before anything imports pygit2
        os.environ.pop("SSH_AUTH_SOCK", None)  # only the agent started here signs
        import pygit2

        print("gitclaim identity benchmarks (issue 12): " + ", ".join(args.only))
        print(
            f"python {platform.python_version()}, pygit2 {pygit2.__version__} (libgit2 {pygit2.LIBGIT2_VERSION}),"
            f" {git('--version').strip()}, {os.cpu_count()} CPUs, {platform.platform()}"
        )
        print("every figure is a median over repeated samples; compare ratios, not absolute times")
        if "claims" in args.only:
            results["claims"] = bench_claims(env, args)
        if "verify" in args.only:
            results["verify"] = bench_verify(env, args)
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        cleanup()  # stops the ssh-agent, removes the temporary folder
    bc.heading("summary")
    for r in results.values():
        for line in r["summary"]:
            print(f"  {line}")
    problems = [p for r in results.values() for p in r["problems"]]
    for p in problems:
        print(f"  PROBLEM {p}")
    print(f"  total time {time.monotonic() - started:.0f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
