"""``done ID --next``: finish one task and claim the next best ready one, in
one commit and one push.

The commit makes two moves by one agent: the ``done`` of the finished task
(its ``Gitclaim-*`` trailers, as a plain ``done`` writes them) and the claim
(or takeover) of the next, in ``Gitclaim-Then-*`` trailers
(:attr:`gitclaim.audit.Record.then`). The validator classifies each file's
move on its own, and :mod:`gitclaim.labels` checks each half of the trailers
against its task's move, so the hooks and ``verify`` accept it as they
accept each move alone.

On a lost race the compare-and-swap loop decides again on the new tip: a
next task taken meanwhile is not ready any more and another is picked; a
finished task that changed (its lease taken over, say) refuses the ``done``
as ``done`` alone would. With nothing ready the commit finishes the task
alone and the result says so (``nothing_ready``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from .. import audit, rules
from ..cas import NoWrite, Write
from ..errors import NotClaimable, NotHolder
from ..ids import validate_id
from ..model import Task, utc
from ..results import DoneResult, OpResult
from . import claim, history, verbs

if TYPE_CHECKING:
    from ..api import Store
    from ..snapshot import Snapshot


def done_next(store: Store, task_id: str, agent: str | None, result: str | None, ttl: int | str | None) -> DoneResult:
    """See :meth:`gitclaim.api.Store.done` with ``next=True``."""
    text = verbs.result_text(result) if result is not None else None
    who = store.whoami(agent)
    validate_id(task_id)
    seconds = claim.lease(ttl)
    spec = verbs.VERBS["done"]

    def decide(snap: Snapshot, attempt: int) -> Write[DoneResult] | NoWrite[DoneResult]:
        task = snap.require(task_id)
        try:
            row = rules.check_move("done", task, who)
        except (NotClaimable, NotHolder):
            again = _landed_before(store, snap, task, who, text, seconds, attempt)
            if again is not None:
                return again
            raise
        done = verbs.plan(store, snap, spec, row, task, who, None, {}, text)
        step = _next_step(store, snap, done.value.task, who, seconds, attempt)
        finished = DoneResult.of(done.value)
        if step is None:
            return Write(done.files, audit.write(done.subject, done.record), replace(finished, nothing_ready=True))
        files = {**done.files, **step.files}
        message = audit.write(f"{done.subject}; {step.subject}", replace(done.record, then=step.record))
        return Write(files, message, replace(finished, next=step.value))

    out = store._mutate(who, decide)
    value: DoneResult = out.value
    then = value.next
    if then is not None and then.changed:
        then = replace(then, commit=out.commit, retries=out.retries)
    return replace(value, commit=out.commit if value.changed else None, retries=out.retries, next=then)


def _next_step(
    store: Store, snap: Snapshot, finished: Task, who: str, ttl: int | None, attempt: int
) -> verbs.Step | None:
    """The claim of the best ready task once ``finished`` is done (a task that
    waited only for it is ready too), or None when nothing is ready."""
    tasks, _problems = snap.scan()
    after = [finished if t.id == finished.id else t for t in tasks]
    by_id = {t.id: t for t in after}
    now = utc(store.clock())
    seen = claim.alive_if_needed(store, after, now)
    cands = [t for t in rules.ready(after, by_id, now=now, last_seen=seen) if t.holder != who]
    if not cands:
        return None
    pick = claim.pick(cands, attempt, store.rng)
    step = claim.plan(store, snap, pick, who, "next", ttl, seen, deps={d: by_id.get(d) for d in pick.depends_on})
    return step if isinstance(step, verbs.Step) else None


def _landed_before(
    store: Store, snap: Snapshot, task: Task, who: str, text: str | None, ttl: int | None, attempt: int
) -> Write[DoneResult] | NoWrite[DoneResult] | None:
    """The task is done by ``who`` already: the same command again after a cut
    connection, or after a plain ``done``. Report the claim the earlier commit
    made where ``who`` still holds it; otherwise claim the next task now (a
    commit of that claim alone). None: the task was not finished by ``who``."""
    last = history.last_change(store, snap.commit, task.id)
    rec = last.record if last is not None else None
    if rec is None or (rec.op, rec.agent, rec.to_state) != ("done", who, task.state.value):
        return None
    if text is not None and (task.result is None or task.result.text != text):
        return None
    assert last is not None
    finished = DoneResult("done", task, rec.from_state or task.state.value, None, False, 0)
    full = audit.read(store.repo.commit_info(last.commit).message)
    then = full.then if full is not None else None
    held = snap.task(then.task) if then is not None and then.task is not None else None
    if then is not None and held is not None and held.holder == who:
        return NoWrite(replace(finished, next=OpResult("next", held, then.from_state or "todo", None, False, 0)))
    step = _next_step(store, snap, task, who, ttl, attempt)
    if step is None:
        return NoWrite(replace(finished, nothing_ready=True))
    return Write(step.files, audit.write(step.subject, step.record), replace(finished, next=step.value))
