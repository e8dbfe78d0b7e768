"""``next --wait``: block until a task is claimable, then claim it.

Between tries it looks at the remote's tip only (:mod:`gitclaim.ops.poll`) and
fetches when the tip moved. A task can also become claimable without the
branch moving: a lease runs out. So it tries again, too, when the earliest
lease it knows of (with the holders' heartbeats) has run out.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .. import rules, units
from ..errors import NothingReady
from ..model import State, utc
from . import claim as claim_ops
from .poll import Poller

if TYPE_CHECKING:
    from ..api import Store
    from ..results import OpResult


def timeout_seconds(timeout: int | str | None) -> float | None:
    return None if timeout is None else float(units.seconds(timeout, "--timeout", allow_zero=True))


def next_wait(
    store: Store, agent: str | None, ttl: int | str | None, timeout: int | str | None, poller: Poller | None = None
) -> OpResult:
    """Claim the best ready task, waiting up to ``timeout`` (None: for ever) for
    one. Raises :class:`NothingReady` (details: ``timed_out``, ``waited``) when
    the time runs out, and what :meth:`gitclaim.api.Store.next` raises."""
    limit = timeout_seconds(timeout)
    claim_ops.lease(ttl)  # a bad --ttl is refused before waiting, not after
    store.whoami(agent)
    start = time.monotonic()
    deadline = None if limit is None else start + limit
    poll = poller or Poller(store)
    while True:
        try:
            return claim_ops.next_task(store, agent, ttl)
        except NothingReady as e:
            last = e
        poll.tip = store.transport.local_tip()  # what the failed try read
        wake = _next_expiry(store, poll.tip)
        until = deadline if wake is None else min(deadline or wake, wake)
        if poll.wait(until) is None and deadline is not None and time.monotonic() >= deadline:
            waited = round(time.monotonic() - start, 3)
            raise NothingReady(
                f"nothing became ready to claim within {limit or 0:g} s: {last.message}",
                hint="run it again to wait longer, or add tasks (gitclaim add)",
                tasks=last.details.get("tasks"),
                held=last.details.get("held"),
                timed_out=True,
                waited=waited,
                looks=poll.looks,
            ) from None


def _next_expiry(store: Store, tip: str | None) -> float | None:
    """When (``time.monotonic``) the first lease known at ``tip`` runs out, or None."""
    if tip is None or not store.repo.has(tip):
        return None
    tasks, _ = store.snapshot(tip).scan()
    now = utc(store.clock())
    seen = store._seen_for_check
    soonest: datetime | None = None
    for t in tasks:
        if t.state is State.ACTIVE and t.claim is not None:
            expiry = rules.lease_expiry(t.claim, seen.get(t.claim.holder))
            if expiry is not None and expiry > now and (soonest is None or expiry < soonest):
                soonest = expiry
    if soonest is None:
        return None
    return time.monotonic() + (soonest - now + timedelta(milliseconds=50)).total_seconds()
