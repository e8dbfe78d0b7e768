"""The lifecycle verbs after a claim: one spec each, one engine for all.

Which verb is legal from which state, and for whom, is :data:`gitclaim.rules.MOVES`;
a :class:`Verb` says only what the verb's commit records: its subject, the
text it keeps, the agent it names, whether it clears downstream claims.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import audit, rules
from ..cas import NoWrite, Write
from ..errors import BadInput, NotClaimable, NotHolder
from ..ids import task_path, validate_agent, validate_id
from ..model import MAX_RESULT, Result, State, Task, dump_task, utc
from ..results import OpResult, with_commit
from . import history

if TYPE_CHECKING:
    from ..api import Store
    from ..snapshot import Snapshot


@dataclass(frozen=True)
class Text:
    """The text a verb records on the task and in its commit's ``Note``."""

    field: str  # the task field it sets
    limit: int
    missing: str  # the error when none is given


@dataclass(frozen=True)
class Verb:
    name: str
    subject: str = "{verb} {task} by {agent}"  # str.format: verb, task, agent, to, note
    text: Text | None = None
    if_previous: str = ""  # appended when the verb ended another agent's claim: {previous}
    if_cleared: str = ""  # appended when downstream claims were cleared: {cleared}
    clears_downstream: bool = False
    renews_lease: bool = False  # a sign of life: the holder's heartbeat is renewed first


VERBS: dict[str, Verb] = {
    v.name: v
    for v in (
        Verb("release"),
        Verb("done"),
        Verb("handoff", subject="hand off {task} from {agent} to {to}"),
        Verb(
            "wait",
            subject="wait on {task} by {agent}: {note}",
            text=Text("waiting_for", 200, "say what the task waits for (--for TEXT)"),
        ),
        Verb("resume", renews_lease=True),
        Verb("review"),
        Verb(
            "fail",
            subject="fail {task} by {agent}: {note}",
            text=Text("fail_reason", 500, "say why the task failed (--reason TEXT)"),
        ),
        Verb("cancel"),
        Verb("reopen"),
        Verb("reset", if_previous=" (was held by {previous})"),
        Verb("retry", if_cleared=", clearing {cleared} downstream claims", clears_downstream=True),
    )
}


@dataclass(frozen=True)
class Step:
    """One task's move, planned: the files it writes, its commit's subject and
    record, and its result. One step is one commit (:meth:`write`); ``done
    --next`` puts two in one (:mod:`gitclaim.ops.donenext`)."""

    files: dict[str, bytes]
    subject: str
    record: audit.Record
    value: OpResult

    def write(self) -> Write[OpResult]:
        return Write(self.files, audit.write(self.subject, self.record), self.value)


def run(
    store: Store, verb: str, task_id: str, agent: str | None, *, to: str | None = None, text: str = "",
    result: str | None = None,
) -> OpResult:  # fmt: skip
    """Apply ``verb`` to one task in one commit; ``result`` (done only) is
    recorded with it. Raises :class:`NotClaimable`, :class:`NotHolder`,
    :class:`NotFound`, :class:`BadInput`."""
    spec = VERBS[verb]
    if result is not None:
        result = result_text(result)
    if to is not None:
        validate_agent(to)
    fields: dict[str, str] = {}
    if spec.text is not None:
        fields[spec.text.field] = audit.one_line(text, spec.text.limit)
        if not fields[spec.text.field]:
            raise BadInput(spec.text.missing)
    who = store.whoami(agent)
    validate_id(task_id)
    if spec.renews_lease:
        from .leases import beat

        beat(store, who)

    def decide(snap: Snapshot, attempt: int) -> Write[OpResult] | NoWrite[OpResult]:
        task = snap.require(task_id)
        try:
            row = rules.check_move(verb, task, who)
        except (NotClaimable, NotHolder):
            again = _landed_before(store, snap, task, verb, who, to, fields)
            if again is not None and (result is None or (task.result is not None and task.result.text == result)):
                return NoWrite(again)
            raise
        return plan(store, snap, spec, row, task, who, to, fields, result).write()

    out = store._mutate(who, decide)
    return with_commit(out)


