"""Bounded history (issue 13): what a long history costs a new agent, and what ``compact`` gives back.

    python benchmarks/bench_history.py             # about five minutes on a 2-core machine
    python benchmarks/bench_history.py --quick     # 100 / 2,000 / 10,000 operations, under two minutes

Stores of ``--sizes`` operations (default 100, 10,000 and 100,000), each
written straight into a bare remote with ``git fast-import`` (commits as
gitclaim writes them: one task file and the audit trailers each) and packed
as a server keeps it (``git repack -adf``), served by git daemon on loopback.
Every store has the same ``--live`` tasks at its tip: an add of all of them,
then claims and releases of one task each, by eight agents. So the stores
differ in the length of their history alone, which is what the issue is
about (a store whose finished tasks pile up also grows its tip: that is what
``archive`` is for, measured by bench_archive.py).

Measured, as whole processes, each sample on a fresh machine (``git init``,
``remote add``, nothing fetched), the sizes and modes interleaved and the
order rotated each round, medians over ``--runs`` rounds:

1. **size**: the pack a fresh clone of the store branch receives
   (``git pack-objects --revs`` of the branch) against the pack of its tip's
   tree alone;
2. **fresh clone**: ``git clone --bare --single-branch`` of the branch (the
   whole history), and ``--depth 1`` for reference;
3. **first claim on a fresh machine**: ``gitclaim next --json``, which fetches
   the branch (shallow by default: its tip and the tip's parent) and claims
   the best ready task; and the same with ``gitclaim.shallow false`` (the
   whole history first). The target: a 100,000-operation store within 1.5x a
   100-operation one, shallow.
4. **compaction** of the largest store (``gitclaim compact``, timed once),
   then size, fresh clone and first claim again. The target: the branch packs
   to within 2x its tip's tree.
5. **a year of a 50-agent team** (50 agents, 100 operations a day each, 365
   days: 1,825,000 operations), extrapolated linearly from the two largest
   stores (bytes and seconds per operation), without and with a monthly
   compaction.

Everything lives in one temporary folder, removed at the end; git daemon is stopped.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import FrameType

import bench_common as bc  # beside this script; it puts the repository root on sys.path
from bench_identity import T0, Change, fast_import, init_change

from tests.servers import Remote, git

BRANCH = "refs/heads/gitclaim"
AGENTS = tuple(f"agent-{i}" for i in range(8))
YEAR_OPS = 50 * 100 * 365
MONTH_OPS = YEAR_OPS // 12


def cycle_history(n: int, live: int, seed: int = 13) -> Iterator[Change]:
    """``n`` commits: init, one add of ``live`` tasks, then a claim and a release of one task
    at a time (every task todo at the end, or held by the last claim when ``n`` is odd)."""
    from gitclaim import audit, rules
    from gitclaim.ids import task_path
    from gitclaim.model import Task, dump_task

    rng = random.Random(seed)
    admin = "alice"
    yield init_change(admin)
    tasks = {
        f"task-{i:04d}": Task(
            id=f"task-{i:04d}",
            title=f"benchmark task {i}",
            priority=rng.randint(0, 4),
            tags=("bench",),
            description="a task of the history benchmark",
            created_at=T0,
            created_by=admin,
        )
        for i in range(live)
    }
    added = audit.Record(op="add", agent=admin, to_state="todo", added=tuple(tasks))
    yield Change(admin, T0 + timedelta(seconds=1), audit.write(f"add {live} tasks by {admin}", added),
                 {task_path(t): dump_task(task) for t, task in tasks.items()})  # fmt: skip
    made, held = 2, None
    while made < n:
        when = T0 + timedelta(seconds=made)
        if held is None:
            tid, who = rng.choice(list(tasks)), rng.choice(AGENTS)
            old = tasks[tid]
            new = tasks[tid] = rules.apply_claim(old, who, when, None)
            held = (tid, who)
            rec = audit.Record(op="claim", agent=who, task=tid, from_state="todo", to_state="active")
            msg = f"claim {tid} by {who}"
        else:
            tid, who = held
            old = tasks[tid]
            new = tasks[tid] = rules.apply_move(rules.check_move("release", old, who), old, now=when)
            held = None
            rec = audit.Record(op="release", agent=who, task=tid, from_state="active", to_state="todo")
            msg = f"release {tid} by {who}"
        yield Change(who, when, audit.write(msg, rec), {task_path(tid): dump_task(new)})
        made += 1


def build(env: bc.Env, n: int, live: int) -> Remote:
    remote = env.remote("daemon", f"history-{n}")
    t = time.perf_counter()
    count = fast_import(remote.path, cycle_history(n, live), ref=BRANCH)
    git("repack", "-adfq", cwd=remote.path)
    bc.note(f"{n:,} operations written and packed in {time.perf_counter() - t:.1f} s ({count:,} commits)")
    return remote


def pack_bytes(bare: Path, objects: str, *, revs: bool) -> int:
    args = ["git", "pack-objects", "--stdout", "-q"] + (["--revs"] if revs else [])
    p = subprocess.run(args, cwd=bare, input=objects.encode(), capture_output=True, check=True)
    return len(p.stdout)


def sizes(bare: Path) -> dict[str, int]:
    """The pack a fresh clone of the branch gets, and the pack of the tip's tree alone."""
    tip = git("rev-parse", BRANCH, cwd=bare).strip()
    tree = git("rev-parse", f"{tip}^{{tree}}", cwd=bare).strip()
    listed = git("ls-tree", "-r", "-t", "--object-only", tree, cwd=bare)
    return {
        "branch": pack_bytes(bare, BRANCH + "\n", revs=True),
        "tree": pack_bytes(bare, tree + "\n" + listed, revs=False),
        "commits": int(git("rev-list", "--count", BRANCH, cwd=bare)),
    }


