"""(b) Many agents at once: K agent processes, each on its own clone, run
``Store.next()`` + ``Store.done(id)`` through the Python API until nothing is
ready, against one agent doing the same on the same number of tasks.

Reports claims per second (K agents / 1 agent, runs interleaved), the retries
each claim took (``OpResult.retries``: pushes refused because the branch had
moved), and checks that every task was claimed exactly once.
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


def one_run(env: Env, transport: str, n_agents: int, n_tasks: int, timeout: float, work: float = 0.0) -> RunResult:
    from gitclaim import Store

    remote = env.remote(transport, f"agents{n_agents}")
    base = env.tmp(f"agents-{transport}-{n_agents}")
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
                    [sys.executable, str(WORKER), str(clone), f"agent-{k}", str(n_tasks), str(work)],
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
        duplicates=sorted(t for t, c in counts.items() if c > 1),
        missing=sorted(set(ids) - set(counts)),
        done_on_remote=sum(1 for t in final.tasks if t.state.value == "done"),
    )
    return res


def run(env: Env, args: Any) -> dict[str, Any]:
    k = args.agents
    n_tasks = args.tasks_b or (24 if env.quick else 200)
    reps = args.reps_b or (1 if env.quick else 3)
    timeout = 120.0 if env.quick else 600.0
    work = args.work_ms / 1000.0

    heading(f"(b) {k} agents vs 1: next + done until nothing is ready")
    note("each agent: its own process and clone; Store(clone, agent=name).next() then .done(id), in a loop,")
    note(f"           until NothingReady; {n_tasks} tasks per run; start released at once after every agent fetched")
    note(f"runs: {reps} with {k} agents and {reps} with 1 agent per transport, alternating, fresh remote each")
    note("claims/s = successful next() calls / wall time (first start to last finish), done() included")
    if work > 0:
        note(f"each agent sleeps {args.work_ms:g} ms between next() and done(), standing for the work")
    else:
        note("no work between next() and done(): a hot loop, the worst case for contention (see --work-ms)")

    results: dict[str, Any] = {
        "params": {"agents": k, "tasks": n_tasks, "reps": reps, "work_ms": args.work_ms},
        "transports": {},
    }
    rows, fair_rows, ratio_rows, summary, problems = [], [], [], [], []
    for transport in args.transports:
        runs: dict[int, list[RunResult]] = {1: [], k: []}
        for rep in range(reps):
            for n in [1, k] if rep % 2 == 0 else [k, 1]:
                progress(f"(b) {transport}: run {rep + 1}/{reps} with {n} agent(s)")
                r = one_run(env, transport, n, n_tasks, timeout, work)
                runs[n].append(r)
                if not r.exactly_once or r.done_on_remote != n_tasks:
                    problems.append(
                        f"(b) {transport}, {n} agents: {len(r.claims)} claims of {n_tasks} tasks,"
                        f" duplicates {r.duplicates[:5]}, missing {r.missing[:5]},"
                        f" done on remote {r.done_on_remote}"
                    )
                for e in r.errors[:3]:
                    problems.append(f"(b) {transport}, {n} agents: {e}")
        tr: dict[str, Any] = {}
        for n in sorted(runs):
            rs = runs[n]
            label = f"{transport}, {n} agent{'s' if n > 1 else ''}"
            claims = [c for r in rs for c in r.claims]
            retries = [c["retries"] for c in claims]
            done_retries = [c["done_retries"] for c in claims if c["done_retries"] >= 0]
            rates = [r.rate for r in rs]
            once = sum(1 for r in rs if r.exactly_once and r.done_on_remote == n_tasks)
            finals = [f for r in rs for f in r.finals]
            accepted = 2 * len(claims)  # one push for next(), one for done()
            refused = sum(r.refused for r in rs)
            idle = [sum(1 for c in r.per_agent if c == 0) for r in rs]
            rows.append(
                [
                    label,
                    len(rs),
                    f"{median(rates):.1f}",
                    " ".join(f"{x:.1f}" for x in rates),
                    f"{median(r.wall for r in rs):.2f}",
                    ms(median(c["next_s"] for c in claims)),
                    ms(median(c["done_s"] for c in claims)),
                    f"{once}/{len(rs)} runs, {sum(len(r.claims) for r in rs)} claims of {n_tasks * len(rs)} tasks",
                ]
            )
            fair_rows.append(
                [
                    label,
                    f"{median(retries):g}/{quantile(retries, 0.9):g}/{max(retries)}",
                    f"{median(done_retries):g}/{max(done_retries, default=0)}",
                    f"{refused / accepted:.2f}",
                    f"{min(min(r.per_agent) for r in rs)}-{max(max(r.per_agent) for r in rs)}",
                    " ".join(str(i) for i in idle),
                    f"{secs(median(f['s'] for f in finals))}/{secs(max((f['s'] for f in finals), default=0))}",
                    f"{max((f['retries'] for f in finals), default=0)}",
                ]
            )
            tr[str(n)] = {
                "rates": rates,
                "walls": [r.wall for r in rs],
                "retries": retries,
                "done_retries": done_retries,
                "next_s": [c["next_s"] for c in claims],
                "done_s": [c["done_s"] for c in claims],
                "per_agent": [r.per_agent for r in rs],
                "exactly_once_runs": once,
                "finals": finals,
                "refused": refused,
                "accepted": accepted,
                "idle_agents": idle,
                "errors": [e for r in rs for e in r.errors],
            }
        r1, rk = median(tr["1"]["rates"]), median(tr[str(k)]["rates"])
        tr["ratio"] = ratio(rk, r1)
        retries_k = tr[str(k)]["retries"]
        ratio_rows.append(
            [transport, f"{r1:.1f}", f"{rk:.1f}", rx(tr["ratio"]), f"{median(retries_k):g}", f"{max(retries_k)}"]
        )
        results["transports"][transport] = tr
        idle_k = tr[str(k)]["idle_agents"]
        summary.append(
            f"(b) {k} agents vs 1, {transport}: claims/s ratio {rx(tr['ratio'])} ({rk:.1f} vs {r1:.1f}/s),"
            f" retries per claim median {median(retries_k):g} max {max(retries_k)},"
            f" exactly once {tr[str(k)]['exactly_once_runs'] + tr['1']['exactly_once_runs']}/{2 * reps} runs,"
            f" agents that got no task: {' '.join(str(i) for i in idle_k)} (of {k}, per run)"
        )
    print()
    print(
        table(
            [
                "transport, agents",
                "runs",
                "claims/s",
                "per run",
                "wall s",
                "next ms",
                "done ms",
                "every task claimed exactly once",
            ],
            rows,
        )
    )
    print()
    print(
        table(
            [
                "transport, agents",
                "retries/claim med/p90/max",
                "done retries med/max",
                "refused/accepted",
                "claims per agent",
                "agents with 0 claims",
                "last next() s med/max",
                "its retries max",
            ],
            fair_rows,
        )
    )
    print()
    print(
        table(
            ["transport", "claims/s, 1 agent", f"claims/s, {k} agents", "ratio", "retries median", "retries max"],
            ratio_rows,
        )
    )
    note(f"ratio = median claims/s with {k} agents / median claims/s with 1 agent (above 1: the team is faster).")
    note("retries/claim = OpResult.retries of each successful next(): its pushes refused because the branch moved.")
    note("refused/accepted = every refused push (counted through RetryPolicy.sleep, also in calls that end with")
    note("  NothingReady) per accepted push. last next() = each agent's final call, which ends with NothingReady;")
    note("  an agent that keeps losing races spends the run inside it, which OpResult.retries never shows.")
    note(f"this machine has {os.cpu_count()} CPUs: {k} processes share them, so the ratio is bounded by")
    note("CPU as much as by contention on the branch.")
    for p in problems:
        note(f"PROBLEM: {p}")
    results["summary"] = summary
    results["problems"] = problems
    return results
