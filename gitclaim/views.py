"""Views for humans reviewing the queue: board, who holds what, what is
blocked, the dependency graph. Pure functions over tasks; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .model import STATES, State, Task, _iso, sort_key_ready
from .rules import blockers, lease_expiry

if TYPE_CHECKING:
    from .model import Problem

# Every view names a task the same way, as the whole task object under "task"
# (or "tasks"), and says which files it could not read under "problems", as
# list and ready do.


def _problems(problems: Sequence[Problem]) -> list[dict[str, str]]:
    return [p.to_json() for p in problems]


@dataclass(frozen=True)
class Board:
    columns: Mapping[str, tuple[Task, ...]]  # every state, in lifecycle order
    commit: str
    problems: tuple[Problem, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": {s: [t.to_json() for t in ts] for s, ts in self.columns.items()},
            "problems": _problems(self.problems),
            "commit": self.commit,
        }


def board(tasks: Iterable[Task], commit: str, problems: Sequence[Problem] = ()) -> Board:
    cols: dict[str, list[Task]] = {s: [] for s in STATES}
    for t in tasks:
        cols[t.state.value].append(t)
    return Board({s: tuple(sorted(ts, key=sort_key_ready)) for s, ts in cols.items()}, commit, tuple(problems))


@dataclass(frozen=True)
class HeldClaim:
    """A claim as the views show it: the task, its holder, since when, and its lease."""

    task: Task
    holder: str
    claimed_at: datetime
    lease_expires: datetime | None
    last_seen: datetime | None

    def claim_json(self) -> dict[str, Any]:
        return {
            "task": self.task.to_json(),
            "holder": self.holder,
            "claimed_at": _iso(self.claimed_at),
            "lease_expires": _iso(self.lease_expires),
            "last_seen": _iso(self.last_seen),
        }


@dataclass(frozen=True)
class Holding(HeldClaim):
    lease: str  # "none", "live" or "expired"

    def to_json(self) -> dict[str, Any]:
        return {**self.claim_json(), "lease": self.lease}


@dataclass(frozen=True)
class Who:
    holdings: tuple[Holding, ...]
    commit: str
    now: datetime
    problems: tuple[Problem, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "holdings": [h.to_json() for h in self.holdings],
            "problems": _problems(self.problems),
            "commit": self.commit,
            "now": _iso(self.now),
        }


def who(
    tasks: Iterable[Task], commit: str, now: datetime, seen: Mapping[str, datetime], problems: Sequence[Problem] = ()
) -> Who:
    out = []
    for t in tasks:
        if t.claim is None or t.state not in (State.ACTIVE, State.WAITING, State.REVIEW):
            continue
        last = seen.get(t.claim.holder)
        expiry = lease_expiry(t.claim, last)
        status = "none" if expiry is None else ("expired" if now >= expiry else "live")
        out.append(Holding(t, t.claim.holder, t.claim.claimed_at, expiry, last, status))
    out.sort(key=lambda h: (h.holder, h.claimed_at, h.task.id))
    return Who(tuple(out), commit, now, tuple(problems))


@dataclass(frozen=True)
class BlockedTask:
    task: Task
    blockers: tuple[dict[str, str], ...]  # dependencies not done, with their states
    waiting_for: str | None

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task.to_json(), "blockers": list(self.blockers), "waiting_for": self.waiting_for}


@dataclass(frozen=True)
class BlockedView:
    tasks: tuple[BlockedTask, ...]
    commit: str
    problems: tuple[Problem, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"tasks": [b.to_json() for b in self.tasks], "problems": _problems(self.problems), "commit": self.commit}


def blocked(tasks: Sequence[Task], commit: str, problems: Sequence[Problem] = ()) -> BlockedView:
    """Claimable-state tasks waiting on dependencies, and tasks waiting on the outside."""
    by_id = {t.id: t for t in tasks}
    out = []
    for t in sorted(tasks, key=sort_key_ready):
        if t.state is State.WAITING:
            out.append(BlockedTask(t, tuple(blockers(t, by_id)), t.waiting_for))
        elif t.state in (State.TODO, State.BACKLOG):
            b = blockers(t, by_id)
            if b:
                out.append(BlockedTask(t, tuple(b), None))
    return BlockedView(tuple(out), commit, tuple(problems))


@dataclass(frozen=True)
class Graph:
    format: str
    text: str
    commit: str
    problems: tuple[Problem, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"format": self.format, "text": self.text, "problems": _problems(self.problems), "commit": self.commit}


def _label(text: str, limit: int = 40) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def dot(tasks: Sequence[Task]) -> str:
    """Graphviz DOT: an edge from each dependency to the task that waits for it."""
    lines = ["digraph gitclaim {", "  rankdir=LR;", "  node [shape=box, style=rounded];"]
    colors = {"done": "gray60", "active": "orange", "failed": "red", "cancelled": "gray80", "waiting": "purple"}
    ids = {t.id for t in tasks}
    for t in sorted(tasks, key=lambda t: t.id):
        label = _label(t.title).replace("\\", "\\\\").replace('"', '\\"')
        color = colors.get(t.state.value, "black")
        lines.append(f'  "{t.id}" [label="{t.id}\\n{label}\\n({t.state.value})", color="{color}"];')
    for t in sorted(tasks, key=lambda t: t.id):
        for d in t.depends_on:
            style = "" if d in ids else ' [style=dashed, label="missing"]'
            lines.append(f'  "{d}" -> "{t.id}"{style};')
    lines.append("}")
    return "\n".join(lines) + "\n"


def mermaid(tasks: Sequence[Task]) -> str:
    """Mermaid flowchart: ids are escaped into node names Mermaid accepts."""

    def node(i: str) -> str:
        # injective: "a-b" and "a_b" must not become one node
        return "t_" + re.sub(r"[^A-Za-z0-9]", lambda m: f"_{ord(m.group()):02x}", i)

    lines = ["flowchart LR"]
    for t in sorted(tasks, key=lambda t: t.id):
        label = _label(t.title).replace('"', "'")
        lines.append(f'  {node(t.id)}["{t.id}: {label} ({t.state.value})"]')
    for t in sorted(tasks, key=lambda t: t.id):
        for d in t.depends_on:
            lines.append(f"  {node(d)} --> {node(t.id)}")
    return "\n".join(lines) + "\n"
