"""What ready, list and board select, over the read index's rows. Pure: no I/O.

The same rules as :func:`gitclaim.rules.ready` and :mod:`gitclaim.views` over
whole tasks, in the same order (priority, then age, then id); a test holds
the two in step on random stores.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .readindex import Row

# Row positions (gitclaim.readindex.Row); repeated here so that this module imports nothing.
ID: Final = 0
STATE: Final = 2
PRIORITY: Final = 3
CREATED: Final = 4
HOLDER: Final = 5
TAGS: Final = 6
DEPENDS: Final = 7
PARENT: Final = 10
CLAIMABLE = frozenset({"backlog", "todo"})
STATES = ("backlog", "todo", "active", "waiting", "review", "done", "cancelled", "someday", "failed")


def _key(r: Row) -> tuple[int, int, str]:
    return (r[PRIORITY], r[CREATED], r[ID])


def ready(rows: Sequence[Row], archived_done: Iterable[str] = ()) -> list[Row]:
    """Claimable now: a claimable state and every dependency done (``archived_done``:
    the archived done tasks they depend on); by priority, then age."""
    done = {r[ID] for r in rows if r[STATE] == "done"}
    done.update(archived_done)
    out = [r for r in rows if r[STATE] in CLAIMABLE and all(d in done for d in r[DEPENDS])]
    out.sort(key=_key)
    return out


def listed(
    rows: Iterable[Row], states: set[str] | None, holder: str | None, tag: str | None, parent: str | None = None
) -> list[Row]:
    out = [
        r
        for r in rows
        if (states is None or r[STATE] in states)
        and (holder is None or r[HOLDER] == holder)
        and (tag is None or tag in r[TAGS])
        and (parent is None or r[PARENT] == parent)
    ]
    out.sort(key=_key)
    return out


def columns(rows: Iterable[Row]) -> dict[str, list[Row]]:
    """Every state, in lifecycle order, its tasks by priority then age."""
    cols: dict[str, list[Row]] = {s: [] for s in STATES}
    for r in rows:
        cols[r[STATE]].append(r)
    for rs in cols.values():
        rs.sort(key=_key)
    return cols
