"""The one validator of a change to the store branch. Pure.

``check_commit`` takes what changed between a commit and its parent (path ->
old bytes, new bytes), who made it, a read-only lookup of tasks in the new
tree (for dependencies), the time and the agents' last heartbeats, and
returns every violation: schema and store file, ids matching file names,
no deleted task, legal transitions (the table in :mod:`gitclaim.rules`),
claimability (state and dependencies), ownership (holder-only moves; only
an expired lease can be taken over).

The same function runs inside gitclaim before every push, in the client
``pre-push`` hook and in the server ``pre-receive`` hook (see
:mod:`gitclaim.enforce`, which feeds it from git).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache

from . import archiving
from .errors import SchemaTooNew, StoreCorrupt
from .ids import STORE_FILE, TASKS_DIR, fanout, is_valid_id
from .model import Claim, State, Task, _iso, parse_store_config, parse_task
from .policy import ACCESS_FILE
from .policy import FILES as POLICY_FILES
from .policy import parse as parse_policy
from .rules import MOVES, ClaimEffect, Move, Who, blockers, dependency_cycles, lease_expired

NEW_STATES = frozenset({State.TODO, State.BACKLOG, State.SOMEDAY})


@dataclass(frozen=True, slots=True)
class Violation:
    path: str
    rule: str  # schema | store-file | layout | deleted | new-task | transition | claimable | ownership | claim-fields
    # | notes | result | parent | archive
    message: str
    task: str | None = None
    commit: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {"commit": self.commit, "path": self.path, "task": self.task, "rule": self.rule, "message": self.message}

    def __str__(self) -> str:
        where = f"{self.commit[:10]} " if self.commit else ""
        return f"{where}{self.path}: [{self.rule}] {self.message}"


Change = tuple[bytes | None, bytes | None]  # (old, new); None: absent on that side


@lru_cache(maxsize=8192)
def read_task(data: bytes, tid: str, path: str) -> Task:
    """:func:`gitclaim.model.parse_task`, remembered: replaying a history
    (``verify``, a long push) reads each version of a task as the new side of
    one commit and the old side of the next. Tasks are frozen, so sharing is
    safe; an error is raised again each time, never cached."""
    return parse_task(data, expected_id=tid, path=path)


@dataclass(frozen=True, slots=True)
class TaskMove:
    """What one commit did to one task, read from its file before and after.

    ``verb`` is the row of :data:`gitclaim.rules.MOVES` that allows the change
    for its author (``add`` for a new task, ``edit`` for a change that keeps
    the state and the claim), ``repair`` for a rewrite of an unreadable file,
    or ``illegal`` when no row allows it (the violation says why). ``verbs``
    lists every row that allows it: a holder's ``active -> todo`` is both a
    release and a reset, and a commit may call it either.
    """

    task: str
    verb: str
    from_state: str | None
    to_state: str | None
    holder_before: str | None = None
    holder_after: str | None = None
    verbs: tuple[str, ...] = ()
    cascade: bool = False  # a claim cleared because a task it depends on was retried in the same commit
    notes_added: int = 0  # notes appended to the task (the verb is then ``note``)
    result_set: bool = False  # the commit records a result (with ``done``)

    def to_json(self) -> dict[str, object]:
        return {
            "task": self.task,
            "verb": self.verb,
            "from": self.from_state,
            "to": self.to_state,
            "holder_before": self.holder_before,
            "holder_after": self.holder_after,
        }

    def text(self) -> str:
        arrow = f"{self.from_state or 'new'} -> {self.to_state or 'gone'}"
        return f"{self.verb} {self.task} ({arrow})"


@dataclass(frozen=True, slots=True)
class Verdict:
    """A commit's moves, as the validator classifies them, and its violations."""

    moves: tuple[TaskMove, ...]
    violations: tuple[Violation, ...]
    policy: tuple[str, ...] = ()  # the policy files (access.toml, allowed_signers) it changes


