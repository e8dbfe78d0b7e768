"""Views for humans reviewing the queue: board, who holds what, what is
blocked, the dependency graph. Pure functions over tasks; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from .model import STATES, State, Task, _iso, sort_key_ready
from .rules import blockers, lease_expiry

if TYPE_CHECKING:
    from .model import Problem

# Every view names a task the same way, as the whole task object under "task"
# (or "tasks"), and says which files it could not read under "problems", as
# list and ready do.


def _problems(problems: Sequence[Problem]) -> list[dict[str, str]]:
    return [p.to_json() for p in problems]


T = TypeVar("T")


def first(items: Sequence[T], limit: int | None) -> tuple[tuple[T, ...], int, bool]:
    """The first ``limit`` items (all with None), how many there are, and whether some were left out."""
    if limit is None or len(items) <= limit:
        return tuple(items), len(items), False
    return tuple(items[:limit]), len(items), True


@dataclass(frozen=True)
class Board:
    columns: Mapping[str, tuple[Task, ...]]  # every state, in lifecycle order; each its first ``limit``
    commit: str
    problems: tuple[Problem, ...] = ()
    totals: Mapping[str, int] | None = None  # tasks per state (None: as many as shown)
    cut: bool = False

    def total(self, state: str) -> int:
        return len(self.columns[state]) if self.totals is None else self.totals[state]

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": {s: [t.to_json() for t in ts] for s, ts in self.columns.items()},
            "problems": _problems(self.problems),
            "commit": self.commit,
            "total": {s: self.total(s) for s in self.columns},
            "cut": self.cut,
        }


def board(tasks: Iterable[Task], commit: str, problems: Sequence[Problem] = (), limit: int | None = None) -> Board:
    cols: dict[str, list[Task]] = {s: [] for s in STATES}
    for t in tasks:
        cols[t.state.value].append(t)
    pages = {s: first(sorted(ts, key=sort_key_ready), limit) for s, ts in cols.items()}
    return Board(
        {s: p[0] for s, p in pages.items()},
        commit,
        tuple(problems),
        {s: p[1] for s, p in pages.items()},
        any(p[2] for p in pages.values()),
    )


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
    total: int | None = None
    cut: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "holdings": [h.to_json() for h in self.holdings],
            "problems": _problems(self.problems),
            "commit": self.commit,
            "now": _iso(self.now),
            "total": len(self.holdings) if self.total is None else self.total,
            "cut": self.cut,
        }


def who(
    tasks: Iterable[Task],
    commit: str,
    now: datetime,
    seen: Mapping[str, datetime],
    problems: Sequence[Problem] = (),
    limit: int | None = None,
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
    shown, total, cut = first(out, limit)
    return Who(shown, commit, now, tuple(problems), total, cut)


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
    total: int | None = None
    cut: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": [b.to_json() for b in self.tasks],
            "problems": _problems(self.problems),
            "commit": self.commit,
            "total": len(self.tasks) if self.total is None else self.total,
            "cut": self.cut,
        }


def blocked(
    tasks: Sequence[Task],
    commit: str,
    problems: Sequence[Problem] = (),
    limit: int | None = None,
    archived: Mapping[str, Task] | None = None,
) -> BlockedView:
    """Claimable-state tasks waiting on dependencies, and tasks waiting on the
    outside. ``archived``: the archived tasks some of them depend on."""
    by_id = {**(archived or {}), **{t.id: t for t in tasks}}
    out = []
    for t in sorted(tasks, key=sort_key_ready):
        if t.state is State.WAITING:
            out.append(BlockedTask(t, tuple(blockers(t, by_id)), t.waiting_for))
        elif t.state in (State.TODO, State.BACKLOG):
            b = blockers(t, by_id)
            if b:
                out.append(BlockedTask(t, tuple(b), None))
    shown, total, cut = first(out, limit)
    return BlockedView(shown, commit, tuple(problems), total, cut)


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


def _by_parent(tasks: Sequence[Task]) -> list[tuple[str | None, list[Task]]]:
    """Tasks by id, grouped by parent: those without one first (a graph without
    parents is drawn as before), then each parent's children."""
    groups: dict[str | None, list[Task]] = {}
    for t in sorted(tasks, key=lambda t: t.id):
        groups.setdefault(t.parent, []).append(t)
    return sorted(groups.items(), key=lambda kv: (kv[0] is not None, kv[0] or ""))


def dot(tasks: Sequence[Task], archived: Iterable[str] = ()) -> str:
    """Graphviz DOT: an edge from each dependency to the task that waits for it
    (dashed from one that is archived or missing)."""
    lines = ["digraph gitclaim {", "  rankdir=LR;", "  node [shape=box, style=rounded];"]
    colors = {"done": "gray60", "active": "orange", "failed": "red", "cancelled": "gray80", "waiting": "purple"}
    ids, gone = {t.id for t in tasks}, set(archived)
    for parent, members in _by_parent(tasks):
        pad = "  " if parent is None else "    "
        if parent is not None:  # a cluster of the parent's children (the parent's own node stays outside)
            lines.append(f'  subgraph "cluster_{parent}" {{')
            lines.append(f'    label="{parent}"; style=dashed;')
        for t in members:
            label = _label(t.title).replace("\\", "\\\\").replace('"', '\\"')
            color = colors.get(t.state.value, "black")
            lines.append(f'{pad}"{t.id}" [label="{t.id}\\n{label}\\n({t.state.value})", color="{color}"];')
        if parent is not None:
            lines.append("  }")
    for t in sorted(tasks, key=lambda t: t.id):
        for d in t.depends_on:
            style = "" if d in ids else f' [style=dashed, label="{"archived" if d in gone else "missing"}"]'
            lines.append(f'  "{d}" -> "{t.id}"{style};')
    lines.append("}")
    return "\n".join(lines) + "\n"


def mermaid(tasks: Sequence[Task]) -> str:
    """Mermaid flowchart: ids are escaped into node names Mermaid accepts."""

    def node(i: str) -> str:
        # injective: "a-b" and "a_b" must not become one node
        return "t_" + re.sub(r"[^A-Za-z0-9]", lambda m: f"_{ord(m.group()):02x}", i)

    lines = ["flowchart LR"]
    for parent, members in _by_parent(tasks):
        pad = "  " if parent is None else "    "
        if parent is not None:
            lines.append(f'  subgraph {node("group " + parent)}["{parent}"]')
        for t in members:
            label = _label(t.title).replace('"', "'")
            lines.append(f'{pad}{node(t.id)}["{t.id}: {label} ({t.state.value})"]')
        if parent is not None:
            lines.append("  end")
    for t in sorted(tasks, key=lambda t: t.id):
        for d in t.depends_on:
            lines.append(f"  {node(d)} --> {node(t.id)}")
    return "\n".join(lines) + "\n"
