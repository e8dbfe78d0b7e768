"""(e) Reads at 10,000 and 100,000 tasks: `ready`, `list`, the read index.

One command: ``python benchmarks/bench_reads.py [--quick] [--sizes 10000,100000] [--runs N]``
(also ``run.py --only e``). The task set is the peers' seeded one
(/work/shared/peerbench/gen.py, or ``--peerbench DIR``): 60% todo, 20% done,
10% active, 10% backlog, 30% with 1-3 dependencies, priorities
high/medium/low/none as 1/2/3/2, ids ``t`` plus six digits. It is written as
one commit straight into a bare remote with pygit2 (files are
``gitclaim.model.dump_task`` output), repacked, and fetched into a clone.

Measured as whole processes, on that clone, every command once per round,
the order rotated each round, medians over the rounds; every figure that
matters is a ratio to a baseline of the same run:

* ``git grep -l 'state = "todo"' refs/remotes/origin/gitclaim -- tasks/``
  (the floor of a plain-git query over the same branch) against warm
  ``gitclaim ready --json --offline``;
* the default human ``ready`` and ``list`` (stdout a pipe, so no pager and
  plain rows; the default page applies only on a terminal, so we also time
  ``--limit 50``, what a terminal shows) against ``ready --json --offline``;
* cold ``ready --json --offline``: ``.git/gitclaim`` deleted first;
* ``claim`` then ``ready``: a claim through a path remote, then warm
  ``ready --json --offline``, which brings the index up to date from the
  tree diff; its ``ready`` against a warm ``ready`` alone;
* gptodo's ``ready`` and ``list`` over the same set, if ``--gptodo PATH``
  names its executable (see README).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_common import (
    Env,
    gitclaim_command,
    heading,
    isolate_env,
    make_clone,
    make_env,
    median,
    ms,
    note,
    progress,
    ratio,
    rx,
)
from bench_common import table as text_table

from tests.servers import git, make_bare

PEERBENCH = Path("/work/shared/peerbench")
PRIORITY = {"high": 1, "medium": 2, "low": 3, None: 2}


def peer_tasks(n: int, peerbench: Path) -> list[dict[str, Any]]:
    spec = importlib.util.spec_from_file_location("peer_gen", peerbench / "gen.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    tasks: list[dict[str, Any]] = gen.make_tasks(n)
    return tasks


def _task(t: dict[str, Any]) -> Any:
    from gitclaim.model import Claim, State, Task, utc

    created = utc(t["created"].replace(tzinfo=UTC))
    claim = None
    if t["state"] == "active":
        claim = Claim(t["assignee"], utc(t["modified"].replace(tzinfo=UTC)))
    return Task(
        id=f"t{t['id']:06d}",
        title=t["title"],
        state=State(t["state"]),
        priority=PRIORITY[t["priority"]],
        depends_on=tuple(f"t{d:06d}" for d in t["deps"]),
        tags=tuple(t["tags"]),
        description=t["desc"],
        acceptance=tuple(s for s, _ in t["subtasks"]),
        created_at=created,
        created_by="admin",
        claim=claim,
    )


def seed(env: Env, n: int, peerbench: Path) -> tuple[Path, Path]:
    """A bare remote holding the peer set of ``n`` tasks, and a clone that fetched it."""
    import pygit2
    from pygit2.enums import FileMode

    from gitclaim import Store, audit
    from gitclaim.ids import TASKS_DIR, fanout
    from gitclaim.model import dump_task

    base = env.tmp(f"reads-{n}")
    bare = make_bare(base / "remote.git")
    admin = Store(make_clone(str(bare), base / "admin"), agent="admin")
    init = admin.init()
    repo = pygit2.Repository(str(bare))
    folders: dict[str, list[tuple[str, pygit2.Oid]]] = {}
    ids = []
    for raw in peer_tasks(n, peerbench):
        task = _task(raw)
        ids.append(task.id)
        folders.setdefault(fanout(task.id), []).append((f"{task.id}.toml", repo.create_blob(dump_task(task))))
    root = repo[init.commit].peel(pygit2.Commit).tree
    tasks_tb = repo.TreeBuilder()
    for folder, entries in sorted(folders.items()):
        tb = repo.TreeBuilder()
        for name, oid in entries:
            tb.insert(name, oid, FileMode.BLOB)
        tasks_tb.insert(folder, tb.write(), FileMode.TREE)
    root_tb = repo.TreeBuilder(root)
    root_tb.insert(TASKS_DIR, tasks_tb.write(), FileMode.TREE)
    msg = audit.message(
        f"add {n} tasks by admin: {ids[0]}, {ids[1]} and {n - 2} more",
        [("Op", "add"), ("Agent", "admin")],
    )
    now = int(datetime.now(UTC).timestamp())
    sig = pygit2.Signature("admin", "admin@gitclaim.invalid", now, 0)
    repo.create_commit("refs/heads/gitclaim", sig, sig, msg, root_tb.write(), [pygit2.Oid(hex=init.commit)])
    git("repack", "-adq", cwd=bare)
    clone = make_clone(str(bare), base / "clone")
    git("fetch", "-q", "origin", "+refs/heads/gitclaim:refs/remotes/origin/gitclaim", cwd=clone)
    return bare, clone


def _timed(args: list[str], cwd: Path, timeout: float = 600) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    t = time.perf_counter()
    r = subprocess.run(args, cwd=cwd, capture_output=True, timeout=timeout)
    return time.perf_counter() - t, r


def _rounds(commands: dict[str, tuple[list[str], Path]], runs: int, before: dict[str, Any]) -> dict[str, list[float]]:
    """Every command once per round, the order rotated each round; ``before[name]()`` runs untimed first."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    names = list(commands)
    for k in range(runs):
        for name in names[k % len(names) :] + names[: k % len(names)]:
            if name in before:
                before[name]()
            args, cwd = commands[name]
            dt, r = _timed(args, cwd)
            if r.returncode != 0:
                raise RuntimeError(f"{name}: exit {r.returncode}: {r.stderr.decode()[-500:]}")
            times[name].append(dt)
    return times


