"""(a) Whole-process ``gitclaim claim ID`` against a git-CLI script doing the same claim.

Both tools run as child processes on the same agent clone and the same remote,
one fresh task per sample, interleaved (the tool that goes first alternates
pair by pair) so that both see the same machine noise.

Two scenarios per transport:

* ``fresh tip``: nobody else writes, so the clone's copy of the store branch is
  current. gitclaim builds on it without fetching (its optimistic path); the
  script always fetches first.
* ``stale tip``: before each sample another clone claims an unrelated task, as
  a busy team would. gitclaim's first push is refused and it fetches and
  retries (visible in its ``retries``); the script's fetch brings the new tip.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_common import (
    HERE,
    Env,
    checkout_state,
    gitclaim_command,
    heading,
    iqr,
    make_clone,
    median,
    ms,
    note,
    progress,
    ratio,
    rx,
    table,
)

SCRIPT = HERE / "git_claim.sh"
TIMEOUT = 120.0


@dataclass
class Series:
    times: list[float] = field(default_factory=list)
    retries: list[int] = field(default_factory=list)
    claimed: list[str] = field(default_factory=list)


@dataclass
class Claimer:
    """Both tools on one agent clone; remembers who should hold which task."""

    cmd: list[str]
    clone: Path
    holders: dict[str, str] = field(default_factory=dict)

    def gitclaim(self, task: str) -> tuple[float, int]:
        self.holders[task] = "agent-gc"
        return _gitclaim_claim(self.cmd, self.clone, task, "agent-gc")

    def git(self, task: str) -> tuple[float, int]:
        self.holders[task] = "agent-git"
        return _git_claim(self.clone, task, "agent-git")


def _timed(args: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    t = time.perf_counter()
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)
    return time.perf_counter() - t, r


def _gitclaim_claim(cmd: list[str], clone: Path, task: str, agent: str) -> tuple[float, int]:
    dt, r = _timed([*cmd, "claim", task, "--agent", agent, "--json"], clone)
    try:
        out = json.loads(r.stdout)
    except json.JSONDecodeError:
        out = {}
    if r.returncode != 0 or not out.get("ok"):
        raise RuntimeError(f"gitclaim claim {task} failed ({r.returncode}): {r.stdout.strip()} {r.stderr.strip()}")
    return dt, int(out["result"]["retries"])


def _git_claim(clone: Path, task: str, agent: str) -> tuple[float, int]:
    dt, r = _timed(["bash", str(SCRIPT), str(clone), task, agent], clone)
    if r.returncode != 0 or not r.stdout.startswith("retries="):
        raise RuntimeError(f"git_claim.sh {task} failed ({r.returncode}): {r.stdout.strip()} {r.stderr.strip()}")
    return dt, int(r.stdout.strip().split("=", 1)[1])


def _import_floor(clone: Path) -> float:
    dt, r = _timed([sys.executable, "-c", "import gitclaim.api, gitclaim.cli"], clone)
    if r.returncode != 0:
        raise RuntimeError(f"import floor failed: {r.stderr.strip()}")
    return dt


def _seed(cmd: list[str], admin: Path, n: int) -> float:
    """``gitclaim init`` and one ``add --file`` batch of ``n`` tasks; returns the add time."""
    r = subprocess.run(
        [*cmd, "init", "--agent", "admin", "--json"], cwd=admin, capture_output=True, text=True, timeout=TIMEOUT
    )
    if r.returncode != 0:
        raise RuntimeError(f"gitclaim init failed: {r.stdout} {r.stderr}")
    batch = admin.parent / "batch.toml"
    # The leading comment also keeps older gitclaims working, whose batch.py
    # took any text starting with "[" (so "[[task]]") for JSON (fixed in ddeb7cf).
    lines = ["# benchmark tasks"]
    for i in range(n):
        lines += ["", "[[task]]", f'id = "t{i:04d}"', f'title = "benchmark task {i}"']
    batch.write_text("\n".join(lines) + "\n")
    dt, r = _timed([*cmd, "add", "--file", str(batch), "--agent", "admin", "--json"], admin)
    if r.returncode != 0:
        raise RuntimeError(f"gitclaim add --file failed: {r.stdout} {r.stderr}")
    return dt


def _verify(remote_path: Path, holders: dict[str, str]) -> tuple[int, list[str]]:
    """Read every claimed task on the remote: active, held by the right agent,
    and a valid gitclaim task file (whichever tool wrote it)."""
    import pygit2

    from gitclaim.ids import task_path
    from gitclaim.model import State, parse_task

    repo = pygit2.Repository(str(remote_path))
    tree = repo.revparse_single("refs/heads/gitclaim").peel(pygit2.Commit).tree
    bad = []
    for tid, holder in holders.items():
        path = task_path(tid)
        try:
            task = parse_task(repo[tree[path].id].data, expected_id=tid, path=path)
        except Exception as e:
            bad.append(f"{tid}: {e}")
            continue
        if task.state is not State.ACTIVE or task.holder != holder:
            bad.append(f"{tid}: {task.state.value} held by {task.holder}, expected {holder}")
    return len(holders) - len(bad), bad


def run(env: Env, args: Any) -> dict[str, Any]:
    from gitclaim import Store

    samples = args.samples_a or (4 if env.quick else 20)
    stale_samples = args.stale_samples_a if args.stale_samples_a is not None else (2 if env.quick else 10)
    n_tasks = max(200, 2 * (samples + 2 * stale_samples) + 10)
    cmd, cmd_text = gitclaim_command()
    transports = [t for t in args.transports if t in ("path", "daemon")]

    heading("(a) whole-process claim: `gitclaim claim ID` vs a git-CLI script")
    note(f"gitclaim: {cmd_text} claim ID --agent agent-gc --json")
    note(f"baseline: bash {SCRIPT.relative_to(HERE.parent)} CLONE ID agent-git  (fetch, cat-file, sed,")
    note("          hash-object, temporary index, commit-tree, push without force; see README)")
    note(f"store: {n_tasks} tasks seeded with one `gitclaim add --file` batch; each sample claims a fresh task")
    note(f"samples: {samples} per tool per transport (fresh tip), {stale_samples} (stale tip), after 1 warm-up each;")
    note("         interleaved, the tool that goes first alternating pair by pair")

    results: dict[str, Any] = {
        "params": {"samples": samples, "stale_samples": stale_samples, "tasks": n_tasks, "gitclaim": cmd_text},
        "transports": {},
    }
    rows = []
    floor_rows = []
    problems: list[str] = []
    for transport in transports:
        progress(f"(a) {transport}: seeding {n_tasks} tasks")
        remote = env.remote(transport, "cli")
        base = env.tmp(f"cli-{transport}")
        admin = make_clone(remote.url, base / "admin")
        agent_clone = make_clone(remote.url, base / "agent", code=True)
        mover = Store(make_clone(remote.url, base / "mover"), agent="mover")
        add_time = _seed(cmd, admin, n_tasks)
        ids = [f"t{i:04d}" for i in range(n_tasks)]
        ids.reverse()
        before = checkout_state(agent_clone)
        claimer = Claimer(cmd, agent_clone)
        gc, gt, holders = claimer.gitclaim, claimer.git, claimer.holders
        # warm-up: the first gitclaim call also fetches the branch into the clone
        gc(ids.pop())
        gt(ids.pop())
        floor: list[float] = []
        per: dict[str, dict[str, Series]] = {}
        for scenario, count in (("fresh tip", samples), ("stale tip", stale_samples)):
            if count <= 0:
                continue
            progress(f"(a) {transport}: {count} pairs, {scenario}")
            a, b = Series(), Series()
            per[scenario] = {"gitclaim": a, "git": b}
            for i in range(count):
                order = [(gc, a), (gt, b)]
                if i % 2:
                    order.reverse()
                for fn, series in order:
                    if scenario == "stale tip":
                        mover.claim(ids.pop())  # another clone moves the branch
                    task = ids.pop()
                    dt, retries = fn(task)
                    series.times.append(dt)
                    series.retries.append(retries)
                    series.claimed.append(task)
                if scenario == "fresh tip":
                    floor.append(_import_floor(agent_clone))
        after = checkout_state(agent_clone)
        ok, bad = _verify(remote.path, holders)
        problems += [f"{transport}: {b}" for b in bad]
        untouched = before == after
        if not untouched:
            problems.append(f"{transport}: the agent's checkout changed (HEAD/index/status)")
        tr: dict[str, Any] = {
            "add_file_seconds": add_time,
            "verified_claims": ok,
            "claims": len(holders),
            "checkout_untouched": untouched,
            "scenarios": {},
        }
        for scenario, s in per.items():
            a, b = s["gitclaim"], s["git"]
            pair = [x / y for x, y in zip(a.times, b.times, strict=True)]
            lo, hi = iqr(pair)
            r = ratio(median(a.times), median(b.times))
            rows.append(
                [
                    f"{transport}, {scenario}",
                    len(a.times),
                    ms(median(a.times)),
                    ms(median(b.times)),
                    rx(r),
                    f"{rx(lo)}-{rx(hi)}",
                    f"{median(a.retries):g}/{max(a.retries)}",
                    f"{median(b.retries):g}/{max(b.retries)}",
                ]
            )
            tr["scenarios"][scenario] = {
                "gitclaim_median_s": median(a.times),
                "git_median_s": median(b.times),
                "ratio": r,
                "pair_ratio_iqr": [lo, hi],
                "gitclaim_times": a.times,
                "git_times": b.times,
                "gitclaim_retries": a.retries,
                "git_retries": b.retries,
            }
        if floor:
            fresh = per["fresh tip"]["gitclaim"].times
            floor_rows.append(
                [
                    transport,
                    ms(median(floor)),
                    ms(median(fresh)),
                    ms(median(fresh) - median(floor)),
                    f"{median(floor) / median(fresh):.0%}",
                ]
            )
            tr["import_floor_median_s"] = median(floor)
        results["transports"][transport] = tr
        note("")
        note(
            f"{transport}: `add --file` of {n_tasks} tasks took {add_time * 1000:.0f} ms; {ok}/{len(holders)} claims"
            f" verified on the remote (active, right holder, valid file); agent checkout untouched: "
            f"{'yes' if untouched else 'NO'}"
        )

    print()
    print(
        table(
            [
                "transport, scenario",
                "n",
                "gitclaim ms",
                "git CLI ms",
                "ratio",
                "pair-ratio IQR",
                "gc retries med/max",
                "git retries med/max",
            ],
            rows,
        )
    )
    note("ratio = median gitclaim time / median git-CLI time (below 1: gitclaim is faster).")
    note("pair-ratio IQR: spread of the per-pair ratios, a noise gauge.")
    if floor_rows:
        print()
        note("where gitclaim's time goes (fresh tip): Python start-up + imports vs the rest")
        print(table(["transport", "import floor ms", "claim ms", "claim - floor ms", "floor share"], floor_rows))
        note("import floor = `python -c 'import gitclaim.api, gitclaim.cli'`, sampled alongside.")
    for p in problems:
        note(f"PROBLEM: {p}")
    results["problems"] = problems
    summary = []
    for transport, tr in results["transports"].items():
        for scenario, s in tr["scenarios"].items():
            summary.append(
                f"(a) claim, {transport}, {scenario}: gitclaim/git = {rx(s['ratio'])}"
                f" ({ms(s['gitclaim_median_s'])} vs {ms(s['git_median_s'])} ms),"
                f" gitclaim retries max {max(s['gitclaim_retries'])}"
            )
    results["summary"] = summary
    return results
