"""``watch``: the store's changes as they land, one audit entry per operation.

It fetches once, then looks at the remote's tip with a bounded backoff
(:mod:`gitclaim.ops.poll`) and fetches only when it moved; each new commit
is read back as ``log`` reads it (:func:`gitclaim.ops.history.read`), oldest first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from . import history
from .poll import Poller

if TYPE_CHECKING:
    from .. import audit
    from ..api import Store

MOST = 1000  # new commits shown after one look; more (a compaction, a long absence): the newest this many


def watch(store: Store, poller: Poller | None = None) -> Iterator[audit.Entry]:
    """Every operation that lands on the store branch from now on, oldest first,
    for ever (until the caller stops iterating). Raises :class:`RemoteUnreachable`."""
    poll = poller or Poller(store)
    last = poll.fetch()
    while True:
        if poll.wait() is None:
            continue
        new = poll.fetch()
        commits = store.repo.new_commits(last, new, MOST)
        if commits is None:
            commits = list(store.repo.walk(new, MOST))[::-1]
        for c in commits:
            yield history.read(store, c)
        last = new