def measure(env: Env, n: int, runs: int, peerbench: Path, gptodo: str | None) -> dict[str, Any]:
    cmd, _ = gitclaim_command()
    progress(f"(e) seeding {n:,} tasks")
    _, clone = seed(env, n, peerbench)
    state = clone / ".git" / "gitclaim"
    ready_ids = [
        t["id"]
        for t in json.loads(
            subprocess.run([*cmd, "ready", "--json"], cwd=clone, capture_output=True, check=True).stdout
        )["result"]["tasks"]
    ]
    random.Random(n).shuffle(ready_ids)
    pool = iter(ready_ids)
    ready_json = [*cmd, "ready", "--json", "--offline"]
    # Phase 1: nothing moves the tip, so every read is warm (the index is current).
    warm: dict[str, tuple[list[str], Path]] = {
        "git grep -l": (["git", "grep", "-l", 'state = "todo"', "refs/remotes/origin/gitclaim", "--", "tasks/"], clone),
        "ready --json --offline (warm)": (ready_json, clone),
        "ready --json (warm, fetches)": ([*cmd, "ready", "--json"], clone),
        "ready (human, piped)": ([*cmd, "ready", "--offline"], clone),
        "list (human, piped)": ([*cmd, "list", "--offline"], clone),
        "ready --limit 50 (a page)": ([*cmd, "ready", "--offline", "--limit", "50"], clone),
    }
    if gptodo and n <= 10000:  # gptodo reads every file per call: 100,000 would take minutes a round
        gdir = env.tmp(f"gptodo-{n}")
        subprocess.run([sys.executable, str(peerbench / "gen.py"), "gptodo", str(n), str(gdir)], check=True)
        warm["gptodo ready"] = ([gptodo, "--tasks-dir", str(gdir / "tasks"), "ready"], gdir)
        warm["gptodo list"] = ([gptodo, "--tasks-dir", str(gdir / "tasks"), "list"], gdir)
    for args, cwd in warm.values():  # warm-up: the index, its answers and the page cache
        _timed(args, cwd)
    progress(f"(e) {n:,} tasks: {runs} warm rounds")
    times = _rounds(warm, runs, {})
    # Phase 2: a claim (untimed) then `ready`, which brings the index up to date
    # from the tree diff; a cold `ready` (.git/gitclaim deleted); and, as their
    # baseline in the same rounds, a warm `ready` alone (run twice after the others).
    moving = {
        "claim, then ready --json --offline": (ready_json, clone),
        "ready --json --offline (cold)": (ready_json, clone),
        "ready --json --offline (warm, phase 2)": (ready_json, clone),
    }
    before = {
        "ready --json --offline (cold)": lambda: shutil.rmtree(state, ignore_errors=True),
        "claim, then ready --json --offline": lambda: subprocess.run(
            [*cmd, "claim", next(pool), "--agent", "bench", "--json"], cwd=clone, capture_output=True, check=True
        ),
        "ready --json --offline (warm, phase 2)": lambda: subprocess.run(ready_json, cwd=clone, capture_output=True),
    }
    progress(f"(e) {n:,} tasks: {runs} rounds of claim-then-ready and cold")
    times |= _rounds(moving, runs, before)
    return {"n": n, "median_s": {k: median(v) for k, v in times.items()}, "times": times}


