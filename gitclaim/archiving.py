"""Archived tasks: the one legal change under ``archive/``. Pure: no I/O.

``gitclaim archive`` moves a finished task's file, byte for byte, from
``tasks/<xx>/<id>.toml`` to ``archive/<xx>/<id>.toml`` (the same fan-out).
The validator (:func:`gitclaim.validate.classify_commit`) hands every change
of a commit to :func:`split` first: a pair of changes that is exactly such a
move becomes the move ``archive``; every other change under ``archive/``
(a file added without its task leaving ``tasks/``, an edit, a deletion, a
move back) is a violation of rule ``archive``, and so is a new task whose id
an archived task holds. Only done and cancelled tasks are archived: nothing
holds them, nothing waits on them that their state does not already say.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import SchemaTooNew, StoreCorrupt
from .ids import ARCHIVE_DIR, fanout, is_valid_id, task_path
from .model import State, Task, parse_task

OP = "archive"
RULE = "archive"
FINISHED = frozenset({State.DONE, State.CANCELLED})

Change = tuple[bytes | None, bytes | None]


@dataclass(frozen=True, slots=True)
class Split:
    """A commit's changes, its archive moves taken out."""

    moved: tuple[Task, ...] = ()  # tasks moved to archive/ unchanged
    rest: Mapping[str, Change] = field(default_factory=dict)  # every other change, for the validator's loop
    found: tuple[tuple[str, str, str | None], ...] = ()  # (path, message, task): violations of rule archive


def archived_id(path: str) -> str | None:
    """The task id an ``archive/<xx>/<id>.toml`` path names, or None."""
    parts = path.split("/")
    if len(parts) == 3 and parts[0] == ARCHIVE_DIR and parts[2].endswith(".toml"):
        return parts[2][: -len(".toml")]
    return None


def split(changes: Mapping[str, Change]) -> Split:
    """Take the archive moves out of ``changes``, and refuse every other change under ``archive/``."""
    inside = [p for p in changes if p.startswith(ARCHIVE_DIR + "/")]
    if not inside:
        return Split(rest=changes)
    rest = dict(changes)
    moved: list[Task] = []
    found: list[tuple[str, str, str | None]] = []
    for path in sorted(inside):
        del rest[path]
        tid = archived_id(path)
        if tid is None or not is_valid_id(tid) or path.split("/")[1] != fanout(tid):
            found.append((path, f"only {ARCHIVE_DIR}/<xx>/<id>.toml files, moved there by gitclaim archive, belong"
                          f" under {ARCHIVE_DIR}/", tid))  # fmt: skip
            continue
        task, why = _move(tid, changes[path], changes.get(task_path(tid)))
        if task is None:
            found.append((path, why, tid))
            continue
        moved.append(task)
        del rest[task_path(tid)]
    return Split(tuple(moved), rest, tuple(found))


def _move(tid: str, archived: Change, live: Change | None) -> tuple[Task | None, str]:
    """The task ``archived`` moves from the live folder, or None and why it is no archive move."""
    before, after = archived
    if before is not None:
        verb = "deleted" if after is None else "changed"
        return None, f"archived task {tid} {verb}: an archived task is never changed, deleted or moved back"
    assert after is not None
    if live is None or live[1] is not None or live[0] is None:
        return None, f"{tid} appears in {ARCHIVE_DIR}/ without leaving {task_path(tid)}: archive moves a live task"
    if live[0] != after:
        return None, f"{tid} changed on its way to {ARCHIVE_DIR}/: archive moves a task's file unchanged"
    try:
        task = parse_task(after, expected_id=tid, path=task_path(tid))
    except (StoreCorrupt, SchemaTooNew) as e:
        return None, f"{tid} does not read, and is not archived: {e.message}"
    if task.state not in FINISHED or task.claim is not None:
        return None, f"{tid} is {task.state.value}: only done and cancelled tasks are archived"
    return task, ""
