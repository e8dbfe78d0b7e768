"""The compare-and-swap loop every mutation goes through.

1. Take a tip T: the last known tip (optimistic) or a fresh fetch.
2. ``decide(snapshot at T, attempt)`` checks the change with pure rules and
   returns the files to write, or that nothing needs writing, or raises.
3. Write one commit whose parent is T.
4. Push it without force, expecting the remote still at T. Accepted: done.
   Moved: fetch, go to 2 with the new tip, after a jittered backoff, within
   bounded tries and time.

A refusal or a "nothing to do" decided on an optimistic (possibly stale) tip
is never reported: it is re-decided on a fresh fetch first. Success is
reported only after the remote accepted the push.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from .errors import (
    AuthFailed,
    GitclaimError,
    LocalIOError,
    RemoteUnreachable,
    RetriesExhausted,
    StoreLocked,
    UntrustedRemote,
)
from .git import BranchMoved, Repo, Transport, require
from .snapshot import Snapshot

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Tries, backoff, jitter and deadline for the loop; clock and sleep are injectable."""

    max_attempts: int = 400
    deadline: float = 60.0
    base_delay: float = 0.01
    max_delay: float = 0.08
    max_paced: float = 2.0  # the longest wait counted in the agent's own pace
    # A lock that refuses every try for this long (and this many tries) was left
    # by a killed writer: say so at once instead of retrying for a minute.
    lock_patience: float = 2.0
    lock_tries: int = 8
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, retry: int, pace: Pace | None = None) -> float:
        """How long to wait before try ``retry`` (0: a mutation's first try).

        Without a measured ``pace``: full jitter, uniform in
        [0, min(max, base * 2**(retry-1))], and no wait before a first try.

        With one, the wait is counted in the agent's own tries (its ``cycle``:
        fetch, decide, commit, push), so that it means the same on a local
        path (milliseconds) and over a network, and scaled by the number of
        agents seen writing lately: while the branch is busy (this agent lost
        a race lately) a first try waits up to ``writers`` cycles and try
        ``r`` up to ``writers / 2**r`` cycles (at least one). The agent that
        lost most often goes first, the one that just won waits its turn, and
        the others spread out instead of colliding on every tip. A fixed or
        growing backoff does the opposite: the winner pushes its next change at
        once while the losers sleep for many of its cycles, and one busy agent
        starves the rest (Ethernet's "capture effect"; measured: 7 of 8 agents
        without a single task in a hot loop). An agent alone never waits.
        """
        if pace is None or pace.cycle <= 0.0:
            if retry == 0:
                return 0.0
            return self.rng.uniform(0.0, min(self.max_delay, self.base_delay * (2 ** (retry - 1))))
        now = self.clock()
        if retry == 0 and now >= pace.busy_until:
            return 0.0
        window = pace.cycle * max(1.0, pace.writers(now) / 2**retry)
        return self.rng.uniform(0.0, min(self.max_paced, window))


@dataclass
class Pace:
    """What one agent has learnt of the store branch's traffic, kept across its
    mutations (each :class:`gitclaim.api.Store` holds one): how long one try
    takes, who else wrote lately, and until when the branch counts as busy
    because this agent lost a race. Read by :meth:`RetryPolicy.delay`."""

    cycle: float = 0.0  # seconds of one try, smoothed (0: none measured yet)
    busy_until: float = float("-inf")  # on the policy's clock
    memory: int = 50  # a lost race keeps the branch busy, and a writer counted, this many cycles
    tip: str | None = None  # the last tip seen: the commits after it tell who else writes
    seen: dict[str, float] = field(default_factory=dict)  # author -> when last seen writing

    def tried(self, seconds: float) -> None:
        self.cycle = seconds if self.cycle <= 0.0 else 0.8 * self.cycle + 0.2 * seconds

    def lost(self, now: float) -> None:
        self.busy_until = now + self.memory * self.cycle

    def saw(self, authors: Iterable[str], now: float) -> None:
        for a in authors:
            self.seen[a] = now

    def writers(self, now: float) -> int:
        """The agents seen writing within the memory (this one included)."""
        horizon = now - self.memory * self.cycle
        for a in [a for a, t in self.seen.items() if t < horizon]:
            del self.seen[a]
        return len(self.seen) + 1


@dataclass(frozen=True)
class Write(Generic[T]):
    files: Mapping[str, bytes | None]  # None: the commit removes the file
    message: str
    value: T


@dataclass(frozen=True)
class NoWrite(Generic[T]):
    value: T


@dataclass(frozen=True)
class Outcome(Generic[T]):
    value: T
    commit: str | None  # the pushed commit; None when nothing was written
    base: str  # the tip the decision was made on
    retries: int  # pushes refused because the branch had moved


Decide = Callable[[Snapshot, int], "Write[T] | NoWrite[T]"]