class Sampler:
    """Whole-process samples on fresh machines (an empty clone each)."""

    def __init__(self, env: bc.Env) -> None:
        self.env = env
        self.cmd, self.cmd_text = bc.gitclaim_command()
        self.problems: list[str] = []
        self.k = 0

    def fresh(self, url: str) -> Path:
        self.k += 1
        return bc.make_clone(url, self.env.tmp(f"fresh-{self.k}") / "clone")

    def clone(self, url: str, depth: bool) -> float:
        dest = self.env.tmp("git-clone") / "c.git"
        extra = ["--depth", "1"] if depth else []
        t = time.perf_counter()
        git("clone", "-q", "--bare", "--single-branch", "--branch", "gitclaim", *extra, url, str(dest))
        return time.perf_counter() - t

    def first_claim(self, url: str, shallow: bool) -> float:
        where = self.fresh(url)
        if not shallow:
            git("config", "gitclaim.shallow", "false", cwd=where)
        self.k += 1
        argv = [*self.cmd, "-C", str(where), "next", "--json", "--agent", f"bench-{self.k}"]
        t = time.perf_counter()
        p = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        took = time.perf_counter() - t
        if p.returncode != 0:
            self.problems.append(f"next on a fresh clone of {url} exited {p.returncode}: {p.stdout[-300:]}")
        elif json.loads(p.stdout)["result"]["task"]["claim"]["holder"] != f"bench-{self.k}":
            self.problems.append(f"next on a fresh clone of {url} did not claim: {p.stdout[-300:]}")
        fetched = int(git("rev-list", "--count", "refs/remotes/origin/gitclaim", cwd=where))
        if shallow and fetched > 3:  # the tip and its parent, then the claim on them
            self.problems.append(f"a shallow first claim fetched {fetched} commits of {url}")
        if not shallow and (where / ".git" / "shallow").exists():
            self.problems.append(f"a first claim with gitclaim.shallow false left a shallow clone of {url}")
        return took


def measure(sampler: Sampler, stores: dict[str, str], runs: int) -> dict[str, dict[str, float]]:
    """Medians per store of: full clone, depth-1 clone, first claim shallow, first claim full."""
    kinds = {
        "clone": lambda url: sampler.clone(url, depth=False),
        "clone --depth 1": lambda url: sampler.clone(url, depth=True),
        "claim, shallow": lambda url: sampler.first_claim(url, shallow=True),
        "claim, full": lambda url: sampler.first_claim(url, shallow=False),
    }
    samples: dict[tuple[str, str], list[float]] = {(s, k): [] for s in stores for k in kinds}
    order = [(s, k) for s in stores for k in kinds]
    for r in range(runs):
        bc.progress(f"round {r + 1} of {runs}")
        for s, k in order[r % len(order) :] + order[: r % len(order)]:
            samples[(s, k)].append(kinds[k](stores[s]))
    return {s: {k: bc.median(samples[(s, k)]) for k in kinds} for s in stores}


def mib(b: float) -> str:
    return f"{b / 2**20:.2f} MiB" if b >= 2**20 / 10 else f"{b / 1024:.0f} KiB"


def report(stores: list[str], size: dict[str, dict[str, int]], times: dict[str, dict[str, float]],
           base: str) -> list[list[str]]:  # fmt: skip
    rows = []
    for name in stores:  # each against the first row, measured in the same rounds
        s, t, b = size[name], times[name], times[base]
        rows.append([name, f"{s['commits']:,}", mib(s["branch"]), mib(s["tree"]), bc.rx(s["branch"] / s["tree"]),
                     bc.secs(t["clone"]), bc.rx(bc.ratio(t["clone"], b["clone"])), bc.secs(t["clone --depth 1"]),
                     bc.secs(t["claim, shallow"]), bc.rx(bc.ratio(t["claim, shallow"], b["claim, shallow"])),
                     bc.secs(t["claim, full"]), bc.rx(bc.ratio(t["claim, full"], t["claim, shallow"]))])  # fmt: skip
    return rows


HEADERS = ["store", "commits", "branch pack", "tip tree pack", "pack/tree", "clone", "vs row 1",
           "clone depth 1", "first claim (shallow)", "vs row 1", "first claim (full)", "full/shallow"]  # fmt: skip


