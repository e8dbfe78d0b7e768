"""(d) whole-process start-up: ``python benchmarks/bench_startup.py [--runs N] [--keep]``.

What an agent or a hook pays before gitclaim does any work. Each command is
started as its own process N times (default 15), interleaved round by round
(the order rotating each round), after one untimed warm-up round:

- ``python -c pass``: the interpreter alone, the baseline;
- ``python -c "import gitclaim.cli"`` and ``python -c "import gitclaim.hook"``;
- ``gitclaim --help`` (the console script beside the interpreter);
- ``gitclaim ready --json --offline`` in a small initialised store (a bare
  repository and a clone in a temporary folder).

Prints the median of each and its ratio to the baseline's median measured in
the same run. Also run by ``python benchmarks/run.py --only d``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench_common import (  # beside this script; it imports no gitclaim
    Env,
    gitclaim_command,
    heading,
    iqr,
    isolate_env,
    make_clone,
    make_env,
    median,
    ms,
    note,
    ratio,
    rx,
    table,
)

from tests.servers import make_bare  # bench_common, imported first, put the root on sys.path

DEFAULT_RUNS = 15
BATCH = "".join(f'[[task]]\nid = "t{i:02d}"\ntitle = "Task {i}"\npriority = {i % 4}\n\n' for i in range(10))


def _store(env: Env, cmd: list[str]) -> Path:
    """A bare remote and an initialised clone holding ten tasks."""
    base = env.tmp("startup")
    bare = make_bare(base / "remote.git")
    clone = make_clone(str(bare), base / "clone")
    batch = base / "tasks.toml"
    batch.write_text(BATCH)
    for args in (["init", "--agent", "bench"], ["add", "--file", str(batch), "--agent", "bench"]):
        r = subprocess.run([*cmd, *args, "--json"], cwd=clone, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"gitclaim {' '.join(args)} failed ({r.returncode}): {r.stdout}{r.stderr}")
    return clone


def run(env: Env, args: Any) -> dict[str, Any]:
    runs = getattr(args, "runs_d", 0) or (5 if env.quick else DEFAULT_RUNS)
    cmd, cmd_text = gitclaim_command()
    py = sys.executable
    clone = _store(env, cmd)
    cases: list[tuple[str, list[str]]] = [
        ("python -c pass", [py, "-c", "pass"]),
        ("import gitclaim.cli", [py, "-c", "import gitclaim.cli"]),
        ("import gitclaim.hook", [py, "-c", "import gitclaim.hook"]),
        ("gitclaim --help", [*cmd, "--help"]),
        ("gitclaim ready --json --offline", [*cmd, "ready", "--json", "--offline"]),
    ]  # every one runs in the clone: the installed gitclaim is imported, not a checkout in the cwd

    heading("(d) start-up: whole processes, from exec to exit")
    note(f"python: {py}")
    note(f"gitclaim: {cmd_text}")
    note("store for `ready`: a path remote and a clone, 10 tasks")
    note(f"runs: {runs} per command after 1 warm-up round; interleaved, the order rotating each round")

    samples: dict[str, list[float]] = {name: [] for name, _ in cases}
    problems: list[str] = []
    for round_no in range(runs + 1):
        shift = round_no % len(cases)
        for name, argv in cases[shift:] + cases[:shift]:
            t = time.perf_counter()
            r = subprocess.run(argv, cwd=clone, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
            elapsed = time.perf_counter() - t
            if r.returncode != 0:
                problems.append(f"{name} exited {r.returncode}: {r.stderr.decode(errors='replace').strip()[:200]}")
            if round_no > 0:  # round 0 warms the OS caches
                samples[name].append(elapsed)
        if problems:
            break

    base = median(samples["python -c pass"])
    rows = []
    figures: dict[str, Any] = {}
    for name, _ in cases:
        m = median(samples[name])
        lo, hi = iqr(samples[name])
        rows.append([name, ms(m), f"{ms(lo)}-{ms(hi)}", rx(ratio(m, base)), ms(m - base)])
        figures[name] = {
            "median_s": m,
            "iqr_s": [lo, hi],
            "ratio_to_baseline": ratio(m, base),
            "samples": samples[name],
        }
    print(table(["command", "median ms", "IQR ms", "x python", "+ms over python"], rows))
    for p in problems:
        note(f"PROBLEM {p}")
    summary = [
        f"(d) start-up (median of {runs}): python -c pass {ms(base)} ms; "
        + "; ".join(
            f"{name} {ms(figures[name]['median_s'])} ms ({rx(figures[name]['ratio_to_baseline'])})"
            for name, _ in cases[1:]
        )
    ]
    return {
        "params": {"runs": runs, "gitclaim": cmd_text},
        "figures": figures,
        "problems": problems,
        "summary": summary,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python benchmarks/bench_startup.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--runs", "-n", type=int, default=DEFAULT_RUNS, help=f"runs per command (default {DEFAULT_RUNS})")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    a = p.parse_args(argv)
    env, cleanup = make_env(keep=a.keep, quick=False)
    try:
        isolate_env(env.root / "home")  # HOME and git config for us and every child
        out = run(env, argparse.Namespace(runs_d=a.runs))
    finally:
        cleanup()
    print()
    for line in out["summary"]:
        print(line)
    return 1 if out["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