def mutate(
    repo: Repo,
    transport: Transport,
    decide: Callable[[Snapshot, int], Write[T] | NoWrite[T]],
    *,
    author: str,
    email: str,
    now: Callable[[], datetime],
    policy: RetryPolicy,
    snapshot: Callable[[str], Snapshot],
    optimistic: bool = True,
    before_push: Callable[[str, str, list[str]], None] | None = None,
    sign: Callable[[bytes], str] | None = None,
    pace: Pace | None = None,
) -> Outcome[T]:
    """Run one mutation to completion. ``before_push(base, new, paths)`` may veto a
    commit by raising; ``sign`` signs each commit; ``pace``: the agent's
    measured pace, which the waits are counted in (:meth:`RetryPolicy.delay`).
    Raises what ``decide`` raises (on fresh data), :class:`RetriesExhausted`,
    :class:`RemoteUnreachable`, :class:`PushRejected`.
    """
    tries = _Tries(policy, transport.branch, pace)
    wait = policy.delay(0, pace)
    if wait > 0.0:
        policy.sleep(wait)  # the branch is busy: let the agents that lost races go first
    started = policy.clock()
    tip = transport.local_tip() if optimistic else None
    fresh = tip is None or not repo.has(tip)
    if fresh:
        tip = transport.fetch()
    while True:
        base = require(tip, transport.remote, transport.branch)
        if pace is not None:
            _watch(pace, repo, base, author, policy.clock())
        try:
            decision = decide(snapshot(base), tries.attempt)
        except GitclaimError as e:
            if not fresh:
                tip, fresh = transport.fetch(), True
                continue
            if tries.retries:
                e.details.setdefault("retries", tries.retries)  # races lost on the way to this answer
            raise
        if isinstance(decision, NoWrite):
            if not fresh:
                tip, fresh = transport.fetch(), True
                continue
            return Outcome(decision.value, None, base, tries.retries)
        new = repo.write_commit(base, decision.files, decision.message, author, email, now(), sign=sign)
        paths = list(decision.files)
        if before_push is not None:
            before_push(base, new, paths)  # the validator and the clone's pre-push hook
        try:
            transport.push(new, expected=base, paths=paths)
        except RemoteUnreachable as lost:
            _cut_off(lost, transport, new)  # returns only if the commit landed after all
        except StoreLocked as e:
            e.details.setdefault("retries", tries.retries)
            raise
        except BranchMoved as moved:
            tries.lost(moved, started)  # waits, or gives up
            started = policy.clock()
            tip, fresh = transport.fetch(), True
            continue
        if pace is not None:
            pace.tried(policy.clock() - started)
            pace.tip = new
        return Outcome(decision.value, new, base, tries.retries)


def _watch(pace: Pace, repo: Repo, tip: str, author: str, now: float) -> None:
    """Note who else wrote between the last tip this agent saw and ``tip``."""
    if pace.tip is not None and pace.tip != tip and repo.has(pace.tip):
        new = repo.new_commits(pace.tip, tip, 64)
        pace.saw((c.author for c in new or () if c.author != author), now)
    pace.tip = tip


class _Tries:
    """The retry budget of one mutation: tries, time, and a lock that never lets go."""

    def __init__(self, policy: RetryPolicy, branch: str, pace: Pace | None = None) -> None:
        self.policy = policy
        self.branch = branch
        self.pace = pace
        self.started = policy.clock()
        self.retries = 0  # pushes refused because the branch had moved
        self.attempt = 0
        self.locked: tuple[float, int] | None = None  # since when, and how many tries in a row, a lock refused us

    def lost(self, moved: BranchMoved, started: float) -> None:
        """A push was refused because the branch moved (the try began at
        ``started``): wait before the next try, or raise :class:`StoreLocked`
        or :class:`RetriesExhausted`."""
        p = self.policy
        if self.pace is not None:
            self.pace.tried(p.clock() - started)
            self.pace.lost(p.clock())
        self.retries += 1
        self.attempt += 1
        if moved.lock is None:
            self.locked = None
        else:
            since, count = self.locked if self.locked is not None else (p.clock(), 0)
            self.locked = (since, count + 1)
            if count + 1 >= p.lock_tries and p.clock() - since >= p.lock_patience:
                stuck = StoreLocked.naming(moved.lock, self.branch)
                stuck.details["retries"] = self.retries
                raise stuck from None
        if self.retries >= p.max_attempts or p.clock() - self.started > p.deadline:
            raise RetriesExhausted(
                f"gave up after {self.retries} tries in {p.clock() - self.started:.1f}s:"
                " the store branch kept moving; nothing was changed",
                retries=self.retries,
            ) from None
        # A lock is waited out on the clock, not in the agent's pace: a paced
        # wait on a local path is a few milliseconds, and the budget of tries
        # would be spent before a killed writer's lock could be told from a live one.
        p.sleep(p.delay(self.retries, self.pace if moved.lock is None else None))


def _cut_off(lost: RemoteUnreachable, transport: Transport, new: str) -> None:
    """The connection may have dropped after the remote accepted the push: ask
    the remote whether our commit landed, never guess. Returns if it did."""
    if isinstance(lost, (AuthFailed, UntrustedRemote)):
        raise lost  # refused before anything was sent: nothing can have landed
    if _landed(transport, new):
        return
    lost.message += (
        "; whether the push landed is unknown until the remote answers: run the same command"
        " again (claim ID and the verbs on one task recognise their own change if it landed;"
        " after next, see `gitclaim list --holder AGENT`)"
    )
    lost.args = (lost.message,)
    raise lost


def _landed(transport: Transport, new: str) -> bool:
    """Is ``new`` on the remote branch (its tip, or behind changes made since)?"""
    try:
        tip = transport.fetch()
    except (RemoteUnreachable, LocalIOError):
        return False  # cannot tell: the caller says so, and the same command again converges
    return tip is not None and transport.repo.is_ancestor(new, tip)
