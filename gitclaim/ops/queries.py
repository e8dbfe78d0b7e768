"""The read operations: listings, one task, the views and the audit trail."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from .. import audit, readindex, rules, selection, units, views
from ..errors import BadInput, NotFound
from ..ids import task_path, validate_id
from ..model import STATES, Problem, Task, parse_task, utc
from ..results import History, Listing, TaskView
from . import history

if TYPE_CHECKING:
    from ..api import Store

GRAPH_FORMATS = ("dot", "mermaid")


def list_tasks(
    store: Store,
    state: Iterable[str] | None,
    holder: str | None,
    tag: str | None,
    offline: bool,
    limit: int | None = None,
    parent: str | None = None,
) -> Listing:
    """Tasks filtered by state(s), holder, tag and parent, ordered like ``ready``."""
    states = set(state) if state else None
    if states:
        unknown = states - set(STATES)
        if unknown:
            raise BadInput(
                f"unknown state(s) {', '.join(sorted(unknown))}; known: {', '.join(STATES)}",
                states=sorted(unknown),
            )
    _limit(limit)
    if parent is not None:
        validate_id(parent)
    tip = store._tip(offline)
    idx = store.read_index(tip)
    return _listing(store, tip, idx, selection.listed(idx.rows(), states, holder, tag, parent), limit)


def ready(store: Store, offline: bool, limit: int | None = None) -> Listing:
    _limit(limit)
    tip = store._tip(offline)
    idx = store.read_index(tip)
    return _listing(store, tip, idx, selection.ready(idx.rows(), idx.archived_done()), limit)


def _limit(limit: int | None) -> None:
    if limit is not None:
        units.count(limit, "--limit", lowest=0)


def _listing(store: Store, tip: str, idx: readindex.Index, rows: list[readindex.Row], limit: int | None) -> Listing:
    shown, total, cut = views.first(rows, limit)
    return Listing(_tasks(store, tip, shown), _problems(idx), tip, total, cut)


def _problems(idx: readindex.Index) -> tuple[Problem, ...]:
    return tuple(Problem(*p) for p in idx.problems())


def _tasks(store: Store, tip: str, rows: Sequence[readindex.Row]) -> tuple[Task, ...]:
    """The whole tasks of ``rows``, read from their files (through the parse cache when they are many)."""
    if len(rows) > 500:
        by_id = {t.id: t for t in store.snapshot(tip).scan()[0]}
        return tuple(by_id[r[readindex.ID]] for r in rows)
    repo = store.repo
    return tuple(
        parse_task(repo.blob(r[readindex.BLOB]), expected_id=r[readindex.ID], path=task_path(r[readindex.ID]))
        for r in rows
    )


def show(store: Store, task_id: str, offline: bool, history_limit: int | None) -> TaskView:
    validate_id(task_id)
    if history_limit is not None:
        units.count(history_limit, "history_limit", lowest=0)
    tip = store._tip(offline)
    snap = store.snapshot(tip)
    task = snap.find(task_id)
    if task is None:
        raise NotFound(f"no task {task_id!r} in the store", task=task_id)
    deps = snap.tasks_by_id(task.depends_on)
    said: list[str] = []
    hist, cut = _first(history.task_entries(store, tip, task_id, reach=not offline, said=said), history_limit)
    kids = selection.listed(store.read_index(tip).rows(), None, None, None, task_id)
    children = tuple({"id": r[readindex.ID], "state": r[readindex.STATE], "title": r[readindex.TITLE]} for r in kids)
    blockers = tuple(rules.blockers(task, deps))
    gone = snap.task(task_id) is None
    return TaskView(task, blockers, hist, tip, history_cut=cut, children=children, fetched=tuple(said), archived=gone)


def board(store: Store, offline: bool, limit: int | None = None) -> views.Board:
    _limit(limit)
    tip = store._tip(offline)
    idx = store.read_index(tip)
    pages = {s: views.first(rows, limit) for s, rows in selection.columns(idx.rows()).items()}
    shown = {s: _tasks(store, tip, p[0]) for s, p in pages.items()}
    totals = {s: p[1] for s, p in pages.items()}
    return views.Board(shown, tip, _problems(idx), totals, any(p[2] for p in pages.values()))


def who(store: Store, offline: bool, limit: int | None = None) -> views.Who:
    _limit(limit)
    tip = store._tip(offline)
    tasks, problems = store.snapshot(tip).scan()
    seen = {} if offline else store.transport.fetch_alive()
    return views.who(tasks, tip, utc(store.clock()), seen, problems, limit)


def blocked(store: Store, offline: bool, limit: int | None = None) -> views.BlockedView:
    _limit(limit)
    tip = store._tip(offline)
    snap = store.snapshot(tip)
    tasks, problems = snap.scan()
    return views.blocked(tasks, tip, problems, limit, snap.archived_deps(tasks))


def graph(store: Store, fmt: str, offline: bool) -> views.Graph:
    if fmt not in GRAPH_FORMATS:
        raise BadInput(f"unknown graph format {fmt!r}: use dot or mermaid", format=fmt)
    tip = store._tip(offline)
    snap = store.snapshot(tip)
    tasks, problems = snap.scan()
    text = views.dot(tasks, snap.archived_deps(tasks)) if fmt == "dot" else views.mermaid(tasks)
    return views.Graph(fmt, text, tip, tuple(problems))


def log(store: Store, task_id: str | None, limit: int | None, offline: bool) -> History:
    if task_id is not None:
        validate_id(task_id)
    if limit is not None:
        units.count(limit, "--limit")
    tip = store._tip(offline)
    reach, said = not offline, list[str]()
    found = (
        history.entries(store, tip, reach=reach, said=said)
        if task_id is None
        else history.task_entries(store, tip, task_id, reach=reach, said=said)
    )
    entries, cut = _first(found, limit)
    return History(entries, tip, cut=cut, fetched=tuple(said))


def _first(entries: Iterator[audit.Entry], limit: int | None) -> tuple[tuple[audit.Entry, ...], bool]:
    """At most ``limit`` entries, and whether there were more."""
    if limit is None:
        return tuple(entries), False
    out = tuple(itertools.islice(entries, limit))
    return out, next(entries, None) is not None
