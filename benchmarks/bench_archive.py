"""Archive: what moving finished tasks out of tasks/ buys the reads, and what it costs.

One command: ``python benchmarks/bench_archive.py [--quick] [--done N] [--live N] [--runs N]``.

The store: ``--live`` open tasks (todo; a fifth of them depend on a done
task) and ``--done`` done tasks, each finished by a commit of its own (so
that ``archive`` walks a history as long as the store's finished work: one
commit per finish, the shape a real store has). It is written straight into
a bare remote with ``git fast-import`` (files are ``gitclaim.model.dump_task``
output, commits dated in 2025), repacked, and fetched into a clone.

Measured as whole processes on that clone, every command once per round,
the order rotated each round, medians over the rounds; each figure after
the archive is a ratio to the same command before it, in the same run:

* ``ready``, ``list`` and ``board --json --offline``, warm (the read index
  is current) and cold (``.git/gitclaim`` deleted first: the index rebuilt
  from the branch, every task file parsed);
* ``blocked --json --offline`` (the API's path: a scan of every task file,
  through the parse cache);
* ``archive --done-before 2026-01-01 --json`` itself, once (a dry run first,
  timed too): the walk of the history for finish times, then one commit.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench_common import Env, gitclaim_command, heading, isolate_env, make_clone, make_env, median, ms, note, rx
from bench_common import table as text_table
from bench_identity import Change, fast_import, init_change

from tests.servers import git, make_bare

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def seed(env: Env, done: int, live: int) -> tuple[Path, Path]:
    """A bare remote: init, one commit adding every task (todo), then a commit per finish."""
    from gitclaim import audit
    from gitclaim.ids import task_path
    from gitclaim.model import State, Task, dump_task

    base = env.tmp(f"archive-{done}")
    bare = make_bare(base / "remote.git")
    finished = [f"d{i:06d}" for i in range(done)]
    tasks = [Task(id=t, title=f"Finished work {t}", created_at=T0, created_by="admin") for t in finished]
    tasks += [
        Task(
            id=f"l{i:05d}",
            title=f"Open work {i}",
            depends_on=(finished[i % done],) if i % 5 == 0 and done else (),
            created_at=T0,
            created_by="admin",
        )
        for i in range(live)
    ]

    def changes() -> Iterator[Change]:
        yield init_change("admin", T0)
        msg = audit.message(f"add {len(tasks)} tasks by admin", [("Op", "add"), ("Agent", "admin")])
        yield Change("admin", T0, msg, {task_path(t.id): dump_task(t) for t in tasks})
        for i, t in enumerate(tasks[:done]):
            msg = f"done {t.id} by admin\n"  # a plain commit: the walk reads the diff, not trailers
            files = {task_path(t.id): dump_task(t.evolve(state=State.DONE))}
            yield Change("admin", T0 + timedelta(minutes=i + 1), msg, files)

    fast_import(bare, changes(), ref="refs/heads/gitclaim")
    git("repack", "-adq", cwd=bare)
    clone = make_clone(str(bare), base / "clone")
    git("fetch", "-q", "origin", "+refs/heads/gitclaim:refs/remotes/origin/gitclaim", cwd=clone)
    return bare, clone


def _timed(args: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    r = subprocess.run(args, cwd=cwd, capture_output=True, timeout=900)
    if r.returncode != 0:
        raise RuntimeError(f"{args}: exit {r.returncode}: {r.stderr.decode()[-500:]}")
    return time.perf_counter() - t


READS = {
    "ready": ["ready", "--json", "--offline"],
    "list": ["list", "--json", "--offline"],
    "board": ["board", "--json", "--offline"],
    "blocked": ["blocked", "--json", "--offline"],
}


def reads(cmd: list[str], clone: Path, runs: int) -> dict[str, float]:
    """Medians of each read, warm and cold (the read index and parse cache deleted first)."""
    times: dict[str, list[float]] = {}
    names = [(n, cold) for n in READS for cold in (False, True) if not (n == "blocked" and cold)]
    for k in range(runs):
        for name, cold in names[k % len(names) :] + names[: k % len(names)]:
            if cold:
                shutil.rmtree(clone / ".git" / "gitclaim", ignore_errors=True)
            else:
                _timed([*cmd, *READS[name]], clone)  # make sure it is warm
            times.setdefault(f"{name} {'cold' if cold else 'warm'}", []).append(_timed([*cmd, *READS[name]], clone))
    return {k: median(v) for k, v in times.items()}


def measure(env: Env, done: int, live: int, runs: int) -> dict[str, Any]:
    cmd, _ = gitclaim_command()
    t = time.perf_counter()
    _, clone = seed(env, done, live)
    note(f"seeded {done:,} done tasks (a commit each) and {live:,} open ones in {time.perf_counter() - t:.1f} s")
    before = reads(cmd, clone, runs)
    agent = ["--agent", "ops"]
    dry = _timed([*cmd, "archive", "--done-before", "2026-01-01", "--dry-run", "--json", *agent], clone)
    t = time.perf_counter()
    out = subprocess.run(
        [*cmd, "archive", "--done-before", "2026-01-01", "--json", *agent], cwd=clone, capture_output=True, timeout=900
    )
    took = time.perf_counter() - t
    result = json.loads(out.stdout)["result"]
    assert result["count"] == done, result
    git("fetch", "-q", "origin", "+refs/heads/gitclaim:refs/remotes/origin/gitclaim", cwd=clone)
    after = reads(cmd, clone, runs)
    return {"done": done, "live": live, "before": before, "after": after, "dry_run": dry, "archive": took}


def report(r: dict[str, Any]) -> None:
    heading(f"{r['done']:,} done + {r['live']:,} open tasks: reads before and after archive")
    rows = [[k, ms(r["before"][k]), ms(r["after"][k]), rx(r["after"][k] / r["before"][k])] for k in r["before"]]
    print(text_table(["command", "before ms", "after ms", "after/before"], rows))
    note(f"archive --dry-run: {r['dry_run']:.2f} s; archive ({r['done']:,} tasks, one commit): {r['archive']:.2f} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/bench_archive.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2,000 done tasks, 3 rounds")
    p.add_argument("--done", type=int, default=0, help="done tasks (default 10,000; quick 2,000)")
    p.add_argument("--live", type=int, default=500, help="open tasks (default 500)")
    p.add_argument("--runs", type=int, default=0, help="rounds (default 5; quick 3)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = p.parse_args(argv)
    env, cleanup = make_env(args.keep, args.quick)
    isolate_env(env.root / "home")
    try:
        done = args.done or (2000 if args.quick else 10000)
        report(measure(env, done, args.live, args.runs or (3 if args.quick else 5)))
    finally:
        cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
