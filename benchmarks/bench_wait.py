"""Waiting for work (issue 16): what one look of ``next --wait`` costs, against
what a polling agent pays.

    python benchmarks/bench_wait.py               # about a minute on a 2-core machine
    python benchmarks/bench_wait.py --samples 200 --tasks 10000

On a store of ``--tasks`` tasks, none of them ready (all someday), over a bare
repository by path and over git daemon on loopback, while nothing changes:

- peek: ``Transport.peek``, the look ``next --wait`` and ``watch`` take between
  tries (the branch's tip from the remote's ref advertisement, no fetch);
- fetch: ``Transport.fetch`` of the unchanged branch (the baseline);
- next: ``Store.next`` answering nothing_ready, what an agent polling with
  ``gitclaim next`` pays per poll (in-process: no start-up counted).

Then the time from another clone's ``add`` landing to a waiting
``next --wait`` process holding the task (``--rounds`` rounds).

Medians, and ratios to the fetch measured in the same run. Everything lives in
one temporary folder, removed at the end; git daemon is stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

import bench_common as bc  # beside this script; it puts the repository root on sys.path


def timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def looks(env: bc.Env, transport: str, tasks: int, samples: int) -> dict[str, float]:
    from gitclaim import Store
    from gitclaim.errors import NothingReady

    remote = env.remote(transport, "wait")
    seed = Store(bc.make_clone(remote.url, env.tmp("seed") / "clone"), agent="seed")
    seed.init()
    # someday is not claimable: a store of many tasks, none ready, that next reads in full
    seed.add_many([{"id": f"t{i}", "title": f"task {i}", "state": "someday"} for i in range(tasks)])
    s = Store(bc.make_clone(remote.url, env.tmp("waiter") / "clone"), agent="waiter")
    s.transport.fetch()

    def poll() -> None:
        with contextlib.suppress(NothingReady):
            s.next()

    poll()  # warm the caches as a long-running poller would have them
    figures = {
        "peek": bc.median(timed(s.transport.peek, samples)),
        "fetch": bc.median(timed(s.transport.fetch, samples)),
        "next": bc.median(timed(poll, samples)),
    }
    return figures


def wake(env: bc.Env, transport: str, rounds: int) -> list[float]:
    """Seconds from an add landing to a waiting `next --wait` process exiting with the task."""
    from gitclaim import Store

    remote = env.remote(transport, "wake")
    adder = Store(bc.make_clone(remote.url, env.tmp("adder") / "clone"), agent="adder")
    adder.init()
    where = bc.make_clone(remote.url, env.tmp("sleeper") / "clone")
    cmd = [sys.executable, "-m", "gitclaim"]  # this checkout's gitclaim, whatever is installed
    child_env = {**os.environ, "PYTHONPATH": str(bc.ROOT)}
    out = []
    for r in range(rounds):
        trace = env.tmp("trace") / "trace"
        p = subprocess.Popen(
            [*cmd, "next", "--wait", "--timeout", "60", "--agent", "w", "--json"],
            cwd=where,
            stdout=subprocess.PIPE,
            env={**child_env, "GITCLAIM_TRACE_REMOTE": str(trace)},
        )
        while not (trace.exists() and "peek" in trace.read_text()):
            time.sleep(0.01)  # waiting: it has made its first try and looks at the tip
        time.sleep(0.5)
        adder.add(f"round {r}", task_id=f"r{r}")
        landed = time.perf_counter()
        got, _ = p.communicate(timeout=60)
        out.append(time.perf_counter() - landed)
        assert json.loads(got)["result"]["task"]["id"] == f"r{r}", got
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=60)
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    env, cleanup = bc.make_env(args.keep, quick=False)
    bc.isolate_env(env.root / "home")
    try:
        bc.heading(f"one look while nothing changes: {args.tasks} tasks, none ready, {args.samples} samples")
        rows = []
        for transport in ("path", "daemon"):
            f = looks(env, transport, args.tasks, args.samples)
            for name in ("peek", "fetch", "next"):
                rows.append([transport, name, bc.ms(f[name]), bc.rx(bc.ratio(f[name], f["fetch"]))])
        print(bc.table(["transport", "look", "median", "vs fetch"], rows))
        bc.heading(f"an add landing, to a waiting next --wait holding the task ({args.rounds} rounds)")
        rows = []
        for transport in ("path", "daemon"):
            w = wake(env, transport, args.rounds)
            rows.append([transport, bc.secs(bc.median(w)), bc.secs(max(w))])
        print(bc.table(["transport", "median", "slowest"], rows))
    finally:
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
