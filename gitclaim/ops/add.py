"""Adding tasks: one, or many in one commit, with generated ids where none is given."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from .. import audit, rules
from ..cas import Write
from ..errors import AlreadyExists, BadInput, SchemaTooNew, StoreCorrupt
from ..ids import generate_id, task_path, validate_id
from ..model import DEFAULT_PRIORITY, Task, dump_task, task_from_input, utc
from ..results import AddResult

if TYPE_CHECKING:
    import random

    from ..api import Store
    from ..snapshot import Snapshot


def add_many(store: Store, entries: Sequence[Mapping[str, Any]], agent: str | None) -> AddResult:
    """Add many tasks in one commit; see :meth:`gitclaim.api.Store.add_many`."""
    who = store.whoami(agent)
    if not entries:
        raise BadInput("nothing to add")
    given = _given_ids(entries)

    def decide(snap: Snapshot, attempt: int) -> Write[tuple[Task, ...]]:
        cfg = snap.config
        now = utc(store.clock())
        ids = _ids(snap, given, store.rng, cfg.id_prefix)
        new_tasks = []
        for n, (tid, e) in enumerate(zip(ids, entries, strict=True)):
            if store.progress is not None and n % 200 == 0:
                store.progress("add", n, len(entries))
            raw = dict(e)
            raw["id"] = tid
            if raw.get("priority") is None:
                raw["priority"] = cfg.default_priority if cfg else DEFAULT_PRIORITY
            new_tasks.append(
                task_from_input(raw, default_priority=cfg.default_priority, created_at=now, created_by=who)
            )
        if store.progress is not None:
            store.progress("add", len(entries), len(entries))
        batch = {t.id: t for t in new_tasks}
        for gid in given:  # after validating the entries: bad input is reported first
            if gid is not None and snap.find(gid) is not None:
                raise AlreadyExists(f"a task {gid!r} already exists (live or archived)", task=gid)
        check_new_deps(snap, batch)
        files = {task_path(t.id): dump_task(t) for t in new_tasks}
        if len(new_tasks) == 1:
            subject = f"add {new_tasks[0].id} by {who}"
        else:
            subject = f"add {len(new_tasks)} tasks by {who}: {audit.ids_phrase(batch)}"
        record = audit.Record(op="add", agent=who, to_state=new_tasks[0].state.value, added=tuple(batch))
        return Write(files, audit.write(subject, record), tuple(new_tasks))

    out = store._mutate(who, decide)
    assert out.commit is not None
    return AddResult(out.value, out.commit, out.retries)


def _given_ids(entries: Sequence[Mapping[str, Any]]) -> list[str | None]:
    given: list[str | None] = []
    for i, e in enumerate(entries):
        if not isinstance(e, Mapping):
            raise BadInput(f"task #{i + 1} is not a table/object", index=i)
        raw_id = e.get("id")
        given.append(validate_id(raw_id) if raw_id is not None else None)
    counts = Counter(i for i in given if i is not None)
    dup = {i for i, n in counts.items() if n > 1}
    if dup:
        raise BadInput(f"the same id is given twice: {', '.join(sorted(dup))}", ids=sorted(dup))
    return given


def _ids(snap: Snapshot, given: Sequence[str | None], rng: random.Random, prefix: str) -> list[str]:
    """The given ids, and a fresh random one for each entry without."""
    ids: list[str] = []
    taken = {i for i in given if i is not None}
    for gid in given:
        if gid is not None:
            ids.append(gid)
            continue
        length = 4
        while True:
            cand = generate_id(rng, length, prefix)
            if cand not in taken and snap.find(cand) is None:
                break
            length += 1  # collision: lengthen, never reuse
        taken.add(cand)
        ids.append(cand)
    return ids


def check_new_deps(snap: Snapshot, batch: Mapping[str, Task]) -> None:
    """Every dependency exists (in the store or the batch); no cycle through the batch.

    Existing tasks cannot depend on a new id unless they name a missing
    task, so a cycle this change creates passes through the batch.
    """
    for t in batch.values():
        for d in t.depends_on:
            if d not in batch and snap.find(d) is None:
                raise BadInput(
                    f"{t.id} depends on {d!r}, which is neither in the store nor in this batch", task=t.id, dependency=d
                )

    @cache
    def lookup(task_id: str) -> Task | None:
        if task_id in batch:
            return batch[task_id]
        try:
            return snap.find(task_id)
        except (StoreCorrupt, SchemaTooNew):
            return None

    cycles = rules.dependency_cycles((t.id for t in batch.values() if t.depends_on), lookup)
    if cycles:
        raise BadInput(f"dependency cycle: {' -> '.join(cycles[0])}", cycle=cycles[0])
    check_parents(batch, lookup)


def check_parents(batch: Mapping[str, Task], lookup: Callable[[str], Task | None]) -> None:
    """Every parent named exists (in the store or the batch), and no chain of parents loops."""
    from ..validate import parent_cycle

    for t in batch.values():
        if t.parent is None:
            continue
        if lookup(t.parent) is None:
            raise BadInput(
                f"{t.id}'s parent {t.parent!r} is neither in the store nor in this batch", task=t.id, parent=t.parent
            )
        loop = parent_cycle(t.id, lookup)
        if loop is not None:
            raise BadInput(f"parent cycle: {' -> '.join(loop)}", cycle=loop)
