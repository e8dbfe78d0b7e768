"""Plain aligned rows: what a listing prints when its output is not a terminal.

Pure and cheap (no rich): it costs time in proportion to the rows printed,
and the fast read path (:mod:`gitclaim.fastread`) prints with it too.
"""

from __future__ import annotations

from collections.abc import Sequence

LISTING = ("ID", "STATE", "P", "HOLDER", "DEPENDS", "TITLE")


def cell(text: str) -> str:
    # one row per task: a line break inside a value must not start another
    return text.replace("\r", " ").replace("\n", " ")


def aligned(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The rows under their headers, columns two spaces apart, without trailing spaces."""
    table = [tuple(headers), *(tuple(r) for r in rows)]
    widths = [max(map(len, column)) for column in zip(*table, strict=True)]
    # one %-format per row: the padding is done in C, which keeps 10,000 rows cheap
    line = "  ".join(f"%-{w}s" for w in widths[:-1]) + "  %s"
    return "\n".join((line % r).rstrip() for r in table) + "\n"


def more(shown: int, total: int) -> str:
    """The line under a cut listing."""
    return f"... {total - shown:,} more of {total:,} (--all shows every one, --limit N the first N)"