def task_id_of(path: str) -> str | None:
    """The task id a path under tasks/ names, or None if it is not a task file."""
    parts = path.split("/")
    if len(parts) == 3 and parts[0] == TASKS_DIR and parts[2].endswith(".toml"):
        return parts[2][: -len(".toml")]
    return None


def merged_cleanly(base: bytes | None, first: bytes | None, second: bytes | None, merged: bytes | None) -> bool:
    """Whether a merge's task file is what both sides' changes make together:
    every field (the claim as one) as the side that changed it left it, and
    none changed by both sides in different ways. Such a file moves nothing of
    its own: each side's commits made the moves, and were checked. False for a
    file that is absent or does not read on any side."""
    docs = [_fields(x) for x in (base, first, second, merged)]
    if None in docs:
        return False
    o, a, b, m = (d for d in docs if d is not None)
    for key in o.keys() | a.keys() | b.keys() | m.keys():
        vo, va, vb, vm = (d.get(key, _ABSENT) for d in (o, a, b, m))
        if va == vo:
            want = vb
        elif vb in (vo, va):
            want = va
        else:
            return False  # both sides changed it, differently: a conflict the merge resolved
        if vm != want:
            return False
    return True


_ABSENT = object()


def _fields(data: bytes | None) -> dict[str, object] | None:
    import tomllib

    if data is None:
        return None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None


def check_commit(
    changes: Mapping[str, Change],
    *,
    agent: str,
    lookup: Callable[[str], Task | None],
    now: datetime,
    last_seen: Mapping[str, datetime],
    commit: str | None = None,
    archived: Callable[[str], bool] | None = None,
) -> list[Violation]:
    """Every violation in one commit. ``lookup`` reads a task in the new tree."""
    verdict = classify_commit(
        changes, agent=agent, lookup=lookup, now=now, last_seen=last_seen, commit=commit, archived=archived
    )
    return list(verdict.violations)


def classify_commit(
    changes: Mapping[str, Change],
    *,
    agent: str,
    lookup: Callable[[str], Task | None],
    now: datetime,
    last_seen: Mapping[str, datetime],
    commit: str | None = None,
    archived: Callable[[str], bool] | None = None,
) -> Verdict:
    """What one commit did to each task (its moves) and every violation in it.
    ``lookup`` reads a task in the new tree, live or archived; ``archived``
    says whether an id is archived there (a new task must not take it)."""
    ctx = _Context(agent, lookup, now, last_seen, archived=archived)
    cut = archiving.split(changes)  # moves to archive/ out; any other change there refused
    out = [Violation(path, archiving.RULE, message, task, commit) for path, message, task in cut.found]
    ctx.moves += [TaskMove(t.id, archiving.OP, t.state.value, t.state.value, verbs=(archiving.OP,)) for t in cut.moved]
    out += [
        Violation(path, rule, message, task, commit)
        for path in sorted(cut.rest)
        for rule, message, task in _check_file(ctx, path, *cut.rest[path])
    ]
    # One pass for the whole commit: a batch of N rewired tasks costs N, not N².
    for cycle in dependency_cycles(ctx.rewired, lookup):
        out.append(
            Violation(ctx.rewired[cycle[0]], "schema", f"dependency cycle: {' -> '.join(cycle)}", cycle[0], commit)
        )
    for tid, path in ctx.reparented.items():
        loop = parent_cycle(tid, lookup)
        if loop is not None:
            out.append(Violation(path, "parent", f"parent cycle: {' -> '.join(loop)}", tid, commit))
    return Verdict(_cascades(ctx.moves, lookup), tuple(out), tuple(ctx.policy))


def _cascades(moves: list[TaskMove], lookup: Callable[[str], Task | None]) -> tuple[TaskMove, ...]:
    """Mark the claims a retry in the same commit cleared downstream of the retried task."""
    retried = {m.task for m in moves if m.verb == "retry"}
    if not retried:
        return tuple(moves)
    return tuple(
        replace(m, cascade=True) if m.verb == "reset" and _depends_on_any(m.task, retried, lookup) else m for m in moves
    )


