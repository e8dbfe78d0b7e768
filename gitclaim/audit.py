"""Commit messages as the audit record. Pure.

A message is a subject a human scans in ``git log --oneline`` and a block of
``Gitclaim-*`` trailers that machines parse. Every value placed in a message
is a validated token (an id, an agent name, a state) or is flattened to one
line, so no input can forge a trailer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

TRAILER_PREFIX = "Gitclaim-"
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


def parse_trailers(msg: str) -> dict[str, list[str]]:
    """The ``Gitclaim-*`` trailers of the last paragraph, without the prefix."""
    paragraphs = [p for p in msg.strip().split("\n\n") if p.strip()]
    if len(paragraphs) < 2:
        return {}
    out: dict[str, list[str]] = {}
    for line in paragraphs[-1].splitlines():
        m = _TRAILER_RE.match(line)
        if m is None:
            return {}  # not a pure trailer block
        out.setdefault(m.group(1)[len(TRAILER_PREFIX) :], []).append(m.group(2).strip())
    return out


@dataclass(frozen=True, slots=True)
class Entry:
    """One operation read back from the log."""

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
        tasks=tuple(t.get("Task", [])),
        from_state=first("From"),
        to_state=first("To"),
        trailers={k: tuple(v) for k, v in t.items()},
    )


def ids_phrase(ids: Iterable[str], limit: int = 3) -> str:
    ids = list(ids)
    if len(ids) <= limit:
        return ", ".join(ids)
    return ", ".join(ids[:limit]) + f" and {len(ids) - limit} more"