def result_text(text: str) -> str:
    """A result as given: kept as written (lines and all), bounded. Raises :class:`BadInput`."""
    text = text.strip("\n")
    if not text.strip():
        raise BadInput("the result is empty: say what the work produced (a link, a commit, a summary)")
    if len(text) > MAX_RESULT:
        raise BadInput(f"the result is {len(text)} characters, more than {MAX_RESULT}: link to it instead",
                       length=len(text))  # fmt: skip
    return text


def _landed_before(
    store: Store, snap: Snapshot, task: Task, verb: str, who: str, to: str | None, fields: Mapping[str, str]
) -> OpResult | None:
    """The same command run again after its first push was cut off (or
    interrupted) after landing: recognise the change as the caller's own
    instead of refusing what is already done."""
    last = history.last_change(store, snap.commit, task.id)
    rec = last.record if last is not None else None
    if (
        rec is None
        or (rec.op, rec.agent, rec.to_state, rec.to_agent) != (verb, who, task.state.value, to)
        or any(getattr(task, k) != v for k, v in fields.items())  # wait, fail: the same text
    ):
        return None
    return OpResult(verb, task, rec.from_state or task.state.value, None, False, 0)


def plan(
    store: Store,
    snap: Snapshot,
    spec: Verb,
    row: rules.Move,
    task: Task,
    who: str,
    to: str | None,
    fields: Mapping[str, str],
    result: str | None = None,
) -> Step:
    """The move ``row`` of ``task`` by ``who``, planned on ``snap``."""
    transfer = row.claim is rules.ClaimEffect.TRANSFER
    if transfer and task.holder == to:
        raise BadInput(f"{task.id} is already held by {to}", task=task.id, to=to)
    now = utc(store.clock())
    new = rules.apply_move(row, task, now=now, to=to, **fields)
    if result is not None:
        new = new.evolve(result=Result(result, who, now))
    files = {task_path(task.id): dump_task(new)}
    # whose claim this ended: another agent's, or the caller's own passed on
    previous = task.holder if transfer or task.holder not in (None, new.holder, who) else None
    cleared = _clear_downstream(snap, task, files) if spec.clears_downstream else []
    note = fields[spec.text.field] if spec.text is not None else None
    record = audit.Record(
        op=spec.name,
        agent=who,
        task=task.id,
        from_state=task.state.value,
        to_state=new.state.value,
        previous_holder=previous,
        to_agent=to,
        note=note,
        result=None if result is None else audit.one_line(result),
        cleared=tuple(audit.Cleared(t.id, holder) for t, holder in cleared),
    )
    subject = spec.subject.format(verb=spec.name, task=task.id, agent=who, to=to, note=note)
    if previous is not None and spec.if_previous:
        subject += spec.if_previous.format(previous=previous)
    if cleared and spec.if_cleared:
        subject += spec.if_cleared.format(cleared=len(cleared))
    also = tuple(t for t, _ in cleared)
    out = OpResult(spec.name, new, task.state.value, None, True, 0, previous_holder=previous, also=also)
    return Step(files, subject, record, out)


def _clear_downstream(snap: Snapshot, task: Task, files: dict[str, bytes]) -> list[tuple[Task, str]]:
    """Clear the claims of every task downstream of ``task``, which were built
    on its old result; returns each cleared task with its former holder."""
    tasks, _ = snap.scan()
    by_id = {t.id: t for t in tasks}
    out = []
    for down_id in rules.downstream(tasks, task.id):
        down = by_id[down_id]
        if down.state in rules.CLAIMED and down.claim is not None:
            cleared = down.evolve(state=State.TODO, claim=None, waiting_for=None)
            files[task_path(down_id)] = dump_task(cleared)
            out.append((cleared, down.claim.holder))
    return out
