"""Reading the audit trail back from the store branch.

A task's history is found by its file, not by what commit messages say: every
commit whose tree changes the task's path is in it, whatever its trailers
claim, and the move it reports for that task (from, to) is read from the
task file before and after. Nothing is cut: the whole first-parent chain is
walked (a lookup of one path per commit), and callers that print a part say so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

from .. import audit, rules
from ..errors import SchemaTooNew, StoreCorrupt
from ..ids import task_path
from ..model import parse_task

if TYPE_CHECKING:
    from ..api import Store


def entries(store: Store, tip: str, limit: int | None = None) -> Iterator[audit.Entry]:
    """The audit entries from ``tip`` back along first parents, newest first."""
    for c in store.repo.walk(tip, limit):
        yield audit.entry(c.id, c.time, c.author, c.message)


def task_entries(store: Store, tip: str, task_id: str) -> Iterator[audit.Entry]:
    """Every commit that changed ``task_id``'s file, newest first, each with
    the task's own move (``from``/``to`` read from its file before and after)."""
    repo = store.repo
    path = task_path(task_id)
    after = repo.tree_entry_id(repo.commit_tree(tip), path)
    for c in repo.walk(tip):
        before = repo.tree_entry_id(repo.commit_tree(c.parents[0]), path) if c.parents else None
        if before != after:
            e = audit.entry(c.id, c.time, c.author, c.message)
            yield replace(e, from_state=_state(store, before, task_id), to_state=_state(store, after, task_id))
        after = before


def _state(store: Store, blob: str | None, task_id: str) -> str | None:
    if blob is None:
        return None
    try:
        return parse_task(store.repo.blob(blob), expected_id=task_id, path=task_path(task_id)).state.value
    except (StoreCorrupt, SchemaTooNew):
        return "unreadable"


def last_change(store: Store, tip: str, task_id: str) -> audit.Entry | None:
    """The latest commit that changed ``task_id``, however far back."""
    return next(task_entries(store, tip, task_id), None)


def find_claim(store: Store, tip: str, task_id: str, holder: str) -> str | None:
    """The commit that made ``holder`` the holder of ``task_id``, or None."""
    for e in task_entries(store, tip, task_id):
        rec = e.record
        if rec is None or rec.task != task_id:
            continue
        effect = rules.claim_effect(rec.op)
        if effect is rules.ClaimEffect.SET and rec.agent == holder:
            return e.commit
        if effect is rules.ClaimEffect.TRANSFER and rec.to_agent == holder:
            return e.commit
    return None
