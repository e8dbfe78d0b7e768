"""(b) Many agents at once: K agent processes, each on its own clone, run
``Store.next()`` + ``Store.done(id)`` (loop ``pair``) or ``Store.next()`` then
``Store.done(id, next=True)`` (loop ``chain``: one commit and one push per
task) through the Python API until nothing is ready, against one agent doing
the same on the same number of tasks.

Reports claims per second (K agents / 1 agent, runs interleaved), the retries
each write took (``OpResult.retries``: pushes refused because the branch had
moved; median, p99, max), each agent's share of the tasks, and checks that
every task was claimed exactly once.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench_common import (
    HERE,
    Env,
    heading,
    make_clone,
    median,
    ms,
    note,
    progress,
    quantile,
    ratio,
    rx,
    secs,
    table,
)

WORKER = HERE / "agent_worker.py"


@dataclass
class RunResult:
    agents: int
    tasks: int
    wall: float
    claims: list[dict[str, Any]]
    errors: list[str]
    per_agent: list[int]
    finals: list[dict[str, Any]]  # each agent's last next(): the one that found nothing ready
    refused: int  # pushes refused (branch moved) over all calls of all agents
    writes: list[int] = field(default_factory=list)  # the retries of every write that returned
    duplicates: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    done_on_remote: int = 0

    @property
    def rate(self) -> float:
        return len(self.claims) / self.wall if self.wall > 0 else float("nan")

    @property
    def exactly_once(self) -> bool:
        return not self.duplicates and not self.missing and len(self.claims) == self.tasks


def _readline(p: subprocess.Popen[str], deadline: float) -> str:
    assert p.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(p.stdout, selectors.EVENT_READ)
        if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
            raise TimeoutError("an agent process did not get ready in time")
    return p.stdout.readline()


def one_run(
    env: Env, transport: str, n_agents: int, n_tasks: int, timeout: float, work: float = 0.0, loop: str = "pair"
) -> RunResult:
    from gitclaim import Store

    remote = env.remote(transport, f"agents{n_agents}{loop}")
    base = env.tmp(f"agents-{transport}-{n_agents}-{loop}")
    admin = Store(make_clone(remote.url, base / "admin"), agent="admin")
    admin.init()
    ids = [f"w{i:04d}" for i in range(n_tasks)]
    admin.add_many([{"id": i, "title": f"work item {i}"} for i in ids])
    clones = [make_clone(remote.url, base / f"agent-{k}") for k in range(n_agents)]
    procs: list[subprocess.Popen[str]] = []
    try:
        for k, clone in enumerate(clones):
            procs.append(
                env.procs.popen(
                    [sys.executable, str(WORKER), str(clone), f"agent-{k}", str(n_tasks), str(work), loop],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        deadline = time.monotonic() + 60
        for p in procs:
            line = _readline(p, deadline).strip()
            if line != "ready":
                err = p.stderr.read() if p.poll() is not None and p.stderr else ""
                raise RuntimeError(f"an agent process failed to start: {line!r} {err[-2000:]}")
        go = time.monotonic()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        reports = []
        deadline = go + timeout
        for p in procs:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            if p.returncode != 0:
                raise RuntimeError(f"an agent process exited with {p.returncode}: {err[-2000:]}")
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            env.procs.stop(p, grace=2.0)
    wall = max(r["end"] for r in reports) - go
    claims = [c for r in reports for c in r["claims"]]
    counts = Counter(c["task"] for c in claims)
    final = admin.list()
    res = RunResult(
        agents=n_agents,
        tasks=n_tasks,
        wall=wall,
        claims=claims,
        errors=[f"{r['agent']}: {e}" for r in reports for e in r["errors"]],
        per_agent=[len(r["claims"]) for r in reports],
        finals=[r["final"] for r in reports if r["final"]],
        refused=sum(r["refused"] for r in reports),
        writes=[w for r in reports for w in r["writes"]],
        duplicates=sorted(t for t, c in counts.items() if c > 1),
        missing=sorted(set(ids) - set(counts)),
        done_on_remote=sum(1 for t in final.tasks if t.state.value == "done"),
    )
    return res


def _stats(rs: list[RunResult]) -> dict[str, Any]:
    claims = [c for r in rs for c in r.claims]
    writes = [w for r in rs for w in r.writes]
    shares = [[n / r.tasks for n in r.per_agent] for r in rs]
    return {
        "rates": [r.rate for r in rs],
        "walls": [r.wall for r in rs],
        "retries": [c["retries"] for c in claims],
        "done_retries": [c["done_retries"] for c in claims],
        "write_retries": writes,
        "next_s": [c["next_s"] for c in claims],
        "done_s": [c["done_s"] for c in claims],
        "per_agent": [r.per_agent for r in rs],
        "shares": shares,
        "exactly_once_runs": sum(1 for r in rs if r.exactly_once and r.done_on_remote == r.tasks),
        "finals": [f for r in rs for f in r.finals],
        "refused": sum(r.refused for r in rs),
        "idle_agents": [sum(1 for c in r.per_agent if c == 0) for r in rs],
        "errors": [e for r in rs for e in r.errors],
    }


def run(env: Env, args: Any) -> dict[str, Any]:
    k = args.agents
    n_tasks = args.tasks_b or (24 if env.quick else 200)
    reps = args.reps_b or (1 if env.quick else 3)
    timeout = 120.0 if env.quick else 600.0
    work = args.work_ms / 1000.0
    loops = [x for x in getattr(args, "loop_b", "pair").split(",") if x]

    heading(f"(b) {k} agents vs 1: next + done until nothing is ready")
    note("each agent: its own process and clone, Store(clone, agent=name), in a loop until nothing is ready:")
    note("  pair:  next() then done(id): two commits, two pushes per task")
    note("  chain: next() once, then done(id, next=True): one commit, one push per task")
    note(f"{n_tasks} tasks per run; start released at once after every agent fetched")
    note(f"runs: {reps} with {k} agents and {reps} with 1 agent per transport and loop, alternating, fresh remote each")
    note("claims/s = tasks claimed / wall time (first start to last finish), every done() included")
    if work > 0:
        note(f"each agent sleeps {args.work_ms:g} ms between claiming a task and finishing it, standing for the work")
    else:
        note("no work between claiming and finishing: a hot loop, the worst case for contention (see --work-ms)")

    results: dict[str, Any] = {
        "params": {"agents": k, "tasks": n_tasks, "reps": reps, "work_ms": args.work_ms, "loops": loops},
        "transports": {},
    }
    rows, fair_rows, ratio_rows, summary, problems = [], [], [], [], []
    for transport in args.transports:
        tr: dict[str, Any] = {}
        for loop in loops:
            runs: dict[int, list[RunResult]] = {1: [], k: []}
            for rep in range(reps):
                for n in [1, k] if rep % 2 == 0 else [k, 1]:
                    progress(f"(b) {transport}, {loop}: run {rep + 1}/{reps} with {n} agent(s)")
                    r = one_run(env, transport, n, n_tasks, timeout, work, loop)
                    runs[n].append(r)
                    if not r.exactly_once or r.done_on_remote != n_tasks:
                        problems.append(
                            f"(b) {transport}, {loop}, {n} agents: {len(r.claims)} claims of {n_tasks} tasks,"
                            f" duplicates {r.duplicates[:5]}, missing {r.missing[:5]},"
                            f" done on remote {r.done_on_remote}"
                        )
                    for e in r.errors[:3]:
                        problems.append(f"(b) {transport}, {loop}, {n} agents: {e}")
            for n in sorted(runs):
                st = _stats(runs[n])
                tr[f"{loop}-{n}"] = st
                label = f"{transport}, {loop}, {n} agent{'s' if n > 1 else ''}"
                w, finals = st["write_retries"], st["finals"]
                shares = [x for run_shares in st["shares"] for x in run_shares]
                rows.append(
                    [
                        label,
                        len(runs[n]),
                        f"{median(st['rates']):.1f}",
                        " ".join(f"{x:.1f}" for x in st["rates"]),
                        f"{median(st['walls']):.2f}",
                        ms(median(st["next_s"])),
                        ms(median(st["done_s"])),
                        f"{st['exactly_once_runs']}/{len(runs[n])} runs",
                    ]
                )
                fair_rows.append(
                    [
                        label,
                        f"{median(w):g}/{quantile(w, 0.99):g}/{max(w)}",
                        f"{st['refused'] / max(1, len(w)):.2f}",
                        f"{100 * min(shares):.1f}-{100 * max(shares):.1f}",
                        " ".join(str(i) for i in st["idle_agents"]),
                        f"{secs(median(f['s'] for f in finals))}/{secs(max((f['s'] for f in finals), default=0))}",
                        f"{max((f['retries'] for f in finals), default=0)}",
                    ]
                )
            r1, rk = median(tr[f"{loop}-1"]["rates"]), median(tr[f"{loop}-{k}"]["rates"])
            tr[f"{loop}-ratio"] = ratio(rk, r1)
            wk = tr[f"{loop}-{k}"]["write_retries"]
            ratio_rows.append(
                [transport, loop, f"{r1:.1f}", f"{rk:.1f}", rx(tr[f"{loop}-ratio"]),
                 f"{median(wk):g}/{quantile(wk, 0.99):g}/{max(wk)}"]
            )  # fmt: skip
            once = tr[f"{loop}-{k}"]["exactly_once_runs"] + tr[f"{loop}-1"]["exactly_once_runs"]
            idle = " ".join(str(i) for i in tr[f"{loop}-{k}"]["idle_agents"])
            shares = [x for run_shares in tr[f"{loop}-{k}"]["shares"] for x in run_shares]
            summary.append(
                f"(b) {k} agents vs 1, {transport}, {loop}: claims/s ratio {rx(tr[f'{loop}-ratio'])}"
                f" ({rk:.1f} vs {r1:.1f}/s), retries per write median/p99/max {median(wk):g}/{quantile(wk, 0.99):g}"
                f"/{max(wk)}, share of tasks {100 * min(shares):.1f}-{100 * max(shares):.1f}%, exactly once"
                f" {once}/{2 * reps} runs, agents that got no task: {idle} (of {k}, per run)"
            )
        if "pair" in loops and "chain" in loops:
            tr["chain-vs-pair-1"] = ratio(median(tr[f"chain-{k}"]["rates"]), median(tr["pair-1"]["rates"]))
            summary.append(
                f"(b) {transport}: {k} agents in chain loops vs 1 agent in a pair loop: {rx(tr['chain-vs-pair-1'])}"
            )
        results["transports"][transport] = tr
    print()
    print(
        table(
            ["transport, loop, agents", "runs", "claims/s", "per run", "wall s", "next ms", "done ms", "exactly once"],
            rows,
        )
    )
    print()
    print(
        table(
            [
                "transport, loop, agents",
                "retries/write med/p99/max",
                "refused/write",
                "share of tasks % min-max",
                "agents with 0 tasks",
                "last call s med/max",
                "its retries max",
            ],
            fair_rows,
        )
    )
    print()
    print(
        table(
            ["transport", "loop", "claims/s, 1 agent", f"claims/s, {k} agents", "ratio", f"retries/write, {k}"],
            ratio_rows,
        )
    )
    note(f"ratio = median claims/s with {k} agents / median claims/s with 1 agent, same loop (above 1: faster).")
    note("retries/write = OpResult.retries of each next() and done() that returned: pushes refused because the")
    note("  branch moved. refused/write = every refused push (counted through RetryPolicy.sleep, also in calls that")
    note("  end with nothing ready) per write. share = an agent's tasks / the run's tasks (fair: 1/agents).")
    note("  last call = each agent's final call, which finds nothing ready; an agent that keeps losing races spends")
    note("  the run inside it, which OpResult.retries never shows.")
    note(f"this machine has {os.cpu_count()} CPUs: {k} processes share them, so the ratio is bounded by")
    note("CPU as much as by contention on the branch.")
    for p in problems:
        note(f"PROBLEM: {p}")
    results["summary"] = summary
    results["problems"] = problems
    return results
