"""Human output of ``compact`` and ``archive`` (with rich, like :mod:`gitclaim.render`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape

from .model import _iso

if TYPE_CHECKING:
    from .results import ArchiveResult, CompactResult


def compacted(r: CompactResult) -> None:
    from .render import out

    if not r.changed:
        out.print(f"nothing to compact: the store branch is one commit ({r.tip[:10]})")
        return
    out.print(
        f"compacted: {r.replaced:,} commits replaced by {r.tip[:10]}; the history is kept in {escape(r.archive or '')}"
        f" (at {r.old_tip[:10]})"
    )


def archived(r: ArchiveResult) -> None:
    from .audit import ids_phrase
    from .render import out

    when = _iso(r.before)
    if not r.archived:
        out.print(f"nothing to archive: no done or cancelled task finished before {when}; nothing was written")
        return
    n = f"{len(r.archived)} task" + ("s" if len(r.archived) != 1 else "")
    which = escape(ids_phrase(r.archived, 10))
    if r.dry_run:
        out.print(f"would archive {n} tasks finished before {when}: {which} [dim](dry run: nothing was written)[/]")
        return
    out.print(f"archived {n} tasks finished before {when} in {(r.commit or '')[:10]}: {which}")
