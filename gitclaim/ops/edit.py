"""Editing plain fields of a task, validated like a task read from the branch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import audit, rules
from ..cas import NoWrite, Write
from ..errors import BadInput, SchemaTooNew, StoreCorrupt
from ..ids import task_path, validate_id
from ..model import Task, dump_task
from ..results import OpResult, with_commit
from .add import check_new_deps

if TYPE_CHECKING:
    from ..api import Store
    from ..snapshot import Snapshot

_LIST_FIELDS = ("tags", "depends_on", "acceptance")
_OWNED = ("schema", "id", "claim", "created_at", "created_by", "waiting_for", "fail_reason", "notes", "result")


def edit(store: Store, task_id: str, changes: Mapping[str, str], agent: str | None) -> OpResult:
    """Change plain fields; see :meth:`gitclaim.api.Store.edit`."""
    who = store.whoami(agent)
    validate_id(task_id)
    if not changes:
        raise BadInput("nothing to change: give --set FIELD=VALUE")

    def decide(snap: Snapshot, attempt: int) -> Write[OpResult] | NoWrite[OpResult]:
        task = snap.require(task_id)
        new = edited(task, changes)
        if new == task:  # a re-run, or values it already has: nothing to write
            return NoWrite(OpResult("edit", task, task.state.value, None, False, 0))
        if new.state is not task.state:
            rules.check_move("edit", task, who)
            if new.state not in rules.PLANNING:
                raise BadInput(
                    f"edit moves a task only among {', '.join(sorted(s.value for s in rules.PLANNING))};"
                    f" use a verb to make it {new.state.value}",
                    task=task_id,
                )
        if new.depends_on != task.depends_on or (new.parent != task.parent and new.parent is not None):
            check_new_deps(snap, {new.id: new})
        record = audit.Record(
            op="edit",
            agent=who,
            task=task.id,
            from_state=task.state.value,
            to_state=new.state.value,
            fields=tuple(sorted(changes)),
        )
        msg = audit.write(f"edit {task.id} by {who}: {', '.join(sorted(changes))}", record)
        return Write({task_path(task.id): dump_task(new)}, msg, OpResult("edit", new, task.state.value, None, True, 0))

    return with_commit(store._mutate(who, decide))


def edited(task: Task, changes: Mapping[str, str]) -> Task:
    """The task with ``changes`` applied and validated. Pure. Raises :class:`BadInput`."""
    import tomllib

    from ..model import SCHEMA, task_from_doc, task_to_doc

    doc = task_to_doc(task)
    if "parent" in changes:  # schema 2's parent, not a field of one's own (a schema 1 task keeps its schema)
        doc["schema"] = SCHEMA
    for key, text in changes.items():
        if key in _OWNED:
            raise BadInput(f"{key!r} cannot be edited; claims change only through verbs", field=key)
        if not key or not all(ch.isalnum() or ch in "_-" for ch in key):
            raise BadInput(f"illegal field name {key!r}", field=key)
        value: Any
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        if key in _LIST_FIELDS and not isinstance(value, list):
            value = [part.strip() for part in text.split(",") if part.strip()]
        if key in ("title", "description", "state", "parent") and not isinstance(value, str):
            value = text
        if key == "parent" and not value.strip():
            doc.pop("parent", None)  # --set parent= : no parent any more
            continue
        doc[key] = value
    try:
        return task_from_doc(doc, expected_id=task.id, path=f"task {task.id}")
    except (StoreCorrupt, SchemaTooNew) as e:
        raise BadInput(e.message.replace(f"task {task.id}: ", f"edit of {task.id}: ", 1), task=task.id) from None
