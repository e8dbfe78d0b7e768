"""Domain rules: which transitions are legal for whom. Pure functions.

Each ``check_*`` raises the :mod:`gitclaim.errors` class a caller should see,
with details that name the task, its state, its holder or its blockers. Each
``apply_*`` returns the new task. Time and identity come in as parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import Enum

from .errors import Blocked, LostRace, NotClaimable, NotHolder
from .model import CLAIMABLE, Claim, State, Task, _iso, sort_key_ready, utc


class ClaimVerdict(Enum):
    CLAIM = "claim"  # a new claim: write a commit
    ALREADY_HELD = "already_held"  # the caller holds it: success, nothing to write


_WHY = {
    State.ACTIVE: "it is already being worked on",
    State.WAITING: "it is waiting on something outside the queue",
    State.REVIEW: "it is in review",
    State.DONE: "it is finished",
    State.CANCELLED: "it was cancelled",
    State.SOMEDAY: "it is parked for someday",
    State.FAILED: "it failed; retry it first",
}


def blockers(task: Task, deps: Mapping[str, Task | None]) -> list[dict[str, str]]:
    """The dependencies of ``task`` that are not done, with their states."""
    out = []
    for dep_id in task.depends_on:
        dep = deps.get(dep_id)
        if dep is None:
            out.append({"id": dep_id, "state": "missing"})
        elif dep.state is not State.DONE:
            out.append({"id": dep_id, "state": dep.state.value})
    return out


def check_claim(task: Task, deps: Mapping[str, Task | None], agent: str) -> ClaimVerdict:
    """Decide whether ``agent`` may claim ``task``.

    Raises :class:`LostRace` (held by another agent), :class:`NotClaimable`
    (its state refuses) or :class:`Blocked` (dependencies not done).
    """
    if task.state is State.ACTIVE and task.claim is not None:
        if task.claim.holder == agent:
            return ClaimVerdict.ALREADY_HELD
        raise LostRace(
            f"{task.id} is already held by {task.claim.holder} since {_iso(task.claim.claimed_at)}",
            task=task.id,
            holder=task.claim.holder,
            claimed_at=_iso(task.claim.claimed_at),
        )
    if task.state not in CLAIMABLE:
        raise NotClaimable(
            f"{task.id} is {task.state.value}: {_WHY.get(task.state, 'its state refuses claims')};"
            f" only {' or '.join(sorted(s.value for s in CLAIMABLE))} tasks can be claimed",
            task=task.id,
            state=task.state.value,
        )
    blocking = blockers(task, deps)
    if blocking:
        listed = ", ".join(f"{b['id']} ({b['state']})" for b in blocking)
        raise Blocked(
            f"{task.id} waits for dependencies that are not done: {listed}",
            task=task.id,
            state=task.state.value,
            blockers=blocking,
        )
    return ClaimVerdict.CLAIM


def apply_claim(task: Task, agent: str, now: datetime) -> Task:
    return task.evolve(state=State.ACTIVE, claim=Claim(holder=agent, claimed_at=utc(now)))


def _check_holder(task: Task, agent: str, verb: str) -> None:
    if task.state is not State.ACTIVE or task.claim is None:
        raise NotClaimable(
            f"cannot {verb} {task.id}: it is {task.state.value}, not active",
            task=task.id,
            state=task.state.value,
        )
    if task.claim.holder != agent:
        raise NotHolder(
            f"cannot {verb} {task.id}: it is held by {task.claim.holder}"
            f" since {_iso(task.claim.claimed_at)}, not by {agent}",
            task=task.id,
            holder=task.claim.holder,
            claimed_at=_iso(task.claim.claimed_at),
            agent=agent,
        )


def check_release(task: Task, agent: str) -> None:
    """Only the holder releases. Raises :class:`NotHolder` or :class:`NotClaimable`."""
    _check_holder(task, agent, "release")


def apply_release(task: Task) -> Task:
    return task.evolve(state=State.TODO, claim=None)


def check_done(task: Task, agent: str) -> None:
    """Only the holder completes. Raises :class:`NotHolder` or :class:`NotClaimable`."""
    _check_holder(task, agent, "complete")


def apply_done(task: Task) -> Task:
    return task.evolve(state=State.DONE, claim=None)


def ready(tasks: Iterable[Task], by_id: Mapping[str, Task] | None = None) -> list[Task]:
    """Tasks claimable now (claimable state, every dependency done): by priority, then age."""
    tasks = list(tasks)
    index = by_id if by_id is not None else {t.id: t for t in tasks}
    out = [
        t
        for t in tasks
        if t.state in CLAIMABLE
        and all((d := index.get(dep)) is not None and d.state is State.DONE for dep in t.depends_on)
    ]
    out.sort(key=sort_key_ready)
    return out


def find_cycle(tasks: Mapping[str, Task]) -> list[str] | None:
    """A dependency cycle among ``tasks`` as a list of ids, or ``None``."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = dict.fromkeys(tasks, WHITE)
    for root in tasks:
        if color[root] != WHITE:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            node, i = stack.pop()
            if i == 0:
                color[node] = GREY
                path.append(node)
            deps = [d for d in tasks[node].depends_on if d in tasks]
            if i < len(deps):
                stack.append((node, i + 1))
                nxt = deps[i]
                if color[nxt] == GREY:
                    return [*path[path.index(nxt) :], nxt]
                if color[nxt] == WHITE:
                    stack.append((nxt, 0))
            else:
                color[node] = BLACK
                path.pop()
    return None