def _depends_on_any(start: str, targets: set[str], lookup: Callable[[str], Task | None], limit: int = 10_000) -> bool:
    seen, todo = {start}, [start]
    while todo and len(seen) < limit:
        task = lookup(todo.pop())
        for dep in task.depends_on if task is not None else ():
            if dep in targets:
                return True
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return False


@dataclass
class _Context:
    agent: str
    lookup: Callable[[str], Task | None]
    now: datetime
    last_seen: Mapping[str, datetime]
    rewired: dict[str, str] = field(default_factory=dict)  # task id -> path: this commit sets its dependencies
    reparented: dict[str, str] = field(default_factory=dict)  # task id -> path: this commit sets its parent
    moves: list[TaskMove] = field(default_factory=list)
    policy: list[str] = field(default_factory=list)
    archived: Callable[[str], bool] | None = None

    def moved(
        self, tid: str, verbs: list[str], old: Task | None, new: Task | None, fallback: str, *, notes: int = 0,
        result: bool = False,
    ) -> None:  # fmt: skip
        self.moves.append(
            TaskMove(
                tid,
                verbs[0] if verbs else fallback,
                old.state.value if old is not None else None,
                new.state.value if new is not None else None,
                old.claim.holder if old is not None and old.claim is not None else None,
                new.claim.holder if new is not None and new.claim is not None else None,
                tuple(verbs),
                notes_added=notes,
                result_set=result,
            )
        )


_Found = list[tuple[str, str, str | None]]  # (rule, message, task)


def _check_file(ctx: _Context, path: str, old_b: bytes | None, new_b: bytes | None) -> _Found:
    if path == STORE_FILE:
        return _check_store_file(path, new_b)
    if path in POLICY_FILES:
        ctx.policy.append(path)
        return _check_policy_file(path, new_b)
    if not path.startswith(TASKS_DIR + "/") or path == f"{TASKS_DIR}/README.md":
        return []  # other files on the branch are the users' own
    tid = task_id_of(path)
    if tid is None or not is_valid_id(tid):
        return [("layout", f"only {TASKS_DIR}/<xx>/<id>.toml files belong under {TASKS_DIR}/", None)]
    if path.split("/")[1] != fanout(tid):
        return [("layout", f"task {tid!r} belongs in {TASKS_DIR}/{fanout(tid)}/{tid}.toml", tid)]
    if new_b is None:
        ctx.moved(tid, [], _readable(old_b, tid, path), None, "delete")
        return [("deleted", f"task {tid} must not be deleted (cancel it instead)", tid)]
    try:
        new = read_task(new_b, tid, path)
    except (StoreCorrupt, SchemaTooNew) as e:
        ctx.moved(tid, [], _readable(old_b, tid, path), None, "break")
        return [("schema", e.message, tid)]
    out: _Found = [
        ("schema", f"{tid} depends on {dep!r}, which does not exist", tid)
        for dep in new.depends_on
        if ctx.lookup(dep) is None
    ]
    old: Task | None = None
    broken = False
    if old_b is not None:
        try:
            old = read_task(old_b, tid, path)
        except (StoreCorrupt, SchemaTooNew):
            broken = True  # repairing a broken file: only the new one must be valid
    if new.depends_on and new.depends_on != (old.depends_on if old is not None else None):
        ctx.rewired[tid] = path
    out += _check_parent(ctx, path, old, new)
    if broken:
        ctx.moved(tid, [], None, new, "repair")
        if new.state in (State.ACTIVE, State.WAITING, State.REVIEW):
            out.append(("claim-fields", f"a repaired task {tid} must not carry a claim; claim it", tid))
    elif old is None:
        out += _check_new(ctx, new)
    else:
        verbs, why = _check_move(old, new, ctx.agent, ctx.lookup, ctx.now, ctx.last_seen)
        verbs, more = notes_and_result(old, new, ctx.agent, verbs)
        added = len(new.notes) - len(old.notes) if not more else 0
        ctx.moved(tid, verbs, old, new, "illegal", notes=added, result=old.result != new.result and not more)
        out += [(rule, msg, tid) for rule, msg in (*why, *more)]
    return out


