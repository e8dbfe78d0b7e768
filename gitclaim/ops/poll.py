"""Waiting for the store to move, cheaply: ask the remote for the branch's tip
(no objects, what ``git ls-remote`` does) and fetch only when it moved, with a
bounded backoff between looks. ``next --wait``, ``watch`` and ``run``'s
lease check all look this way."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..git import require

if TYPE_CHECKING:
    from ..api import Store

FIRST_PAUSE = 0.05  # seconds: a look soon after a change, when more often follow
MAX_PAUSE = 1.0  # the bound: a change is seen within about this long (next --wait: claimed within 2 s)
GROWTH = 1.6


@dataclass
class Backoff:
    """Pauses that grow from ``first`` by ``growth`` up to ``most``, jittered by a
    tenth so that many waiting agents do not look at the same instant."""

    first: float = FIRST_PAUSE
    most: float = MAX_PAUSE
    growth: float = GROWTH
    rng: random.Random = field(default_factory=random.Random)
    _next: float = 0.0

    def reset(self) -> None:
        self._next = self.first

    def pause(self) -> float:
        now = self._next or self.first
        self._next = min(self.most, now * self.growth)
        return now * (0.9 + 0.2 * self.rng.random())


@dataclass
class Poller:
    """The tip this clone last fetched, and a cheap look at whether the remote moved."""

    store: Store
    tip: str | None = None
    sleep: Callable[[float], None] = time.sleep
    backoff: Backoff = field(default_factory=Backoff)
    looks: int = 0
    fetches: int = 0

    def fetch(self) -> str:
        """Fetch now: the remote's tip, its objects local. Raises :class:`NotInitialized`."""
        t = self.store.transport
        self.tip = require(t.fetch(), t.remote, t.branch)
        self.fetches += 1
        self.backoff.reset()
        return self.tip

    def moved(self) -> str | None:
        """One look: the remote's tip if it is not :attr:`tip` (nothing fetched), else None."""
        self.looks += 1
        seen = self.store.transport.peek()
        if seen is None or seen == self.tip:
            return None
        self.backoff.reset()
        return seen

    def wait(self, deadline: float | None = None) -> str | None:
        """Look, pausing between looks, until the branch moves (the remote's new
        tip, not fetched yet) or ``deadline`` (``time.monotonic``) passes (None)."""
        while True:
            tip = self.moved()
            if tip is not None:
                return tip
            pause = self.backoff.pause()
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                pause = min(pause, left)
            self.sleep(pause)