def compact(sampler: Sampler, url: str) -> float:
    where = sampler.fresh(url)
    t = time.perf_counter()
    p = subprocess.run([*sampler.cmd, "-C", str(where), "compact", "--json", "--agent", "alice"],
                       capture_output=True, text=True, timeout=1200)  # fmt: skip
    took = time.perf_counter() - t
    if p.returncode != 0:
        sampler.problems.append(f"compact exited {p.returncode}: {p.stdout[-400:]}")
    return took


def year(size: dict[str, dict[str, int]], times: dict[str, dict[str, float]], a: str, b: str) -> list[list[str]]:
    """A year of 50 agents, linear in the number of operations between stores ``a`` < ``b``."""
    ca, cb = size[a]["commits"], size[b]["commits"]
    per_op_bytes = (size[b]["branch"] - size[a]["branch"]) / (cb - ca)
    per_op_clone = (times[b]["clone"] - times[a]["clone"]) / (cb - ca)

    def at(ops: int) -> tuple[float, float]:
        return size[b]["branch"] + per_op_bytes * (ops - cb), times[b]["clone"] + per_op_clone * (ops - cb)

    never_b, never_t = at(YEAR_OPS)
    month_b, month_t = at(MONTH_OPS)
    tree = size[b]["tree"]
    return [
        ["per operation", f"{per_op_bytes:.0f} B", f"{per_op_clone * 1e6:.1f} µs", "-"],
        [
            f"a year, never compacted ({YEAR_OPS:,} ops)",
            mib(never_b),
            bc.secs(never_t),
            bc.secs(times[b]["claim, shallow"]),
        ],
        [
            f"compacted monthly (at most {MONTH_OPS:,} ops since)",
            f"{mib(tree)} to {mib(month_b + tree)}",
            f"{bc.secs(times[b + ' compacted']['clone'])} to {bc.secs(month_t)}",
            bc.secs(times[b]["claim, shallow"]),
        ],
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="stores of 100, 2,000 and 10,000 operations, 3 rounds")
    ap.add_argument("--sizes", help="operations per store, comma-separated (default 100,10000,100000)")
    ap.add_argument("--live", type=int, default=200, help="tasks at every store's tip (default 200)")
    ap.add_argument("--runs", type=int, help="rounds (default 5; quick 3)")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args(argv)
    args.sizes = [int(x) for x in (args.sizes or ("100,2000,10000" if args.quick else "100,10000,100000")).split(",")]
    args.runs = args.runs or (3 if args.quick else 5)
    return args


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    env, cleanup = bc.make_env(args.keep, quick=args.quick)
    bc.isolate_env(env.root / "home")
    try:
        return run(env, args)
    finally:
        cleanup()


def run(env: bc.Env, args: argparse.Namespace) -> int:
    sampler = Sampler(env)
    bc.heading(f"bounded history: stores of {', '.join(f'{n:,}' for n in args.sizes)} operations, "
               f"{args.live} tasks at each tip, over git daemon; {args.runs} rounds")  # fmt: skip
    bc.note(f"each sample a fresh machine (git init + remote add); first claim = {sampler.cmd_text} next --json")
    remotes = {f"{n:,} ops": build(env, n, args.live) for n in args.sizes}
    urls = {name: r.url for name, r in remotes.items()}
    size = {name: sizes(r.path) for name, r in remotes.items()}
    times = measure(sampler, urls, args.runs)
    small, large = next(iter(remotes)), list(remotes)[-1]
    print(bc.table(HEADERS, report(list(urls), size, times, small)))

    bc.heading(f"compaction of the {large} store")
    took = compact(sampler, urls[large])
    after = f"{large} compacted"
    size[after] = sizes(remotes[large].path)
    times |= measure(sampler, {after: urls[large]}, args.runs)
    bc.note(f"gitclaim compact on a fresh machine (deepens, replaces, pushes the archive and the root): {took:.1f} s")
    print(bc.table(HEADERS, report([large, after], size, times, large)))

    mid = list(remotes)[-2]
    bc.heading("a year of a 50-agent team, 100 operations a day each (linear from the two largest stores)")
    print(bc.table(["", "branch pack", "fresh clone", "first claim (shallow)"], year(size, times, mid, large)))

    shallow = bc.ratio(times[large]["claim, shallow"], times[small]["claim, shallow"])
    packed = size[after]["branch"] / size[after]["tree"]
    checks = [
        (f"first claim, shallow, {large} vs {small}: {bc.rx(shallow)} (target <= 1.5x)", shallow <= 1.5),
        (f"after compaction the branch packs to {bc.rx(packed)} its tip's tree (target <= 2x)", packed <= 2.0),
    ]
    bc.heading("summary")
    for text, ok in checks:
        print(f"  {'ok     ' if ok else 'FAILED '} {text}")
    for p in sampler.problems:
        print(f"  PROBLEM {p}")
    if args.json:
        args.json.write_text(json.dumps({"sizes": size, "times": times, "compact_s": took}, indent=2))
    return 0 if all(ok for _, ok in checks) and not sampler.problems else 1


if __name__ == "__main__":
    sys.exit(main())
