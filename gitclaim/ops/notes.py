"""Notes: an agent's progress notes on a task, appended and never rewritten."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import audit
from ..cas import NoWrite, Write
from ..errors import BadInput
from ..ids import task_path, validate_id
from ..model import MAX_NOTE, Note, dump_task, utc
from ..results import OpResult, with_commit
from . import history

if TYPE_CHECKING:
    from ..api import Store
    from ..snapshot import Snapshot


def note(store: Store, task_id: str, text: str, agent: str | None) -> OpResult:
    """Append a timestamped note by the agent to one task, in one commit.
    Anyone may note a task in any state. Raises :class:`NotFound`, :class:`BadInput`."""
    who = store.whoami(agent)
    validate_id(task_id)
    text = text.strip()
    if not text:
        raise BadInput("the note is empty: say what you want to record")
    if len(text) > MAX_NOTE:
        raise BadInput(f"the note is {len(text)} characters, more than {MAX_NOTE}", length=len(text))
    now = utc(store.clock())

    def decide(snap: Snapshot, attempt: int) -> Write[OpResult] | NoWrite[OpResult]:
        task = snap.require(task_id)
        # the first push landed though its answer was lost: this note is there already
        mine = Note(now, who, text)
        if attempt and task.notes and task.notes[-1] == mine and _ours(store, snap.commit, task_id, who):
            return NoWrite(OpResult("note", task, task.state.value, None, False, 0))
        new = task.evolve(notes=(*task.notes, Note(now, who, text)))
        record = audit.Record(
            op="note", agent=who, task=task.id, from_state=task.state.value, to_state=task.state.value,
            note=audit.one_line(text),
        )  # fmt: skip
        msg = audit.write(f"note on {task.id} by {who}: {audit.one_line(text, 60)}", record)
        return Write({task_path(task.id): dump_task(new)}, msg, OpResult("note", new, task.state.value, None, True, 0))

    return with_commit(store._mutate(who, decide))


def _ours(store: Store, tip: str, task_id: str, who: str) -> bool:
    last = history.last_change(store, tip, task_id)
    return last is not None and last.record is not None and (last.record.op, last.record.agent) == ("note", who)
