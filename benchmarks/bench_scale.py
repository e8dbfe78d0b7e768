"""(c) Does a big store stay fast? Claim latency at 100, 10,000 and 100,000
tasks as ratios to the 100-task store, and whole-process ``gitclaim ready
--json`` cold (no parse cache) and warm.

Claims are measured with the Python API (``Store.claim`` on a long-lived
Store, one fresh task per sample, the store sizes interleaved round by round)
in a fresh interpreter (latency_worker.py), over a path remote and over git
daemon; whole-process ``gitclaim claim`` is sampled
on the path remote as a cross-check. ``next()`` (which reads every task) is
measured as an extra, since it is the verb that scales with the store.

Seeding: stores up to ``--api-seed-max`` tasks are seeded with one
``Store.add_many`` (timed); larger ones are built directly with pygit2 in the
layout of gitclaim/ids.py (``tasks/<fanout(id)>/<id>.toml``, content from
``gitclaim.model.dump_task``), because add_many is quadratic in the batch size.
The seeded remote is then repacked (``git repack -ad``, as any server's gc
would) and fetched into the measuring clone with the git CLI; the git-daemon
remote and clone are copies of the path ones.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_common import (
    Env,
    gitclaim_command,
    heading,
    make_clone,
    median,
    ms,
    note,
    progress,
    ratio,
    rx,
    secs,
    table,
)

from tests.servers import git, make_bare  # bench_common, imported first, put the root on sys.path

LATENCY_WORKER = Path(__file__).resolve().parent / "latency_worker.py"
TARGET = 1.5  # the target: claim at 100,000 tasks at most 1.5x the 100-task claim


@dataclass
class Seeded:
    n: int
    method: str
    seed_s: float
    repack_s: float
    fetch_s: float
    bare: Path
    clone: Path
    pool: list[str]  # ids not claimed yet, in a random order
    daemon_clone: Path | None = None
    path_claims: int = 0  # tasks claimed through the path remote (what `ready` there no longer lists)


def _seed_pygit2(bare: Path, base_commit: str, ids: list[str]) -> None:
    """One commit on ``base_commit`` adding ``ids``, built like add_many would, written straight into ``bare``."""
    import pygit2
    from pygit2.enums import FileMode

    from gitclaim import audit
    from gitclaim.ids import TASKS_DIR, fanout
    from gitclaim.model import Task, dump_task, utc

    repo = pygit2.Repository(str(bare))
    now = utc(datetime.now(UTC))
    folders: dict[str, list[tuple[str, pygit2.Oid]]] = {}
    for i, tid in enumerate(ids):
        data = dump_task(Task(id=tid, title=f"scale task {i}", created_at=now, created_by="admin"))
        folders.setdefault(fanout(tid), []).append((f"{tid}.toml", repo.create_blob(data)))
    root = repo[base_commit].peel(pygit2.Commit).tree
    tasks_tb = repo.TreeBuilder(repo[root[TASKS_DIR].id]) if TASKS_DIR in root else repo.TreeBuilder()
    for folder, entries in sorted(folders.items()):
        tb = repo.TreeBuilder()
        for name, oid in entries:
            tb.insert(name, oid, FileMode.BLOB)
        tasks_tb.insert(folder, tb.write(), FileMode.TREE)
    root_tb = repo.TreeBuilder(root)
    root_tb.insert(TASKS_DIR, tasks_tb.write(), FileMode.TREE)
    msg = audit.message(
        f"add {len(ids)} tasks by admin: {ids[0]}, {ids[1]} and {len(ids) - 2} more",
        [("Op", "add"), ("Agent", "admin"), ("To", "todo")] + [("Task", t) for t in ids],
    )
    sig = pygit2.Signature("admin", "admin@gitclaim.invalid", int(now.timestamp()), 0)
    repo.create_commit("refs/heads/gitclaim", sig, sig, msg, root_tb.write(), [pygit2.Oid(hex=base_commit)])


def seed(env: Env, n: int, api_max: int) -> Seeded:
    from gitclaim import Store

    base = env.tmp(f"scale-{n}")
    bare = make_bare(base / "remote.git")
    admin = Store(make_clone(str(bare), base / "admin"), agent="admin")
    init = admin.init()
    ids = [f"s{i:06d}" for i in range(n)]
    t = time.perf_counter()
    if n <= api_max:
        admin.add_many([{"id": i, "title": f"scale task {i}"} for i in ids])
        method = "Store.add_many"
    else:
        _seed_pygit2(bare, init.commit, ids)
        method = "pygit2, direct"
    seed_s = time.perf_counter() - t
    t = time.perf_counter()
    git("repack", "-adq", cwd=bare)
    repack_s = time.perf_counter() - t
    clone = make_clone(str(bare), base / "clone")
    t = time.perf_counter()
    git("fetch", "-q", "origin", "+refs/heads/gitclaim:refs/remotes/origin/gitclaim", cwd=clone)
    fetch_s = time.perf_counter() - t
    pool = list(ids)
    random.Random(n).shuffle(pool)
    return Seeded(n, method, seed_s, repack_s, fetch_s, bare, clone, pool)


def add_daemon_copy(env: Env, s: Seeded) -> str:
    """The same store served by git daemon, and a copy of the clone pointing at it."""
    name = f"scale-{s.n}-{time.monotonic_ns()}.git"
    shutil.copytree(s.bare, env.daemon.base / name, symlinks=True)
    s.daemon_clone = s.clone.parent / "daemon-clone"
    shutil.copytree(s.clone, s.daemon_clone, symlinks=True)
    url = env.daemon.url(name)
    git("remote", "set-url", "origin", url, cwd=s.daemon_clone)
    return url


def _claim_latency(clones: dict[int, Path], pools: dict[int, list[str]], samples: int) -> dict[int, dict[str, list]]:
    """Interleaved claims in a fresh interpreter (latency_worker.py); 2 warm-ups + ``samples`` per size."""
    n_ids = 2 + samples
    job = {
        "sizes": list(clones),
        "clones": {str(n): str(c) for n, c in clones.items()},
        "ids": {str(n): [pools[n].pop() for _ in range(n_ids)] for n in clones},
        "samples": samples,
        "agent": "bench",
    }
    r = subprocess.run(
        [sys.executable, str(LATENCY_WORKER)], input=json.dumps(job), capture_output=True, text=True, timeout=900
    )
    if r.returncode != 0:
        raise RuntimeError(f"latency worker failed ({r.returncode}): {r.stdout[-1000:]} {r.stderr[-2000:]}")
    out = json.loads(r.stdout)
    return {n: out[str(n)] for n in clones}


def _run_cli(args: list[str], cwd: Path, timeout: float = 600) -> tuple[float, subprocess.CompletedProcess[str]]:
    t = time.perf_counter()
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return time.perf_counter() - t, r


def run(env: Env, args: Any) -> dict[str, Any]:
    from gitclaim import Store

    sizes = (
        [int(x) for x in args.sizes.split(",")]
        if args.sizes
        else ([100, 1000, 10000] if env.quick else [100, 10000, 100000])
    )
    sizes = sorted(set(sizes))
    samples = args.samples_c or (5 if env.quick else 25)
    ready_runs = args.ready_runs or (1 if env.quick else 3)
    api_max = args.api_seed_max if args.api_seed_max is not None else (1000 if env.quick else 10000)
    cli_samples = 3 if env.quick else 7
    next_samples = 3 if env.quick else 5
    cmd, cmd_text = gitclaim_command()
    small, big = sizes[0], sizes[-1]

    heading("(c) store size: claim latency and `ready` at " + ", ".join(f"{n:,}" for n in sizes) + " tasks")
    note(f"claim: in-process Store.claim(id) on a long-lived Store per size, {samples} claims per size per transport,")
    note("       in a fresh interpreter (benchmarks/latency_worker.py) so seeding leaves no trace in the figures;")
    note("       after 2 warm-ups, sizes interleaved round by round, one fresh task per claim")
    note(
        f"       cross-check: whole-process `gitclaim claim` on the path remote, {cli_samples} per size"
        f" ({small:,} and {big:,})"
    )
    note(f"ready: whole-process `{cmd_text} ready --json` on the path clone, {ready_runs} run(s) each of")
    note("       cold (the clone's .git/gitclaim/cache deleted first) and warm (the run right after)")
    note(f"seeding: Store.add_many up to {api_max:,} tasks, pygit2 above (see README)")

    seeded: dict[int, Seeded] = {}
    seed_rows = []
    for n in sizes:
        progress(f"(c) seeding {n:,} tasks")
        s = seed(env, n, api_max)
        seeded[n] = s
        seed_rows.append(
            [f"{n:,}", s.method, secs(s.seed_s), f"{n / s.seed_s:,.0f}", secs(s.repack_s), secs(s.fetch_s)]
        )
    print()
    print(table(["tasks", "seeded with", "seed s", "tasks/s", "repack s (setup)", "git fetch s (setup)"], seed_rows))

    results: dict[str, Any] = {
        "params": {"sizes": sizes, "samples": samples, "ready_runs": ready_runs, "api_seed_max": api_max},
        "seed": {str(n): {"method": s.method, "seconds": s.seed_s} for n, s in seeded.items()},
        "claim": {},
        "ready": {},
        "next": {},
    }
    # --- claim latency, in-process, per transport -----------------------------
    rows = []
    summary = []
    problems: list[str] = []
    for transport in args.transports:
        clones = {}
        for n, s in seeded.items():
            clones[n] = s.clone
            if transport == "daemon":
                add_daemon_copy(env, s)
                assert s.daemon_clone is not None
                clones[n] = s.daemon_clone
        progress(f"(c) {transport}: {samples} claims per size")
        lat = _claim_latency(clones, {n: s.pool for n, s in seeded.items()}, samples)
        if transport == "path":
            for s in seeded.values():
                s.path_claims += 2 + samples
        base_med = median(lat[small]["times"])
        res_t = {}
        for n in sizes:
            med = median(lat[n]["times"])
            r = ratio(med, base_med)
            verdict = "" if n != 100000 else ("  (target <= 1.5: met)" if r <= TARGET else "  (target <= 1.5: MISSED)")
            rows.append(
                [
                    f"{transport}, in-process",
                    f"{n:,}",
                    len(lat[n]["times"]),
                    ms(med),
                    ms(min(lat[n]["times"])),
                    ms(max(lat[n]["times"])),
                    rx(r) + verdict,
                    f"{median(lat[n]['retries']):g}/{max(lat[n]['retries'])}",
                ]
            )
            res_t[str(n)] = {"median_s": med, "ratio": r, "times": lat[n]["times"], "retries": lat[n]["retries"]}
        results["claim"][transport] = res_t
        summary.append(
            f"(c) claim at {big:,} vs {small:,} tasks, {transport}, in-process: {rx(res_t[str(big)]['ratio'])}"
            f" ({ms(res_t[str(big)]['median_s'])} vs {ms(base_med)} ms)"
            + (
                f"; target <= {TARGET}: {'met' if res_t[str(big)]['ratio'] <= TARGET else 'MISSED'}"
                if big == 100000
                else ""
            )
        )

    # --- whole-process claim, path: small vs big --------------------------------
    progress(f"(c) whole-process claim, {cli_samples} per size")
    cli: dict[int, list[float]] = {small: [], big: []}
    for i in range(cli_samples + 1):
        pair = [small, big] if i % 2 == 0 else [big, small]
        for n in pair:
            task = seeded[n].pool.pop()
            seeded[n].path_claims += 1
            dt, r = _run_cli([*cmd, "claim", task, "--agent", "bench", "--json"], seeded[n].clone)
            if r.returncode != 0:
                raise RuntimeError(f"gitclaim claim failed: {r.stdout} {r.stderr}")
            if i > 0:  # the first pair warms up
                cli[n].append(dt)
    for n in (small, big):
        med = median(cli[n])
        rows.append(
            [
                "path, whole-process",
                f"{n:,}",
                len(cli[n]),
                ms(med),
                ms(min(cli[n])),
                ms(max(cli[n])),
                rx(ratio(med, median(cli[small]))),
                "-",
            ]
        )
    results["claim"]["path_whole_process"] = {str(n): cli[n] for n in cli}
    print()
    print(
        table(["claim", "tasks", "n", "median ms", "min ms", "max ms", f"ratio to {small:,}", "retries med/max"], rows)
    )
    note(f"ratio = median claim time at this size / median claim time at {small:,} tasks, same transport and mode.")
    note("a path-remote claim takes a few ms, mostly creating ~10 loose-object files and 2 ref files, so its ratio")
    note("swings with the disk's load from run to run; the whole-process rows are what an agent sees.")

    # --- ready --json, whole-process, path clone: cold and warm --------------------
    progress(f"(c) ready --json, {ready_runs} cold+warm runs per size")
    rd: dict[int, dict[str, list[float]]] = {n: {"cold": [], "warm": []} for n in sizes}
    out_bytes: dict[int, int] = {}
    for i in range(ready_runs):
        order = sizes if i % 2 == 0 else list(reversed(sizes))
        for n in order:
            clone = seeded[n].clone
            for mode in ("cold", "warm"):
                if mode == "cold":
                    shutil.rmtree(clone / ".git" / "gitclaim" / "cache", ignore_errors=True)
                dt, r = _run_cli([*cmd, "ready", "--json"], clone)
                if r.returncode != 0:
                    raise RuntimeError(f"gitclaim ready failed: {r.stdout[-500:]} {r.stderr[-500:]}")
                rd[n][mode].append(dt)
                out_bytes[n] = len(r.stdout.encode())
                if i == 0 and mode == "warm":
                    doc = json.loads(r.stdout)
                    listed, probs = len(doc["result"]["tasks"]), len(doc["result"]["problems"])
                    expected = n - seeded[n].path_claims
                    if listed != expected or probs:
                        problems.append(
                            f"(c) ready at {n:,}: {listed} tasks listed, {expected} expected, {probs} problems"
                        )
    ready_rows = []
    for n in sizes:
        c, w = median(rd[n]["cold"]), median(rd[n]["warm"])
        ready_rows.append(
            [
                f"{n:,}",
                ms(c),
                rx(ratio(c, median(rd[small]["cold"]))),
                ms(w),
                rx(ratio(w, median(rd[small]["warm"]))),
                rx(ratio(w, c)),
                f"{out_bytes[n] / 1e6:.2f}",
            ]
        )
        results["ready"][str(n)] = {"cold": rd[n]["cold"], "warm": rd[n]["warm"], "stdout_bytes": out_bytes[n]}
    print()
    print(
        table(
            ["tasks", "cold ms", f"cold / {small:,}", "warm ms", f"warm / {small:,}", "warm / cold", "output MB"],
            ready_rows,
        )
    )
    note(f"medians of {ready_runs} run(s); the output lists every ready task, so it grows with the store by design.")
    big_ready = results["ready"][str(big)]
    summary.append(
        f"(c) ready --json at {big:,} tasks: cold {ms(median(big_ready['cold']))} ms"
        f" ({rx(ratio(median(big_ready['cold']), median(rd[small]['cold'])))} of {small:,}),"
        f" warm {ms(median(big_ready['warm']))} ms"
        f" ({rx(ratio(median(big_ready['warm']), median(rd[small]['warm'])))})"
    )

    # --- extra: next() in-process, path (reads every task through the cache) ----------
    progress(f"(c) next(), {next_samples} per size")
    nx: dict[int, list[float]] = {n: [] for n in sizes}
    stores = {n: Store(s.clone, agent="bench-next") for n, s in seeded.items()}
    for n in sizes:
        stores[n].next()  # warm-up: the cache was filled by `ready` above; this re-parses what claims changed
    for i in range(next_samples):
        k = i % len(sizes)
        for n in sizes[k:] + sizes[:k]:
            t = time.perf_counter()
            stores[n].next()
            nx[n].append(time.perf_counter() - t)
    next_rows = [[f"{n:,}", ms(median(nx[n])), rx(ratio(median(nx[n]), median(nx[small])))] for n in sizes]
    results["next"] = {str(n): nx[n] for n in sizes}
    print()
    note("extra: in-process Store.next() on the path remote (it scans every task; parse cache warm)")
    print(table(["tasks", "next median ms", f"ratio to {small:,}"], next_rows))
    summary.append(
        f"(c) next() at {big:,} vs {small:,} tasks, path, in-process: "
        f"{rx(ratio(median(nx[big]), median(nx[small])))} ({ms(median(nx[big]))} vs {ms(median(nx[small]))} ms)"
    )
    for p in problems:
        note(f"PROBLEM: {p}")
    results["summary"] = summary
    results["problems"] = problems
    return results
