"""Run gitclaim's benchmarks: ``python benchmarks/run.py [--quick] [--only a,b,c,d]``.

a  whole-process `gitclaim claim` vs a git-CLI script (path remote, git daemon)
b  8 agent processes running next+done vs 1 agent: throughput ratio, retries
c  claim latency at 100 / 10,000 / 100,000 tasks; `ready --json` cold and warm
d  whole-process start-up: imports, `gitclaim --help`, `ready --json --offline` vs `python -c pass`
e  reads at 10,000 / 100,000 tasks: ready, list vs git grep -l, our own JSON, gptodo (not in the default set)

Everything runs on loopback and in one temporary folder, removed at the end
(``--keep`` keeps it); every child process (git daemon, agents) is stopped.
See benchmarks/README.md for how to read the output.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import Any

HERE = Path(__file__).resolve().parent
BENCHES = {
    "a": "claim: gitclaim vs git CLI",
    "b": "8 agents vs 1",
    "c": "store size",
    "d": "start-up",
    "e": "reads: ready and list at 10,000 and 100,000 tasks",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick", action="store_true", help="a fast smoke run (about a minute): fewer samples, smaller stores"
    )
    p.add_argument(
        "--only", default="a,b,c,d", help="comma-separated benchmarks to run: a, b, c, d, e (default: a,b,c,d)"
    )
    p.add_argument("--transports", default="path,daemon", help="path, daemon or both (default: path,daemon)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    p.add_argument(
        "--json",
        metavar="FILE",
        help="also write all figures as JSON here (default: benchmarks/results/run-<time>.json)",
    )
    p.add_argument("--no-json", action="store_true", help="do not write the JSON results file")
    g = p.add_argument_group("(a) whole-process claim")
    g.add_argument("--samples-a", type=int, default=0, help="samples per tool per transport (default 20; quick 4)")
    g.add_argument("--stale-samples-a", type=int, default=None, help="samples with a stale tip (default 10; quick 2)")
    g = p.add_argument_group("(b) many agents")
    g.add_argument("--agents", type=int, default=8, help="agent processes (default 8)")
    g.add_argument("--tasks-b", type=int, default=0, help="tasks per run (default 200; quick 24)")
    g.add_argument("--work-ms", type=float, default=0.0, help="sleep between next() and done() (default 0)")
    g.add_argument("--reps-b", type=int, default=0, help="runs of each configuration (default 3; quick 1)")
    g.add_argument(
        "--loop-b",
        default="pair,chain",
        help="the agents' loop: pair (next, then done) and/or chain (done --next: one push per task); default both",
    )
    g = p.add_argument_group("(c) store size")
    g.add_argument("--sizes", default="", help="store sizes (default 100,10000,100000; quick 100,1000,10000)")
    g.add_argument("--samples-c", type=int, default=0, help="claims per size per transport (default 25; quick 5)")
    g.add_argument(
        "--api-seed-max",
        type=int,
        default=None,
        help="seed stores up to this size with Store.add_many, larger ones with pygit2 (default 10000; quick 1000)",
    )
    g.add_argument(
        "--ready-runs", type=int, default=0, help="`ready --json` runs, cold and warm each (default 3; quick 1)"
    )
    g = p.add_argument_group("(d) start-up")
    g.add_argument("--runs-d", type=int, default=0, help="runs per command (default 15; quick 5)")
    g = p.add_argument_group("(e) reads")
    g.add_argument("--sizes-e", default="", help="store sizes (default 10000,100000; quick 1000,10000)")
    g.add_argument("--runs-e", type=int, default=0, help="rounds per size (default 9; quick 3)")
    g.add_argument("--peerbench", default="/work/shared/peerbench", help="the folder of the peers' gen.py")
    g.add_argument("--gptodo", default=None, help="gptodo's executable, to time it on the same task set")
    a = p.parse_args(argv)
    a.only = [x.strip() for x in a.only.split(",") if x.strip()]
    unknown = set(a.only) - set(BENCHES)
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(BENCHES)}")
    a.transports = [x.strip() for x in a.transports.split(",") if x.strip()]
    if set(a.transports) - {"path", "daemon"} or not a.transports:
        p.error("--transports takes path, daemon or both")
    return a


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through the cleanup below


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(HERE))
    import bench_common as bc

    env, cleanup = bc.make_env(keep=args.keep, quick=args.quick)
    signal.signal(signal.SIGTERM, _on_sigterm)
    results: dict[str, Any] = {"quick": args.quick, "argv": sys.argv[1:], "started": time.time(), "benchmarks": {}}
    failed: list[str] = []
    started = time.monotonic()
    try:
        bc.isolate_env(env.root / "home")  # before anything imports pygit2
        import bench_agents
        import bench_cli_claim
        import bench_reads
        import bench_scale
        import bench_startup
        import pygit2

        modules = {"a": bench_cli_claim, "b": bench_agents, "c": bench_scale, "d": bench_startup, "e": bench_reads}
        print(
            f"gitclaim benchmarks{' (quick)' if args.quick else ''}: {', '.join(args.only)}"
            f" over {', '.join(args.transports)}"
        )
        print(
            f"python {platform.python_version()}, pygit2 {pygit2.__version__} (libgit2 {pygit2.LIBGIT2_VERSION}),"
            f" {bc.git('--version').strip()}, {os.cpu_count()} CPUs, {platform.platform()}"
        )
        print("every figure is a median over repeated samples; compare ratios, not absolute times")
        for key in args.only:
            t = time.monotonic()
            try:
                results["benchmarks"][key] = modules[key].run(env, args)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:  # report, go on with the others
                traceback.print_exc()
                failed.append(f"({key}) {type(e).__name__}: {e}")
                results["benchmarks"][key] = {"error": str(e)}
            bc.note(f"(({key}) took {time.monotonic() - t:.0f} s)")
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        cleanup()  # stops git daemon and agents, removes the temporary folder

    elapsed = time.monotonic() - started
    bc.heading("summary")
    for key in args.only:
        for line in results["benchmarks"][key].get("summary", []):
            print(f"  {line}")
    for f in failed:
        print(f"  FAILED {f}")
    problems = [p for k in args.only for p in results["benchmarks"][k].get("problems", [])]
    for p in problems:
        print(f"  PROBLEM {p}")
    print(f"  total time {elapsed:.0f} s")
    results["elapsed_s"] = elapsed
    if not args.no_json:
        out = Path(args.json) if args.json else HERE / "results" / f"run-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1, default=str) + "\n")
        print(f"  figures written to {out}")
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
