"""The read operations: listings, one task, the views and the audit trail."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from .. import audit, rules, units, views
from ..errors import BadInput
from ..ids import validate_id
from ..model import STATES, sort_key_ready, utc
from ..results import History, Listing, TaskView
from . import history

if TYPE_CHECKING:
    from ..api import Store

GRAPH_FORMATS = ("dot", "mermaid")


def list_tasks(
    store: Store, state: Iterable[str] | None, holder: str | None, tag: str | None, offline: bool
) -> Listing:
    """Tasks filtered by state(s), holder and tag, ordered like ``ready``."""
    tip = store._tip(offline)
    tasks, problems = store.snapshot(tip).scan()
    states = set(state) if state else None
    if states:
        unknown = states - set(STATES)
        if unknown:
            raise BadInput(
                f"unknown state(s) {', '.join(sorted(unknown))}; known: {', '.join(STATES)}",
                states=sorted(unknown),
            )
    out = [
        t
        for t in tasks
        if (states is None or t.state.value in states)
        and (holder is None or t.holder == holder)
        and (tag is None or tag in t.tags)
    ]
    out.sort(key=sort_key_ready)
    return Listing(tuple(out), tuple(problems), tip)


def ready(store: Store, offline: bool) -> Listing:
    tip = store._tip(offline)
    tasks, problems = store.snapshot(tip).scan()
    return Listing(tuple(rules.ready(tasks)), tuple(problems), tip)


def show(store: Store, task_id: str, offline: bool, history_limit: int | None) -> TaskView:
    validate_id(task_id)
    if history_limit is not None:
        units.count(history_limit, "history_limit", lowest=0)
    tip = store._tip(offline)
    snap = store.snapshot(tip)
    task = snap.require(task_id)
    deps = snap.tasks_by_id(task.depends_on)
    hist, cut = _first(history.task_entries(store, tip, task_id), history_limit)
    return TaskView(task, tuple(rules.blockers(task, deps)), hist, tip, history_cut=cut)


def board(store: Store, offline: bool) -> views.Board:
    tip = store._tip(offline)
    tasks, problems = store.snapshot(tip).scan()
    return views.board(tasks, tip, problems)


def who(store: Store, offline: bool) -> views.Who:
    tip = store._tip(offline)
    tasks, problems = store.snapshot(tip).scan()
    seen = {} if offline else store.transport.fetch_alive()
    return views.who(tasks, tip, utc(store.clock()), seen, problems)


def blocked(store: Store, offline: bool) -> views.BlockedView:
    tip = store._tip(offline)
    tasks, problems = store.snapshot(tip).scan()
    return views.blocked(tasks, tip, problems)


def graph(store: Store, fmt: str, offline: bool) -> views.Graph:
    if fmt not in GRAPH_FORMATS:
        raise BadInput(f"unknown graph format {fmt!r}: use dot or mermaid", format=fmt)
    tip = store._tip(offline)
    tasks, problems = store.snapshot(tip).scan()
    return views.Graph(fmt, views.dot(tasks) if fmt == "dot" else views.mermaid(tasks), tip, tuple(problems))


def log(store: Store, task_id: str | None, limit: int | None, offline: bool) -> History:
    if task_id is not None:
        validate_id(task_id)
    if limit is not None:
        units.count(limit, "--limit")
    tip = store._tip(offline)
    found = history.entries(store, tip) if task_id is None else history.task_entries(store, tip, task_id)
    entries, cut = _first(found, limit)
    return History(entries, tip, cut=cut)


def _first(entries: Iterator[audit.Entry], limit: int | None) -> tuple[tuple[audit.Entry, ...], bool]:
    """At most ``limit`` entries, and whether there were more."""
    if limit is None:
        return tuple(entries), False
    out = tuple(itertools.islice(entries, limit))
    return out, next(entries, None) is not None
