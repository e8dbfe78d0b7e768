"""Commit messages as the audit record. Pure.

A message is a subject a human scans in ``git log --oneline`` and a block of
``Gitclaim-*`` trailers that machines parse. Every value placed in a message
is a validated token (an id, an agent name, a state) or is flattened to one
line, so no input can forge a trailer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .validate import TaskMove

TRAILER_PREFIX = "Gitclaim-"
THEN = "Then-"  # the trailers of a second move in the same commit: Then-Op, Then-Task, ...
_TRAILER_RE = re.compile(r"^(Gitclaim-[A-Za-z-]+):[ \t]*(.*)$")


def one_line(text: str, limit: int = 200) -> str:
    """Collapse whitespace and control characters; bound the length."""
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def message(subject: str, trailers: Sequence[tuple[str, str]], body: str = "") -> str:
    lines = [one_line(subject, 120), ""]
    body_lines = [one_line(line, 500) for line in body.splitlines()]
    body_lines = [line for line in body_lines if line]
    if body_lines:
        # A body line that looks like a trailer would join the trailer block
        # only if it were the last paragraph; it never is, but indent it anyway.
        lines += ["    " + line for line in body_lines]
        lines.append("")
    lines += [f"{TRAILER_PREFIX}{k}: {one_line(v)}" for k, v in trailers]
    return "\n".join(lines) + "\n"


def trailer_lines(msg: str) -> list[tuple[str, str]]:
    """The ``Gitclaim-*`` trailers of the last paragraph in order, without the prefix."""
    paragraphs = [p for p in msg.strip().split("\n\n") if p.strip()]
    if len(paragraphs) < 2:
        return []
    out: list[tuple[str, str]] = []
    for line in paragraphs[-1].splitlines():
        m = _TRAILER_RE.match(line)
        if m is None:
            return []  # not a pure trailer block
        out.append((m.group(1)[len(TRAILER_PREFIX) :], m.group(2).strip()))
    return out


def parse_trailers(msg: str) -> dict[str, list[str]]:
    """The ``Gitclaim-*`` trailers of the last paragraph, by key, without the prefix."""
    out: dict[str, list[str]] = {}
    for key, value in trailer_lines(msg):
        out.setdefault(key, []).append(value)
    return out


@dataclass(frozen=True, slots=True)
class Cleared:
    """A claim another task lost in the same commit (retry's downstream, reap)."""

    task: str
    holder: str
    reason: str | None = None  # reap: "expired" or "silent"

    def text(self) -> str:
        return f"{self.task} from {self.holder}" + (f" ({self.reason})" if self.reason else "")


_CLEARED_RE = re.compile(r"^(\S+) from (\S+)(?: \((\w+)\))?$")


@dataclass(frozen=True, slots=True)
class Record:
    """What one operation's commit says it did: the typed form of its trailers.

    :func:`write` is the one place that turns a record into a message and
    :func:`read` the one place that reads it back; nothing else builds or
    parses trailers.
    """

    op: str
    agent: str
    task: str | None = None  # the one task the operation is about
    from_state: str | None = None
    to_state: str | None = None
    previous_holder: str | None = None  # whose claim it ended, when not the agent's own
    to_agent: str | None = None  # handoff: the new holder
    note: str | None = None  # wait, fail, note: the text it records (one line)
    result: str | None = None  # done: the result it records (one line)
    lease_seconds: int | None = None
    fields: tuple[str, ...] = ()  # edit: the fields changed
    added: tuple[str, ...] = ()  # add: the tasks created
    cleared: tuple[Cleared, ...] = ()  # claims of other tasks cleared in the same commit
    schema: str | None = None  # init
    at: str | None = None  # heartbeat
    compacts: str | None = None  # compact: the tip whose history it replaces
    archive: str | None = None  # compact: the ref that keeps that history
    archived: tuple[str, ...] = ()  # archive: the finished tasks moved out of the live folder
    before: str | None = None  # archive: the cut (tasks finished before it)
    # A second move of another task in the same commit, by the same agent
    # (``done --next``: the claim of the next task), as ``Then-*`` trailers.
    then: Record | None = None

    @property
    def tasks(self) -> tuple[str, ...]:
        """Every task the commit names, in the order of its trailers."""
        first = (self.task,) if self.task is not None else ()
        then = self.then.tasks if self.then is not None else ()
        return (*first, *self.added, *self.archived, *(c.task for c in self.cleared), *then)

    def about(self, task: str) -> Record:
        """The part of the record that speaks of ``task``: the second move's
        own record when it names ``task``, else this one without it."""
        if self.then is not None and self.then.task == task:
            return self.then
        return replace(self, then=None) if self.then is not None else self

    def trailers(self) -> list[tuple[str, str]]:
        out = [("Op", self.op)]
        if self.task is not None:
            out.append(("Task", self.task))
        out.append(("Agent", self.agent))
        optional = (
            ("Schema", self.schema),
            ("From", self.from_state),
            ("To", self.to_state),
            ("At", self.at),
            ("Previous-Holder", self.previous_holder),
            ("To-Agent", self.to_agent),
            ("Note", self.note),
            ("Result", self.result),
            ("Lease-Seconds", None if self.lease_seconds is None else str(self.lease_seconds)),
            ("Compacts", self.compacts),
            ("Archive", self.archive),
            ("Before", self.before),
        )
        out += [(k, v) for k, v in optional if v is not None]
        out += [("Field", f) for f in self.fields]
        out += [("Task", t) for t in (*self.added, *self.archived)]
        for c in self.cleared:
            out += [("Task", c.task), ("Cleared", c.text())]
        if self.then is not None:
            out += [(f"{THEN}{k}", v) for k, v in self.then.trailers() if k != "Agent"]
        return out


def write(subject: str, record: Record) -> str:
    """The commit message of ``record``: ``subject``, a blank line, its trailers."""
    return message(subject, record.trailers())


def read(msg: str) -> Record | None:
    """The record a commit message carries, or None when it has no ``Op`` and ``Agent``."""
    every = trailer_lines(msg)
    lines = [(k, v) for k, v in every if not k.startswith(THEN)]
    record = _read_lines(lines)
    then = [(k[len(THEN) :], v) for k, v in every if k.startswith(THEN)]
    if record is None or not then:
        return record
    # The second move is the same agent's; its Task trailers come first, as a single-task record's do.
    return replace(record, then=_read_lines([*then, ("Agent", record.agent)]))


def _read_lines(lines: list[tuple[str, str]]) -> Record | None:
    t: dict[str, list[str]] = {}
    for key, value in lines:
        t.setdefault(key, []).append(value)

    def first(key: str) -> str | None:
        v = t.get(key)
        return v[0] if v else None

    op, agent = first("Op"), first("Agent")
    if op is None or agent is None:
        return None
    cleared = []
    for text in t.get("Cleared", []):
        m = _CLEARED_RE.match(text)
        if m is not None:
            cleared.append(Cleared(m.group(1), m.group(2), m.group(3)))
    cleared_ids = {c.task for c in cleared}
    named = t.get("Task", [])
    # The first Task is the operation's own when the message names it before
    # the agent (every single-task operation); add names its tasks at the end.
    keys = [k for k, _ in lines]
    single = bool(named) and keys.index("Task") < keys.index("Agent")
    task = named[0] if single else None
    rest = named[1:] if single else named
    lease = first("Lease-Seconds")
    return Record(
        op=op,
        agent=agent,
        task=task,
        from_state=first("From"),
        to_state=first("To"),
        previous_holder=first("Previous-Holder"),
        to_agent=first("To-Agent"),
        note=first("Note"),
        result=first("Result"),
        lease_seconds=int(lease) if lease is not None and lease.isdigit() else None,
        fields=tuple(t.get("Field", [])),
        added=tuple(i for i in rest if i not in cleared_ids) if op != "archive" else (),
        archived=tuple(rest) if op == "archive" else (),
        before=first("Before"),
        cleared=tuple(cleared),
        schema=first("Schema"),
        at=first("At"),
        compacts=first("Compacts"),
        archive=first("Archive"),
    )


@dataclass(frozen=True, slots=True)
class Entry:
    """One commit of the audit trail, as its change bears it out.

    ``op``, ``from``/``to`` and ``moves`` are what the validator reads from
    the diff; ``agent`` is the commit's author. ``record`` and ``trailers``
    are kept only when the trailers agree with the change; ``violations``
    says what the change broke or what its trailers got wrong.
    """

    commit: str
    time: datetime
    author: str
    subject: str
    op: str | None
    agent: str | None
    tasks: tuple[str, ...]
    from_state: str | None
    to_state: str | None
    trailers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    record: Record | None = None  # None for a commit gitclaim did not write, or whose trailers disagree
    moves: tuple[TaskMove, ...] = ()
    violations: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        from .model import _iso

        return {
            "commit": self.commit,
            "time": _iso(self.time),
            "author": self.author,
            "subject": self.subject,
            "op": self.op,
            "agent": self.agent,
            "tasks": list(self.tasks),
            "from": self.from_state,
            "to": self.to_state,
            "trailers": {k: list(v) for k, v in self.trailers.items()},
            "moves": [m.to_json() for m in self.moves],
            "violations": list(self.violations),
        }


def entry(commit: str, time: datetime, author: str, msg: str) -> Entry:
    t = parse_trailers(msg)

    def first(key: str) -> str | None:
        v = t.get(key)
        return v[0] if v else None

    return Entry(
        commit=commit,
        time=time,
        author=author,
        subject=msg.split("\n", 1)[0],
        op=first("Op"),
        agent=first("Agent"),
        tasks=(*t.get("Task", []), *t.get(THEN + "Task", [])),
        from_state=first("From"),
        to_state=first("To"),
        trailers={k: tuple(v) for k, v in t.items()},
        record=read(msg),
    )


def ids_phrase(ids: Iterable[str], limit: int = 3) -> str:
    ids = list(ids)
    if len(ids) <= limit:
        return ", ".join(ids)
    return ", ".join(ids[:limit]) + f" and {len(ids) - limit} more"