def _check_parent(ctx: _Context, path: str, old: Task | None, new: Task) -> _Found:
    if new.parent is None or new.parent == (old.parent if old is not None else None):
        return []
    ctx.reparented[new.id] = path
    if ctx.lookup(new.parent) is None:
        return [("parent", f"{new.id}'s parent {new.parent!r} does not exist", new.id)]
    return []


def _check_new(ctx: _Context, new: Task) -> _Found:
    if ctx.archived is not None and ctx.archived(new.id):
        ctx.moved(new.id, [], None, new, "illegal")
        return [(archiving.RULE, f"{new.id} is the id of an archived task; a new task takes another id", new.id)]
    legal = new.state in NEW_STATES and new.claim is None
    ctx.moved(new.id, ["add"] if legal and not (new.notes or new.result) else [], None, new, "illegal")
    if not legal:
        return [("new-task", f"a new task starts unclaimed in todo, backlog or someday, not {new.state}", new.id)]
    if new.notes or new.result:
        return [("new-task", f"a new task {new.id} starts without notes or a result", new.id)]
    return []


def notes_and_result(old: Task, new: Task, agent: str, verbs: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Notes are appended, each by its author, in a commit of their own (the
    verb ``note``), and never rewritten or removed; a result is recorded by
    the agent that completes the task (``done``), and never removed. Returns
    the verbs that allow the change and why it is illegal."""
    kept = new.notes[: len(old.notes)]
    if kept != old.notes:
        which = next(i for i, n in enumerate(old.notes) if i >= len(kept) or kept[i] != n)
        n = old.notes[which]
        return [], [("notes", f"{old.id}: notes are never rewritten or removed; note {which + 1} (by {n.by}"
                     f" at {_iso(n.at)}) was changed or dropped")]  # fmt: skip
    why: list[tuple[str, str]] = []
    added = new.notes[len(old.notes) :]
    if added:
        why += [("notes", f"{old.id}: a note names its author; {n.by} is not {agent}") for n in added if n.by != agent]
        if verbs == ["edit"] and new.evolve(notes=old.notes) == old:
            verbs = ["note"]
        elif verbs:
            why.append(("notes", f"{old.id}: a note is appended in a commit of its own (gitclaim note)"))
    if old.result != new.result:
        if new.result is None:
            why.append(("result", f"{old.id}: a result is never removed"))
        elif "done" not in verbs:
            why.append(("result", f"{old.id}: a result is recorded only with done"))
        elif new.result.by != agent:
            why.append(("result", f"{old.id}: a result names its author; {new.result.by} is not {agent}"))
    return ([] if why else verbs), why


def parent_cycle(start: str, lookup: Callable[[str], Task | None], limit: int = 10_000) -> list[str] | None:
    """The chain of parents from ``start`` back to itself, or None. A loop
    higher up that ``start`` only reaches is not its own and is not reported."""
    path, seen = [start], {start}
    task = lookup(start)
    while task is not None and task.parent is not None and len(path) < limit:
        path.append(task.parent)
        if task.parent == start:
            return path
        if task.parent in seen:
            return None
        seen.add(task.parent)
        task = lookup(task.parent)
    return None


def _readable(data: bytes | None, tid: str, path: str) -> Task | None:
    if data is None:
        return None
    try:
        return read_task(data, tid, path)
    except (StoreCorrupt, SchemaTooNew):
        return None


def _check_store_file(path: str, new_b: bytes | None) -> _Found:
    if new_b is None:
        return [("store-file", "the store file must not be deleted", None)]
    try:
        parse_store_config(new_b, path)
    except (StoreCorrupt, SchemaTooNew) as e:
        return [("store-file", e.message, None)]
    return []


def _check_policy_file(path: str, new_b: bytes | None) -> _Found:
    """Who may change it is :mod:`gitclaim.trust`'s business; here, only that it reads."""
    if new_b is None:
        return []  # an admin may drop the policy
    try:
        if path == ACCESS_FILE:
            parse_policy(new_b, None)
        else:
            from .sshsig import AllowedSigners

            AllowedSigners.parse(new_b.decode("utf-8", errors="replace"), path=path)
    except StoreCorrupt as e:
        return [("policy", e.message, None)]
    return []


def _claim_key(c: Claim | None) -> tuple[object, ...] | None:
    return None if c is None else (c.holder, c.claimed_at, c.lease_seconds)


def _check_move(
    old: Task,
    new: Task,
    agent: str,
    lookup: Callable[[str], Task | None],
    now: datetime,
    last_seen: Mapping[str, datetime],
) -> tuple[list[str], list[tuple[str, str]]]:
    """The verbs that allow the change from ``old`` to ``new`` by ``agent``, in
    the table's order, and why it is illegal when none does."""
    same_claim = _claim_key(old.claim) == _claim_key(new.claim)
    if old.state is new.state and same_claim:
        owned_changed = old.waiting_for != new.waiting_for or old.fail_reason != new.fail_reason
        if owned_changed:
            return [], [("claim-fields", "waiting_for and fail_reason change only through verbs")]
        return ["edit"], []  # a plain edit (title, tags, your own fields...)
    rows = [m for m in MOVES if old.state in m.sources and m.target is new.state]
    if not rows:
        return [], [("transition", f"{old.id}: {old.state} -> {new.state} is not a legal move")]
    reasons: list[tuple[int, str, str]] = []
    allowed: list[str] = []
    for row in rows:
        why = _row_refuses(row, old, new, agent, lookup, now, last_seen)
        if why is None:
            allowed.append(row.verb)
            continue
        # The row the author most likely meant tells the most: a claim row when
        # the new holder is the author, another row (handoff...) otherwise.
        meant = (row.claim is ClaimEffect.SET) == (new.claim is not None and new.claim.holder == agent)
        reasons.append((0 if meant else 1, *why))
    if allowed:
        return list(dict.fromkeys(allowed)), []
    order = {"ownership": 0, "claimable": 1, "claim-fields": 2, "transition": 3}
    reasons.sort(key=lambda r: (r[0], order.get(r[1], 9)))
    return [], [(reasons[0][1], reasons[0][2])]


def _row_refuses(
    row: Move,
    old: Task,
    new: Task,
    agent: str,
    lookup: Callable[[str], Task | None],
    now: datetime,
    last_seen: Mapping[str, datetime],
) -> tuple[str, str] | None:
    oc, nc = old.claim, new.claim
    if row.who is Who.HOLDER and (oc is None or oc.holder != agent):
        held = f"held by {oc.holder}" if oc else "not held"
        return ("ownership", f"{old.id}: only the holder may {row.verb} it ({held}; pushed by {agent})")
    effect = row.claim
    if effect is ClaimEffect.SET:
        if nc is None or nc.holder != agent:
            return ("ownership", f"{old.id}: a claim must name its author as holder ({agent})")
        if row.verb == "takeover":
            if oc is None:
                return ("transition", f"{old.id}: nothing to take over")
            if oc.holder == agent:
                return ("claim-fields", f"{old.id}: the holder cannot rewrite its own claim")
            if not lease_expired(oc, now, last_seen.get(oc.holder)):
                return ("ownership", f"{old.id}: held by {oc.holder}, whose lease has not expired")
            return None
        blocking = blockers(new, {d: lookup(d) for d in new.depends_on})
        if blocking:
            listed = ", ".join(f"{b['id']} ({b['state']})" for b in blocking)
            return ("claimable", f"{old.id}: cannot be claimed while dependencies are not done: {listed}")
        return None
    if effect is ClaimEffect.KEEP:
        return None if _claim_key(oc) == _claim_key(nc) else ("claim-fields", f"{old.id}: the claim must not change")
    if effect is ClaimEffect.TRANSFER:
        if nc is None or oc is None or nc.holder == oc.holder:
            return ("claim-fields", f"{old.id}: a handoff names a new holder")
        return None
    if nc is not None:  # CLEAR, NONE
        return ("claim-fields", f"{old.id}: {row.verb} leaves no claim")
    return None