RATIOS = [
    # (figure, numerator, denominator, target, sizes it applies to)
    ("warm ready --json --offline / git grep -l", "ready --json --offline (warm)", "git grep -l", 1.0, (10000,)),
    ("human ready / ready --json", "ready (human, piped)", "ready --json --offline (warm)", 1.5, (10000,)),
    ("human list / ready --json", "list (human, piped)", "ready --json --offline (warm)", 1.5, (10000,)),
    (
        "claim-then-ready / warm ready",
        "claim, then ready --json --offline",
        "ready --json --offline (warm, phase 2)",
        1.2,
        (100000,),
    ),
    ("human ready / gptodo ready", "ready (human, piped)", "gptodo ready", 0.1, (10000,)),
    ("human list / gptodo list", "list (human, piped)", "gptodo list", 0.1, (10000,)),
]
ABSOLUTE = [("ready --json (warm, fetches)", 1.0, (100000,)), ("ready --json --offline (cold)", 3.0, (100000,))]


def report(results: list[dict[str, Any]]) -> list[str]:
    problems = []
    for res in results:
        n, med = res["n"], res["median_s"]
        heading(f"(e) reads at {n:,} tasks (medians of {len(next(iter(res['times'].values())))} rounds)")
        print(text_table(["command", "median ms"], [[k, ms(v)] for k, v in med.items()]))
        rows = []
        for label, a, b, target, sizes in RATIOS:
            if a in med and b in med:
                r = ratio(med[a], med[b])
                verdict = ("met" if r <= target else "MISSED") if n in sizes else "-"
                rows.append([label, rx(r), f"<= {target}" if n in sizes else "", verdict])
                if verdict == "MISSED":
                    problems.append(f"(e) {n:,}: {label} {rx(r)} > {target}")
        for a, limit, sizes in ABSOLUTE:
            if n in sizes and a in med:
                verdict = "met" if med[a] <= limit else "MISSED"
                rows.append([a, f"{med[a]:.2f} s", f"<= {limit} s", verdict])
                if verdict == "MISSED":
                    problems.append(f"(e) {n:,}: {a} {med[a]:.2f} s > {limit} s")
        print()
        print(text_table(["figure", "value", "target", ""], rows))
    return problems


def run(env: Env, args: Any) -> dict[str, Any]:
    default = [1000, 10000] if env.quick else [10000, 100000]
    sizes = [int(x) for x in args.sizes_e.split(",")] if args.sizes_e else default
    runs = args.runs_e or (3 if env.quick else 9)
    note(f"whole processes on one clone, every command once per round, order rotated; {runs} rounds per size")
    note("phase 1 (warm): nothing moves the tip; phase 2: claim-then-ready, cold, and a warm ready as their baseline")
    note("claim-then-ready: an untimed `claim` of a fresh ready task, then the timed `ready`")
    note("cold: the clone's .git/gitclaim (read index, parse cache) deleted first")
    results = []
    problems = []
    for n in sizes:  # each size reported as soon as it is measured
        results.append(measure(env, n, runs, Path(args.peerbench), args.gptodo))
        problems += report(results[-1:])
    for p in problems:
        print(f"PROBLEM {p}")
    summary = [] if problems else ["(e) every read target met"]  # run.py prints the problems
    return {"results": results, "problems": problems, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/bench_reads.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1,000 and 10,000 tasks, 3 rounds")
    p.add_argument("--sizes", dest="sizes_e", default="", help="store sizes (default 10000,100000)")
    p.add_argument("--runs", dest="runs_e", type=int, default=0, help="rounds per size (default 9; quick 3)")
    p.add_argument("--peerbench", default=str(PEERBENCH), help="the folder of the peers' gen.py")
    p.add_argument("--gptodo", default=None, help="gptodo's executable, to time it on the same set")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = p.parse_args(argv)
    env, cleanup = make_env(args.keep, args.quick)
    isolate_env(env.root / "home")
    try:
        out = run(env, args)
    finally:
        cleanup()
    return 1 if out["problems"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
