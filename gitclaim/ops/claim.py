"""Claiming: ``claim ID``, ``next``, and taking over a claim whose lease expired."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from .. import audit, rules, units
from ..cas import NoWrite, Write
from ..errors import LostRace, NothingReady
from ..ids import task_path, validate_id
from ..model import State, Task, _iso, dump_task, utc
from ..results import OpResult, with_commit
from . import history
from .verbs import Step

if TYPE_CHECKING:
    from ..api import Store
    from ..snapshot import Snapshot

NEXT_SPREAD = 8  # after a lost race, `next` picks among this many best candidates

Decide = Callable[["Snapshot", int], "Write[OpResult] | NoWrite[OpResult]"]


def lease(ttl: int | str | None) -> int | None:
    """The lease a claim asks for, in seconds (0: none; None: the store's)."""
    return None if ttl is None else units.seconds(ttl, "--ttl", allow_zero=True)


def claim(store: Store, task_id: str, agent: str | None, ttl: int | str | None) -> OpResult:
    """Claim one task; see :meth:`gitclaim.api.Store.claim`."""
    who = store.whoami(agent)
    validate_id(task_id)
    seconds = lease(ttl)

    def decide(snap: Snapshot, attempt: int) -> Write[OpResult] | NoWrite[OpResult]:
        return _decision(store, snap, snap.require(task_id), who, "claim", seconds)

    # Only `claim ID` builds optimistically on the last tip this clone saw.
    return _run(store, who, decide, optimistic=True)


def next_task(store: Store, agent: str | None, ttl: int | str | None) -> OpResult:
    """Claim the best ready task; see :meth:`gitclaim.api.Store.next`."""
    who = store.whoami(agent)
    seconds = lease(ttl)

    def decide(snap: Snapshot, attempt: int) -> Write[OpResult] | NoWrite[OpResult]:
        tasks, _problems = snap.scan()
        now = utc(store.clock())
        seen = alive_if_needed(store, tasks, now)
        by_id = {**snap.archived_deps(tasks), **{t.id: t for t in tasks}}
        cands = rules.ready(tasks, by_id, now=now, last_seen=seen)
        if not cands:
            held = sum(1 for t in tasks if t.holder is not None)
            raise NothingReady(
                f"nothing is ready to claim ({len(tasks)} tasks, {held} held)",
                tasks=len(tasks),
                held=held,
            )
        return _decision(store, snap, pick(cands, attempt, store.rng), who, "next", seconds, seen)

    return _run(store, who, decide)


def pick(cands: list[Task], attempt: int, rng: random.Random) -> Task:
    """The ready task ``next`` (and ``done --next``) tries: the best one first;
    once it lost a race, one of the best few, so that racing agents stop
    colliding on one task."""
    if attempt == 0:
        return cands[0]
    return rng.choice(cands[:NEXT_SPREAD])


def alive_if_needed(store: Store, tasks: Iterable[Task], now: datetime) -> dict[str, datetime]:
    """Heartbeats, fetched only when some lease looks expired without them.

    The store keeps what it fetched: the validator of a takeover commit must
    judge the lease by the same heartbeats the decision used.
    """
    for t in tasks:
        if t.state is State.ACTIVE and t.claim is not None and rules.lease_expired(t.claim, now, None):
            store._seen_for_check = store.transport.fetch_alive()
            return store._seen_for_check
    return {}


def _decision(
    store: Store,
    snap: Snapshot,
    task: Task,
    who: str,
    op: str,
    ttl: int | None,
    seen: Mapping[str, datetime] | None = None,
) -> Write[OpResult] | NoWrite[OpResult]:
    step = plan(store, snap, task, who, op, ttl, seen)
    return step if isinstance(step, NoWrite) else step.write()


def plan(
    store: Store,
    snap: Snapshot,
    task: Task,
    who: str,
    op: str,
    ttl: int | None,
    seen: Mapping[str, datetime] | None = None,
    deps: Mapping[str, Task | None] | None = None,
) -> Step | NoWrite[OpResult]:
    """``who``'s claim (or takeover) of ``task``, planned on ``snap``; ``deps``:
    its dependencies as the commit will leave them (default: as ``snap`` has them)."""
    now = utc(store.clock())
    if deps is None:
        deps = snap.tasks_by_id(task.depends_on)
    if seen is None:
        seen = alive_if_needed(store, [task], now)
    verdict = rules.check_claim(task, deps, who, now=now, last_seen=seen)
    if verdict is rules.ClaimVerdict.ALREADY_HELD:
        return NoWrite(OpResult(op, task, task.state.value, None, False, 0))
    lease = snap.config.lease_seconds if ttl is None else ttl
    new = rules.apply_claim(task, who, now, lease or None)
    previous = None
    if verdict is rules.ClaimVerdict.TAKEOVER:
        assert task.claim is not None
        previous = task.claim.holder
        expiry = rules.lease_expiry(task.claim, seen.get(previous))
        subject = f"take over {task.id} from {previous} by {who} (lease expired {_iso(expiry)})"
    else:
        subject = f"claim {task.id} by {who}"
    record = audit.Record(
        op=verdict.value,  # claim or takeover
        agent=who,
        task=task.id,
        from_state=task.state.value,
        to_state=new.state.value,
        previous_holder=previous,
        lease_seconds=new.claim.lease_seconds if new.claim is not None else None,
    )
    result = OpResult(op, new, task.state.value, None, True, 0, previous_holder=previous)
    return Step({task_path(task.id): dump_task(new)}, subject, record, result)


def _run(store: Store, who: str, decide: Decide, *, optimistic: bool = False) -> OpResult:
    try:
        out = store._mutate(who, decide, optimistic=optimistic)
    except LostRace as e:
        # Name the commit that won, so the loser can read it.
        task = e.details.get("task")
        holder = e.details.get("holder")
        tip = store.transport.local_tip()
        if task and holder and tip:
            commit = history.find_claim(store, tip, task, holder)
            if commit:
                e.details["commit"] = commit
                e.message += f" (commit {commit[:10]})"
                e.args = (e.message,)
        raise
    return with_commit(out)
