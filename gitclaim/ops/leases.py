"""Leases: heartbeats on the agent's own ref, stale claims, and reaping them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .. import audit, rules, units, views
from ..cas import NoWrite, Write
from ..identity import agent_email
from ..ids import task_path
from ..model import State, Task, _iso, dump_task, utc
from ..results import HeartbeatResult, ReapResult, StaleClaim, StaleReport

if TYPE_CHECKING:
    from ..api import Store
    from ..snapshot import Snapshot


def heartbeat(store: Store, agent: str | None) -> HeartbeatResult:
    """Renew every lease the agent holds; see :meth:`gitclaim.api.Store.heartbeat`."""
    who = store.whoami(agent)
    now = beat(store, who)
    tip = store.transport.local_tip()
    holding: tuple[str, ...] = ()
    if tip is not None and store.repo.has(tip):
        tasks, _ = store.snapshot(tip).scan()
        holding = tuple(t.id for t in tasks if t.holder == who)
    return HeartbeatResult(who, now, holding)


def beat(store: Store, who: str) -> datetime:
    """Overwrite the agent's liveness ref with a commit saying "alive at now"."""
    now = utc(store.clock())
    msg = audit.write(f"heartbeat {who}", audit.Record(op="heartbeat", agent=who, at=_iso(now) or ""))
    commit = store.repo.write_commit(None, {}, msg, who, agent_email(who), now, sign=store.sign)
    store.transport.push_alive(who, commit)
    return now


def silence(silent_after: int | str | None, *, allow_zero: bool) -> int | None:
    """How long a holder must have been quiet to count. ``stale`` takes 0 (list
    every claim with its last heartbeat); ``reap`` does not (it would return
    claims whose holders beat a moment ago)."""
    if silent_after is None:
        return None
    return units.seconds(silent_after, "--silent-after", allow_zero=allow_zero)


def stale(store: Store, silent_after: int | str | None, offline: bool, limit: int | None = None) -> StaleReport:
    """Expired (and silent) claims; see :meth:`gitclaim.api.Store.stale`."""
    quiet = silence(silent_after, allow_zero=True)
    if limit is not None:
        units.count(limit, "--limit", lowest=0)
    tip = store._tip(offline)
    tasks, problems = store.snapshot(tip).scan()
    now = utc(store.clock())
    seen = store.transport.fetch_alive()
    shown, total, cut = views.first(stale_claims(tasks, now, seen, quiet), limit)
    return StaleReport(shown, tip, now, tuple(problems), total, cut)


def reap(store: Store, silent_after: int | str | None, agent: str | None) -> ReapResult:
    """Return stale claims to the queue in one commit; see :meth:`gitclaim.api.Store.reap`."""
    who = store.whoami(agent)
    quiet = silence(silent_after, allow_zero=False)

    def decide(snap: Snapshot, attempt: int) -> Write[tuple[StaleClaim, ...]] | NoWrite[tuple[StaleClaim, ...]]:
        tasks, _ = snap.scan()
        found = stale_claims(tasks, utc(store.clock()), store.transport.fetch_alive(), quiet)
        if not found:
            return NoWrite(())
        files = {
            task_path(st.task.id): dump_task(st.task.evolve(state=State.TODO, claim=None, waiting_for=None))
            for st in found
        }
        record = audit.Record(
            op="reap", agent=who, cleared=tuple(audit.Cleared(st.task.id, st.holder, st.reason) for st in found)
        )
        subject = f"reap {len(found)} stale claims by {who}: {audit.ids_phrase(st.task.id for st in found)}"
        return Write(files, audit.write(subject, record), tuple(found))

    out = store._mutate(who, decide)
    return ReapResult(out.value, out.commit, out.retries)


def stale_claims(
    tasks: Iterable[Task], now: datetime, seen: Mapping[str, datetime], silent_after: int | None
) -> list[StaleClaim]:
    """Claims whose lease expired, or whose holder was silent ``silent_after`` seconds."""
    out = []
    for t in tasks:
        c = t.claim
        if c is None or t.state not in rules.CLAIMED:
            continue
        last = seen.get(c.holder)
        expiry = rules.lease_expiry(c, last)
        if t.state is State.ACTIVE and expiry is not None and now >= expiry:
            out.append(StaleClaim(t, c.holder, c.claimed_at, expiry, last, "expired"))
        elif silent_after is not None and now - max(last or c.claimed_at, c.claimed_at) >= timedelta(
            seconds=silent_after
        ):
            out.append(StaleClaim(t, c.holder, c.claimed_at, expiry, last, "silent"))
    out.sort(key=lambda s: s.task.id)
    return out
