"""``archive``: move tasks finished before a date out of the live folder, in one commit.

A done or cancelled task's file moves unchanged from ``tasks/<xx>/<id>.toml``
to ``archive/<xx>/<id>.toml`` (:mod:`gitclaim.archiving` is the rule the
hooks hold it to). ``ready``, ``list``, ``board`` and every scan read only
``tasks/``; ``show`` and ``log`` still find an archived task and its whole
history; a dependency on it reads it where it is.

When a task finished is read from the history, not the file: the time of the
newest commit that moved it into done or cancelled (a note or an edit after
that does not count). The walk goes back from the tip until every finished
task's finish is found, through a shallow clone's missing history (fetched)
and on through compactions into their archive refs; a task whose finish lies
before the oldest commit this clone can read (a compaction whose archive is
gone) finished no later than that commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from .. import archiving, audit, compaction, units
from ..cas import NoWrite, Write
from ..errors import SchemaTooNew, StoreCorrupt
from ..ids import archive_path, task_path
from ..model import Task, _iso, parse_task, utc
from ..results import ArchiveResult
from . import history

if TYPE_CHECKING:
    from ..api import Store
    from ..snapshot import Snapshot

Found = dict[tuple[str, str], datetime | None]  # (task id, blob id) -> when it finished (None: unknown)


def archive(store: Store, done_before: str, dry_run: bool, agent: str | None) -> ArchiveResult:
    """See :meth:`gitclaim.api.Store.archive`."""
    who = store.whoami(agent)
    cut = units.moment(done_before, "--done-before", utc(store.clock()))
    known: Found = {}  # kept across retries: a file that did not change finished when it did

    def decide(snap: Snapshot, attempt: int) -> Write[tuple[str, ...]] | NoWrite[tuple[str, ...]]:
        tasks, _ = snap.scan()
        blobs = {
            t.id: snap.repo.tree_entry_id(snap.tree, task_path(t.id)) for t in tasks if t.state in archiving.FINISHED
        }
        ends = finish_times(store, snap.commit, {tid: b for tid, b in blobs.items() if b is not None}, known)
        ids = tuple(sorted(tid for tid, at in ends.items() if at is not None and at < cut))
        if not ids or dry_run:
            return NoWrite(ids)
        files: dict[str, bytes | None] = {}
        for tid in ids:
            files[task_path(tid)] = None
            files[archive_path(tid)] = snap.repo.blob(blobs[tid] or "")  # the same bytes: a move, not a rewrite
        record = audit.Record(op=archiving.OP, agent=who, archived=ids, before=_iso(cut))
        n = f"{len(ids)} task" + ("s" if len(ids) != 1 else "")
        subject = f"archive {n} finished before {_iso(cut)} by {who}: {audit.ids_phrase(ids)}"
        return Write(files, audit.write(subject, record), ids)

    out = store._mutate(who, decide)
    return ArchiveResult(cut, out.value, out.commit, out.commit is not None, dry_run, out.retries)


def finish_times(store: Store, tip: str, blobs: Mapping[str, str], known: Found) -> dict[str, datetime | None]:
    """When each task (id -> its file's blob id at ``tip``) last moved into
    done or cancelled, walking back from ``tip`` no further than needed.
    ``known`` remembers answers by (id, blob id) across calls."""
    out = {tid: known[tid, b] for tid, b in blobs.items() if (tid, b) in known}
    pending = {task_path(tid): tid for tid in blobs if tid not in out}
    floor: datetime | None = None  # the oldest compaction passed: what lies before it finished no later
    repo = store.repo
    walk = history.commits(store, tip, reach=True) if pending else iter(())
    for c in walk:
        if not pending:
            break
        if compaction.claim_of(c) is not None:
            floor = c.time
            continue
        tree = repo.commit_tree(c.id)
        parents = [repo.commit_tree(p) for p in c.parents]
        changed = repo.changed_blobs(parents[0] if parents else None, tree)
        for path, (old, new) in changed.items():
            tid = pending.get(path)
            if tid is None or new is None or any(repo.tree_entry_id(t, path) == new for t in parents[1:]):
                continue  # not waited for, or a merge that took a side's version (the side's commit moved it)
            if _finishes(repo.blob(new), None if old is None else repo.blob(old), tid):
                out[tid] = c.time
                del pending[path]
    for tid in pending.values():
        out[tid] = floor
    for tid, b in blobs.items():
        known[tid, b] = out[tid]
    return out


def _finishes(new: bytes, old: bytes | None, tid: str) -> bool:
    """Whether a change from ``old`` to ``new`` moved the task into done or cancelled."""
    after, before = _state(new, tid), _state(old, tid) if old is not None else None
    return after is not None and after.state in archiving.FINISHED and (before is None or before.state != after.state)


def _state(data: bytes, tid: str) -> Task | None:
    try:
        return parse_task(data, expected_id=tid, path=task_path(tid))
    except (StoreCorrupt, SchemaTooNew):
        return None
