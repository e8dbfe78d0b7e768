"""``gitclaim demo``: a team of agent processes on a fresh local store.

Makes a bare repository as the shared remote in a temporary folder, seeds a
queue of tasks with dependencies, starts several agent processes (each with
its own clone) that loop ``next`` and ``done`` until the queue is empty, then
reads the commit log back and checks that no task was claimed twice.

``python -m gitclaim.demo agent CLONE NAME`` is one agent of that team.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BadInput, GitclaimError, NothingReady

_WORK = [
    "design the schema", "write the parser", "add input validation", "write unit tests",
    "build the CLI", "document the CLI", "add JSON output", "set up CI",
    "benchmark claims", "profile the hot path", "fix flaky test", "add retries",
    "write the README", "review error messages", "add a demo", "package a release",
    "add MCP server", "write API docs", "add caching", "measure cache hit rate",
    "harden the hooks", "add a server hook", "write operator guide", "tag v0.1",
]  # fmt: skip

DEADLINE = 300.0


@dataclass
class DemoResult:
    folder: str
    agents: list[str]
    tasks: list[dict[str, Any]]  # id, title, depends_on, claimed_by, done_by
    per_agent: dict[str, dict[str, int]]
    claims: int
    double_claims: list[str]
    not_done: list[str]
    retries: int
    seconds: float
    commits: int
    kept: bool
    ok: bool = field(default=True)

    def to_json(self) -> dict[str, Any]:
        return {
            "folder": self.folder if self.kept else None,
            "agents": self.agents,
            "tasks": self.tasks,
            "per_agent": self.per_agent,
            "claims": self.claims,
            "double_claims": self.double_claims,
            "not_done": self.not_done,
            "retries": self.retries,
            "seconds": round(self.seconds, 2),
            "commits": self.commits,
            "ok": self.ok,
        }


def _clone(remote: Path, dest: Path) -> Path:
    from .git.repo import init_repository

    return init_repository(dest, origin=str(remote))


def seed_tasks(n: int, rng: random.Random) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        title = _WORK[i % len(_WORK)] + (f" ({i // len(_WORK) + 1})" if i >= len(_WORK) else "")
        tid = f"t{i + 1:02d}-" + "-".join(title.lower().replace("(", "").replace(")", "").split()[:3])
        deps = sorted({out[j]["id"] for j in rng.sample(range(i), k=min(i, rng.choice((0, 0, 1, 1, 2))))})
        out.append({"id": tid, "title": title, "priority": rng.choice((0, 1, 2, 2, 3)), "depends_on": deps})
    return out


def run(
    agents: int = 4, tasks: int = 24, keep: bool = False, progress: bool = True, seed: int | None = None
) -> DemoResult:
    """Run the demo. Raises :class:`BadInput` for silly sizes, and
    :class:`GitclaimError` if an agent fails in a way the demo cannot explain.
    """
    from .api import Store

    if not 1 <= agents <= 32:
        raise BadInput("--agents must be between 1 and 32")
    if not 1 <= tasks <= 500:
        raise BadInput("--tasks must be between 1 and 500")
    rng = random.Random(seed)
    folder = Path(tempfile.mkdtemp(prefix="gitclaim-demo-"))
    started = time.monotonic()
    try:
        remote = folder / "shared.git"
        from .git.repo import init_repository

        init_repository(remote, bare=True)
        planner = Store(_clone(remote, folder / "planner"), agent="planner")
        planner.init()
        seeded = seed_tasks(tasks, rng)
        planner.add_many(seeded)
        names = [f"agent-{i + 1}" for i in range(agents)]
        if progress:
            sys.stderr.write(f"shared remote: a bare repository at {remote}\n")
            sys.stderr.write(f"{agents} agent processes, each with its own clone, working on {tasks} tasks...\n")
        procs = []
        for name in names:
            clone = _clone(remote, folder / name)
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "gitclaim.demo", "agent", str(clone), name],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        retries = 0
        failures = []
        for name, p in zip(names, procs, strict=True):
            out, err = p.communicate(timeout=DEADLINE + 30)
            if p.returncode != 0:
                failures.append(f"{name} exited {p.returncode}: {err.strip()[-500:]}")
                continue
            retries += int(json.loads(out.strip().splitlines()[-1])["retries"])
        if failures:
            raise GitclaimError("demo agents failed: " + "; ".join(failures))
        return _report(planner, folder, names, seeded, retries, time.monotonic() - started, keep)
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _report(
    planner: Any, folder: Path, names: list[str], seeded: list[dict[str, Any]], retries: int, secs: float, keep: bool
) -> DemoResult:
    history = planner.log()
    claimed_by: dict[str, list[str]] = defaultdict(list)
    done_by: dict[str, str] = {}
    per_agent: dict[str, Counter[str]] = {n: Counter() for n in names}
    for e in reversed(history.entries):
        for tid in e.tasks:
            if e.op == "claim":
                claimed_by[tid].append(e.agent)
            elif e.op == "done":
                done_by[tid] = e.agent
        if e.agent in per_agent and e.op in ("claim", "done"):
            per_agent[e.agent][e.op] += 1
    final = {t.id: t for t in planner.list().tasks}
    rows = [
        {
            "id": s["id"],
            "title": s["title"],
            "depends_on": s["depends_on"],
            "claimed_by": claimed_by.get(s["id"], []),
            "done_by": done_by.get(s["id"]),
            "state": final[s["id"]].state.value,
        }
        for s in seeded
    ]
    double = [r["id"] for r in rows if len(r["claimed_by"]) > 1]
    not_done = [r["id"] for r in rows if r["state"] != "done"]
    return DemoResult(
        folder=str(folder),
        agents=names,
        tasks=rows,
        per_agent={n: dict(c) for n, c in per_agent.items()},
        claims=sum(len(v) for v in claimed_by.values()),
        double_claims=double,
        not_done=not_done,
        retries=retries,
        seconds=secs,
        commits=len(history.entries),
        kept=keep,
        ok=not double and not not_done,
    )


def print_report(r: DemoResult, console: Any) -> None:
    from rich.table import Table

    table = Table(title="who did what (read back from the commit log)", box=None, header_style="bold")
    for col in ("task", "depends on", "claimed by", "done by"):
        table.add_column(col)
    for row in r.tasks:
        table.add_row(
            row["id"], ", ".join(row["depends_on"]) or "-", ", ".join(row["claimed_by"]), row["done_by"] or "-"
        )
    console.print(table)
    for name in r.agents:
        c = r.per_agent.get(name, {})
        console.print(f"  {name}: claimed {c.get('claim', 0)}, finished {c.get('done', 0)}")
    mark = "[green]✓[/]" if r.ok else "[red]✗[/]"
    console.print(
        f"{mark} {len(r.tasks)} tasks, {r.claims} claims, {len(r.double_claims)} claimed twice,"
        f" {len(r.not_done)} not done; {r.commits} commits; {r.retries} pushes retried after a race;"
        f" {r.seconds:.1f}s"
    )
    if r.kept:
        console.print(f"kept in {r.folder}; read the audit trail with: git -C {r.folder}/shared.git log gitclaim")


def agent_main(clone: str, name: str) -> int:
    from .api import Store

    store = Store(clone, agent=name)
    rng = random.Random()
    retries = 0
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            got = store.next()
        except NothingReady:
            open_tasks = [t for t in store.list().tasks if t.state.value != "done"]
            if not open_tasks:
                break
            time.sleep(0.05 + rng.random() * 0.05)  # others hold what is left: wait for their work
            continue
        retries += got.retries
        time.sleep(0.02 + rng.random() * 0.08)  # the "work"
        retries += store.done(got.task.id).retries
    else:
        raise GitclaimError(f"{name}: the queue did not drain within {DEADLINE:.0f}s")
    print(json.dumps({"agent": name, "retries": retries}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "agent":
        try:
            raise SystemExit(agent_main(sys.argv[2], sys.argv[3]))
        except GitclaimError as e:
            sys.stderr.write(f"{e.code}: {e.message}\n")
            raise SystemExit(int(e.exit_code)) from None
    sys.stderr.write("usage: python -m gitclaim.demo agent CLONE NAME\n")
    raise SystemExit(2)
