"""Reading the audit trail back from the store branch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from .. import audit, rules

if TYPE_CHECKING:
    from ..api import Store

RERUN_WINDOW = 2000  # commits searched for a command's own earlier change
CLAIM_WINDOW = 5000  # commits searched for the claim that beat us


def entries(store: Store, tip: str, limit: int | None) -> Iterator[audit.Entry]:
    """The audit entries from ``tip`` back along first parents, newest first."""
    for c in store.repo.walk(tip, limit):
        yield audit.entry(c.id, c.time, c.author, c.message)


def last_change(store: Store, tip: str, task_id: str, limit: int = RERUN_WINDOW) -> audit.Entry | None:
    """The latest commit (within ``limit``) that changed ``task_id``."""
    for e in entries(store, tip, limit):
        if task_id in e.tasks:
            return e
    return None


def find_claim(store: Store, tip: str, task_id: str, holder: str, limit: int = CLAIM_WINDOW) -> str | None:
    """The commit that made ``holder`` the holder of ``task_id``, or None."""
    for e in entries(store, tip, limit):
        rec = e.record
        if rec is None or rec.task != task_id:
            continue
        effect = rules.claim_effect(rec.op)
        if effect is rules.ClaimEffect.SET and rec.agent == holder:
            return e.commit
        if effect is rules.ClaimEffect.TRANSFER and rec.to_agent == holder:
            return e.commit
    return None
