"""Human output of ``run`` and ``watch`` (with rich, like :mod:`gitclaim.render`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from rich.markup import escape

if TYPE_CHECKING:
    from .audit import Entry
    from .results import RunResult


def ran(r: RunResult) -> None:
    from .render import _short, _state, out

    if not r.runs:
        out.print("[dim]nothing was ready; nothing ran[/]")
    for x in r.runs:
        how = x.signal or f"exit {x.status}"
        taken = f" by {escape(x.holder)}" if x.outcome == "lost" and x.holder else ""
        out.print(
            f"{escape(x.outcome)}{taken} [bold]{escape(x.task.id)}[/] → {_state(x.state)}  [dim]COMMAND {how},"
            f" {x.seconds:.1f} s, {x.renewals} renewals" + (f", commit {_short(x.commit)}" if x.commit else "") + "[/]"
        )


def watched(entries: Iterator[Entry]) -> None:
    """One line per operation, as each lands (flushed: a pipe sees it at once)."""
    from .render import _entry_line, out

    for e in entries:
        _entry_line(e)
        out.file.flush()
