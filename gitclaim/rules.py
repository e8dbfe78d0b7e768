"""Domain rules: which moves are legal, for whom, and what they do. Pure.

The lifecycle is data: :data:`MOVES` lists every legal move as (verb, from
states, to state, who may do it, what happens to the claim). Every verb
checks the table through :func:`check_move`, and the validator reuses the
same table to recognise a change made by hand. ``check_*`` functions raise
the :mod:`gitclaim.errors` class a caller should see, with details naming
the task, its state, its holder, its blockers or the legal moves; ``apply_*``
functions return the new task. Time, identity and liveness come in as
parameters: nothing here reads a clock or touches git.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from .errors import Blocked, LostRace, NotClaimable, NotHolder
from .model import CLAIMABLE, Claim, State, Task, _iso, sort_key_ready, utc

S = State


class Who(Enum):
    ANYONE = "anyone"
    HOLDER = "holder"


class ClaimEffect(Enum):
    SET = "set"  # the agent becomes the holder
    KEEP = "keep"  # the holder stays
    CLEAR = "clear"  # no holder afterwards
    TRANSFER = "transfer"  # the holder names a new holder
    NONE = "none"  # no claim before or after (planning moves)


@dataclass(frozen=True, slots=True)
class Move:
    verb: str
    sources: frozenset[State]
    target: State
    who: Who
    claim: ClaimEffect
    doc: str

    def to_json(self) -> dict[str, object]:
        return {
            "verb": self.verb,
            "from": sorted(s.value for s in self.sources),
            "to": self.target.value,
            "who": self.who.value,
            "claim": self.claim.value,
            "doc": self.doc,
        }


def _m(verb: str, sources: Iterable[State], target: State, who: Who, claim: ClaimEffect, doc: str) -> Move:
    return Move(verb, frozenset(sources), target, who, claim, doc)


CLAIMED = frozenset({S.ACTIVE, S.WAITING, S.REVIEW})  # states in which a task has a holder
PLANNING = frozenset({S.BACKLOG, S.TODO, S.SOMEDAY})
A, H = Who.ANYONE, Who.HOLDER

MOVES: tuple[Move, ...] = (
    _m("claim", CLAIMABLE, S.ACTIVE, A, ClaimEffect.SET, "take a ready task (dependencies done)"),
    _m("takeover", {S.ACTIVE}, S.ACTIVE, A, ClaimEffect.SET, "claim a task whose holder's lease expired"),
    _m("release", {S.ACTIVE}, S.TODO, H, ClaimEffect.CLEAR, "give the task back to the queue"),
    _m("handoff", {S.ACTIVE}, S.ACTIVE, H, ClaimEffect.TRANSFER, "pass the task to another agent"),
    _m("wait", {S.ACTIVE}, S.WAITING, H, ClaimEffect.KEEP, "park the task until something outside happens"),
    _m("resume", {S.WAITING}, S.ACTIVE, H, ClaimEffect.KEEP, "continue a waiting task"),
    _m("review", {S.ACTIVE}, S.REVIEW, H, ClaimEffect.KEEP, "ask for review; the holder stays"),
    _m("done", {S.ACTIVE}, S.DONE, H, ClaimEffect.CLEAR, "the holder finishes the task"),
    _m("done", {S.REVIEW}, S.DONE, A, ClaimEffect.CLEAR, "a reviewer approves the task"),
    _m("fail", {S.ACTIVE}, S.FAILED, H, ClaimEffect.CLEAR, "the holder gives up, with a reason"),
    _m("cancel", {S.BACKLOG, S.TODO, S.SOMEDAY, S.FAILED}, S.CANCELLED, A, ClaimEffect.CLEAR, "drop an unheld task"),
    _m("cancel", CLAIMED, S.CANCELLED, H, ClaimEffect.CLEAR, "the holder drops the task"),
    _m("reopen", {S.DONE, S.CANCELLED, S.FAILED, S.REVIEW}, S.TODO, A, ClaimEffect.CLEAR, "back to the queue"),
    _m("reset", CLAIMED, S.TODO, A, ClaimEffect.CLEAR, "clear anyone's claim (operator override)"),
    _m("retry", {S.FAILED, S.DONE}, S.TODO, A, ClaimEffect.CLEAR, "run again; clears downstream claims too"),
    *(
        _m("edit", PLANNING, target, A, ClaimEffect.NONE, f"plan: move to {target.value}")
        for target in (S.BACKLOG, S.TODO, S.SOMEDAY)
    ),
)

_VERB_TEXT = {"done": "complete"}

VERBS: tuple[str, ...] = tuple(dict.fromkeys(m.verb for m in MOVES))


def moves_from(state: State) -> list[Move]:
    return [m for m in MOVES if state in m.sources]


def claim_effect(verb: str) -> ClaimEffect | None:
    """What ``verb`` does to a claim (None for a name that is not a verb)."""
    effects = {m.claim for m in MOVES if m.verb == verb}
    return effects.pop() if len(effects) == 1 else None


def legal_verbs(state: State) -> list[str]:
    return list(dict.fromkeys(m.verb for m in moves_from(state) if m.verb != "takeover"))


class ClaimVerdict(Enum):
    CLAIM = "claim"  # a new claim: write a commit
    TAKEOVER = "takeover"  # the holder's lease expired: claim it, naming them
    ALREADY_HELD = "already_held"  # the caller holds it: success, nothing to write


_WHY = {
    S.ACTIVE: "it is already being worked on",
    S.WAITING: "it is waiting on something outside the queue",
    S.REVIEW: "it is in review",
    S.DONE: "it is finished",
    S.CANCELLED: "it was cancelled",
    S.SOMEDAY: "it is parked for someday",
    S.FAILED: "it failed; retry it first",
}


# --- leases ------------------------------------------------------------------


def lease_expiry(claim: Claim, last_seen: datetime | None) -> datetime | None:
    """When the claim's lease runs out, or None if it has no lease.

    A lease runs ``lease_seconds`` from the later of the claim and the
    holder's last heartbeat.
    """
    if claim.lease_seconds is None:
        return None
    base = claim.claimed_at
    if last_seen is not None and last_seen > base:
        base = last_seen
    return base + timedelta(seconds=claim.lease_seconds)


def lease_expired(claim: Claim, now: datetime, last_seen: datetime | None) -> bool:
    expiry = lease_expiry(claim, last_seen)
    return expiry is not None and utc(now) >= expiry


# --- claim -------------------------------------------------------------------


def blockers(task: Task, deps: Mapping[str, Task | None]) -> list[dict[str, str]]:
    """The dependencies of ``task`` that are not done, with their states."""
    out = []
    for dep_id in task.depends_on:
        dep = deps.get(dep_id)
        if dep is None:
            out.append({"id": dep_id, "state": "missing"})
        elif dep.state is not S.DONE:
            out.append({"id": dep_id, "state": dep.state.value})
    return out


def check_claim(
    task: Task,
    deps: Mapping[str, Task | None],
    agent: str,
    *,
    now: datetime | None = None,
    last_seen: Mapping[str, datetime] | None = None,
) -> ClaimVerdict:
    """Decide whether ``agent`` may claim ``task`` at ``now``.

    ``last_seen`` maps agents to their last heartbeat; with ``now`` it decides
    whether an active task's lease has expired (a takeover). Raises
    :class:`LostRace` (held by another agent, lease alive or none),
    :class:`NotClaimable` (its state refuses) or :class:`Blocked`
    (dependencies not done).
    """
    if task.state is S.ACTIVE and task.claim is not None:
        c = task.claim
        if c.holder == agent:
            return ClaimVerdict.ALREADY_HELD
        seen = (last_seen or {}).get(c.holder)
        if now is not None and lease_expired(c, now, seen):
            return ClaimVerdict.TAKEOVER
        expiry = lease_expiry(c, seen)
        extra = {"lease_expires": _iso(expiry)} if expiry is not None else {}
        raise LostRace(
            f"{task.id} is already held by {c.holder} since {_iso(c.claimed_at)}"
            + (f" (lease until {_iso(expiry)})" if expiry is not None else ""),
            task=task.id,
            holder=c.holder,
            claimed_at=_iso(c.claimed_at),
            **extra,
        )
    if task.state not in CLAIMABLE:
        why = _WHY.get(task.state, "its state refuses claims")
        waits: dict[str, str] = {}
        if task.state is S.WAITING and task.waiting_for:
            why = f"it is waiting for {task.waiting_for}"
            waits["waiting_for"] = task.waiting_for
        raise NotClaimable(
            f"{task.id} is {task.state.value}: {why};"
            f" only {' or '.join(sorted(s.value for s in CLAIMABLE))} tasks can be claimed",
            task=task.id,
            state=task.state.value,
            **waits,
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


def apply_claim(task: Task, agent: str, now: datetime, lease_seconds: int | None = None) -> Task:
    return task.evolve(
        state=S.ACTIVE,
        claim=Claim(holder=agent, claimed_at=utc(now), lease_seconds=lease_seconds or None),
        waiting_for=None,
    )


# --- every other verb --------------------------------------------------------


def check_move(verb: str, task: Task, agent: str) -> Move:
    """The row of :data:`MOVES` that lets ``agent`` apply ``verb`` to ``task``.

    Raises :class:`NotClaimable` (the state does not allow the verb; details
    name the state and the legal verbs from it) or :class:`NotHolder`.
    """
    rows = [m for m in MOVES if m.verb == verb and task.state in m.sources]
    said = _VERB_TEXT.get(verb, verb)
    if not rows:
        legal_from = sorted({s.value for m in MOVES if m.verb == verb for s in m.sources})
        legal = legal_verbs(task.state)
        raise NotClaimable(
            f"cannot {said} {task.id}: it is {task.state.value}; {verb} needs"
            f" {', '.join(legal_from) or 'a state that does not exist'}."
            f" From {task.state.value}: {', '.join(legal) or 'nothing'}",
            task=task.id,
            state=task.state.value,
            verb=verb,
            legal_from=legal_from,
            legal_verbs=legal,
        )
    # A verb has at most one row per source state.
    row = rows[0]
    if row.who is Who.HOLDER:
        if task.claim is None:
            raise NotClaimable(
                f"cannot {said} {task.id}: it is {task.state.value} but nobody holds it",
                task=task.id,
                state=task.state.value,
                verb=verb,
            )
        if task.claim.holder != agent:
            raise NotHolder(
                f"cannot {said} {task.id}: it is held by {task.claim.holder}"
                f" since {_iso(task.claim.claimed_at)}, not by {agent}",
                task=task.id,
                holder=task.claim.holder,
                claimed_at=_iso(task.claim.claimed_at),
                agent=agent,
            )
    return row


def apply_move(row: Move, task: Task, *, now: datetime, to: str | None = None, **fields: object) -> Task:
    """The task after ``row``; ``to`` names the new holder of a handoff."""
    if row.claim is ClaimEffect.CLEAR or row.claim is ClaimEffect.NONE:
        claim = None
    elif row.claim is ClaimEffect.TRANSFER:
        assert task.claim is not None and to is not None
        claim = Claim(holder=to, claimed_at=utc(now), lease_seconds=task.claim.lease_seconds)
    else:
        claim = task.claim
    changes: dict[str, object] = {"state": row.target, "claim": claim}
    if row.target is not S.WAITING:
        changes["waiting_for"] = None
    if row.target is not S.FAILED:
        changes["fail_reason"] = None
    changes.update(fields)
    return task.evolve(**changes)


def check_release(task: Task, agent: str) -> Move:
    """Only the holder releases. Raises :class:`NotHolder` or :class:`NotClaimable`."""
    return check_move("release", task, agent)


def check_done(task: Task, agent: str) -> Move:
    """The holder completes an active task; anyone approves one in review."""
    return check_move("done", task, agent)


# --- the queue ---------------------------------------------------------------


def ready(
    tasks: Iterable[Task],
    by_id: Mapping[str, Task] | None = None,
    *,
    now: datetime | None = None,
    last_seen: Mapping[str, datetime] | None = None,
) -> list[Task]:
    """Tasks claimable now, by priority then age: a claimable state with every
    dependency done, or (given ``now``) an active task whose lease expired.
    """
    tasks = list(tasks)
    index = by_id if by_id is not None else {t.id: t for t in tasks}
    seen = last_seen or {}
    out = []
    for t in tasks:
        if t.state in CLAIMABLE:
            if all((d := index.get(dep)) is not None and d.state is S.DONE for dep in t.depends_on):
                out.append(t)
        elif (
            now is not None
            and t.state is S.ACTIVE
            and t.claim is not None
            and lease_expired(t.claim, now, seen.get(t.claim.holder))
        ):
            out.append(t)
    out.sort(key=sort_key_ready)
    return out


def downstream(tasks: Iterable[Task], root: str) -> list[str]:
    """Ids of every task that depends on ``root``, directly or transitively (BFS order)."""
    dependents: dict[str, list[str]] = {}
    for t in tasks:
        for d in t.depends_on:
            dependents.setdefault(d, []).append(t.id)
    out: list[str] = []
    seen = {root}
    frontier = [root]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(dependents.get(node, ())):
                if child not in seen:
                    seen.add(child)
                    out.append(child)
                    nxt.append(child)
        frontier = nxt
    return out


def dependency_cycles(starts: Iterable[str], lookup: Callable[[str], Task | None]) -> list[list[str]]:
    """Every dependency cycle that passes through one of ``starts``, each once,
    as a path from that start back to itself (``["a", "b", "a"]``).

    One iterative pass (Tarjan's strongly connected components) over what the
    starts reach: linear in the tasks and edges walked, however long the
    chains, and without recursion. ``lookup`` is asked once per task. A cycle
    the starts only reach, without being on it, is not theirs and is not
    reported (a hand-made loop elsewhere must not block unrelated changes).
    """
    deps: dict[str, tuple[str, ...]] = {}

    def deps_of(node: str) -> tuple[str, ...]:
        if node not in deps:
            found = lookup(node)
            deps[node] = found.depends_on if found is not None else ()
        return deps[node]

    index: dict[str, int] = {}
    low: dict[str, int] = {}
    component: dict[str, int] = {}
    members: list[list[str]] = []
    stack: list[str] = []
    on_stack: set[str] = set()
    start_ids = list(dict.fromkeys(starts))
    for root in start_ids:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work: list[tuple[str, Iterator[str]]] = [(root, iter(deps_of(root)))]
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(deps_of(child))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    comp: list[str] = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component[top] = len(members)
                        comp.append(top)
                        if top == node:
                            break
                    members.append(comp)
    out: list[list[str]] = []
    reported: set[int] = set()
    for root in start_ids:
        c = component[root]
        if c in reported or (len(members[c]) == 1 and root not in deps_of(root)):
            continue
        reported.add(c)
        out.append(_path_back(root, set(members[c]), deps_of))
    return out


def _path_back(root: str, within: set[str], deps_of: Callable[[str], tuple[str, ...]]) -> list[str]:
    """The shortest dependency path from ``root`` back to itself inside one component."""
    parent: dict[str, str] = {}
    frontier = [root]
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for d in deps_of(node):
                if d == root:
                    path = [node]
                    while path[-1] != root:
                        path.append(parent[path[-1]])
                    return [root, *reversed(path[:-1]), root] if node != root else [root, root]
                if d in within and d not in parent:
                    parent[d] = node
                    nxt.append(d)
        frontier = nxt
    raise AssertionError("a strongly connected component always leads back")  # pragma: no cover


def cycle_through(task: Task, lookup: Callable[[str], Task | None]) -> list[str] | None:
    """A dependency path from ``task`` back to itself, or None.

    ``task`` is taken as it is given, whatever ``lookup`` says of its id.
    """
    found = dependency_cycles([task.id], lambda i: task if i == task.id else lookup(i))
    return found[0] if found else None
