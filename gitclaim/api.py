"""The Python API: a :class:`Store` whose methods are gitclaim's operations.

Every method returns plain values (frozen dataclasses with ``to_json``) and
raises :class:`gitclaim.errors.GitclaimError` subclasses for expected
failures. The CLI and any other front end are thin layers over this.

Example::

    from gitclaim import Store, errors

    store = Store(".", agent="agent-7")
    try:
        got = store.next()
    except errors.NothingReady:
        ...
    else:
        ...  # work on got.task
        store.done(got.task.id)
"""

from __future__ import annotations

import getpass
import os
import random
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import audit, rules
from .cache import FolderCache
from .cas import NoWrite, Outcome, RetryPolicy, Write, mutate
from .errors import (
    AlreadyExists,
    BadInput,
    LostRace,
    NothingReady,
    StoreCorrupt,
)
from .gitrepo import BranchMoved, Repo, Transport, require
from .ids import (
    STORE_FILE,
    TASKS_DIR,
    generate_id,
    slugify_agent,
    task_path,
    validate_agent,
    validate_id,
)
from .model import (
    DEFAULT_PRIORITY,
    StoreConfig,
    Task,
    dump_store_config,
    dump_task,
    task_from_input,
    utc,
)
from .snapshot import Problem, Snapshot

DEFAULT_REMOTE = "origin"
DEFAULT_BRANCH = "gitclaim"
AGENT_ENV = "GITCLAIM_AGENT"
NEXT_SPREAD = 8  # after a lost race, `next` picks among this many best candidates


# --- results -----------------------------------------------------------------


@dataclass(frozen=True)
class InitResult:
    remote: str
    branch: str
    commit: str
    created: bool  # False: attached to an existing store

    def to_json(self) -> dict[str, Any]:
        return {"remote": self.remote, "branch": self.branch, "commit": self.commit, "created": self.created}


@dataclass(frozen=True)
class AddResult:
    tasks: tuple[Task, ...]
    commit: str
    retries: int

    def to_json(self) -> dict[str, Any]:
        return {"tasks": [t.to_json() for t in self.tasks], "commit": self.commit, "retries": self.retries}


@dataclass(frozen=True)
class OpResult:
    """The result of a change to one task (claim, next, release, done)."""

    op: str
    task: Task
    previous_state: str
    commit: str | None  # None when nothing changed (a re-claim by the holder)
    changed: bool
    retries: int

    def to_json(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "task": self.task.to_json(),
            "from": self.previous_state,
            "to": self.task.state.value,
            "commit": self.commit,
            "changed": self.changed,
            "retries": self.retries,
        }


@dataclass(frozen=True)
class Listing:
    tasks: tuple[Task, ...]
    problems: tuple[Problem, ...]
    commit: str

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": [t.to_json() for t in self.tasks],
            "problems": [p.to_json() for p in self.problems],
            "commit": self.commit,
        }


@dataclass(frozen=True)
class TaskView:
    task: Task
    blockers: tuple[dict[str, str], ...]
    history: tuple[audit.Entry, ...]
    commit: str

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task.to_json(),
            "blockers": list(self.blockers),
            "history": [e.to_json() for e in self.history],
            "commit": self.commit,
        }


@dataclass(frozen=True)
class History:
    entries: tuple[audit.Entry, ...]
    commit: str

    def to_json(self) -> dict[str, Any]:
        return {"entries": [e.to_json() for e in self.entries], "commit": self.commit}


# --- identity ----------------------------------------------------------------


def resolve_agent(explicit: str | None, env: Mapping[str, str], config: Callable[[str], str | None]) -> str:
    """The agent name, in this order: explicit, $GITCLAIM_AGENT, git config
    ``gitclaim.agent``, then ``<user>-<host>`` made safe. Raises :class:`BadInput`.
    """
    if explicit is not None:
        return validate_agent(explicit)
    if env.get(AGENT_ENV):
        return validate_agent(env[AGENT_ENV])
    configured = config("gitclaim.agent")
    if configured:
        return validate_agent(configured)
    try:
        user = getpass.getuser()
    except Exception:
        user = "agent"
    return slugify_agent(f"{user}-{socket.gethostname().split('.')[0]}")


def agent_email(agent: str) -> str:
    return f"{agent}@gitclaim.invalid"


# --- the store ---------------------------------------------------------------


@dataclass
class Store:
    """A handle on the shared store as seen from one clone.

    ``path`` is any folder inside the clone (or a linked worktree).
    ``remote`` and ``branch`` default to git config ``gitclaim.remote`` /
    ``gitclaim.branch`` (written by :meth:`init`), then ``origin`` / ``gitclaim``.
    """

    path: str | os.PathLike[str] = "."
    remote: str | None = None
    branch: str | None = None
    agent: str | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    rng: random.Random = field(default_factory=random.Random)
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def __post_init__(self) -> None:
        self.repo = Repo(self.path)
        self.remote = self.remote or self.repo.config_get("gitclaim.remote") or DEFAULT_REMOTE
        self.branch = self.branch or self.repo.config_get("gitclaim.branch") or DEFAULT_BRANCH
        if self.agent is not None:
            validate_agent(self.agent)
        self._transport: Transport | None = None
        self._cache = FolderCache(self.repo.common_dir)

    # --- plumbing ------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = self.repo.transport(self.remote_name, self.branch_name)
        return self._transport

    @property
    def remote_name(self) -> str:
        assert self.remote is not None
        return self.remote

    @property
    def branch_name(self) -> str:
        assert self.branch is not None
        return self.branch

    def whoami(self, agent: str | None = None) -> str:
        return resolve_agent(agent if agent is not None else self.agent, self.env, self.repo.config_get)

    def snapshot(self, commit: str) -> Snapshot:
        return Snapshot(self.repo, commit, self._cache)

    def _tip(self, offline: bool) -> str:
        t = self.transport
        tip = t.local_tip() if offline else t.fetch()
        return require(tip, t.remote, t.branch)

    def _mutate(self, agent: str, decide: Callable[[Snapshot, int], Write[Any] | NoWrite[Any]]) -> Outcome[Any]:
        return mutate(
            self.repo,
            self.transport,
            decide,
            author=agent,
            email=agent_email(agent),
            now=self.clock,
            policy=self.policy,
            snapshot=self.snapshot,
        )

    # --- init ----------------------------------------------------------------

    def init(self, agent: str | None = None) -> InitResult:
        """Create the store branch on the remote, or attach to the one there.

        Raises :class:`RemoteUnreachable`, :class:`StoreCorrupt` (the branch exists
        but is not a store), :class:`SchemaTooNew`.
        """
        who = self.whoami(agent)
        t = self.transport
        for _ in range(3):
            tip = t.fetch()
            if tip is not None:
                self.snapshot(tip).config  # noqa: B018 - validates the existing store
                self._remember()
                return InitResult(self.remote_name, self.branch_name, tip, created=False)
            now = utc(self.clock())
            cfg = StoreConfig(created_at=now, created_by=who)
            files = {STORE_FILE: dump_store_config(cfg), f"{TASKS_DIR}/README.md": _TASKS_README.encode()}
            msg = audit.message(
                f"init gitclaim store by {who}",
                [("Op", "init"), ("Agent", who), ("Schema", "1")],
            )
            new = self.repo.write_commit(None, files, msg, who, agent_email(who), now)
            try:
                t.push(new, expected=None)
            except BranchMoved:
                continue  # someone initialised it meanwhile: attach
            self._remember()
            return InitResult(self.remote_name, self.branch_name, new, created=True)
        raise StoreCorrupt(f"the branch {self.branch_name!r} keeps appearing and vanishing on the remote")

    def _remember(self) -> None:
        self.repo.config_set("gitclaim.remote", self.remote_name)
        self.repo.config_set("gitclaim.branch", self.branch_name)

    # --- reading -------------------------------------------------------------

    def list(
        self,
        *,
        state: Iterable[str] | None = None,
        holder: str | None = None,
        tag: str | None = None,
        offline: bool = False,
    ) -> Listing:
        """Tasks filtered by state(s), holder and tag, ordered like ``ready``."""
        tip = self._tip(offline)
        tasks, problems = self.snapshot(tip).scan()
        states = set(state) if state else None
        if states:
            from .model import STATES

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
        from .model import sort_key_ready

        out.sort(key=sort_key_ready)
        return Listing(tuple(out), tuple(problems), tip)

    def ready(self, *, offline: bool = False) -> Listing:
        """Tasks claimable now: claimable state, every dependency done; by priority, then age."""
        tip = self._tip(offline)
        tasks, problems = self.snapshot(tip).scan()
        return Listing(tuple(rules.ready(tasks)), tuple(problems), tip)

    def show(self, task_id: str, *, offline: bool = False, history_limit: int = 2000) -> TaskView:
        """One task, what blocks it, and its history. Raises :class:`NotFound`."""
        validate_id(task_id)
        tip = self._tip(offline)
        snap = self.snapshot(tip)
        task = snap.require(task_id)
        deps = snap.tasks_by_id(task.depends_on)
        hist = tuple(e for e in self._entries(tip, history_limit) if task_id in e.tasks)
        return TaskView(task, tuple(rules.blockers(task, deps)), hist, tip)

    def log(self, task_id: str | None = None, *, limit: int | None = None, offline: bool = False) -> History:
        """The audit trail, newest first, read from commits and their trailers."""
        if task_id is not None:
            validate_id(task_id)
        tip = self._tip(offline)
        entries = []
        for e in self._entries(tip, None):
            if task_id is None or task_id in e.tasks:
                entries.append(e)
                if limit is not None and len(entries) >= limit:
                    break
        return History(tuple(entries), tip)

    def _entries(self, tip: str, limit: int | None) -> Iterable[audit.Entry]:
        for c in self.repo.walk(tip, limit):
            yield audit.entry(c.id, c.time, c.author, c.message)

    # --- adding --------------------------------------------------------------

    def add(
        self,
        title: str,
        *,
        task_id: str | None = None,
        priority: int | None = None,
        depends_on: Sequence[str] = (),
        tags: Sequence[str] = (),
        description: str = "",
        acceptance: Sequence[str] = (),
        agent: str | None = None,
    ) -> AddResult:
        """Add one task. Raises :class:`BadInput`, :class:`AlreadyExists`."""
        entry: dict[str, Any] = {
            "title": title,
            "priority": priority,
            "depends_on": list(depends_on),
            "tags": list(tags),
            "description": description,
            "acceptance": list(acceptance),
        }
        if task_id is not None:
            entry["id"] = task_id
        return self.add_many([entry], agent=agent)

    def add_many(self, entries: Sequence[Mapping[str, Any]], *, agent: str | None = None) -> AddResult:
        """Add many tasks in one commit; they may depend on each other and on
        existing tasks. Raises :class:`BadInput`, :class:`AlreadyExists`.
        """
        who = self.whoami(agent)
        if not entries:
            raise BadInput("nothing to add")
        given: list[str | None] = []
        for i, e in enumerate(entries):
            if not isinstance(e, Mapping):
                raise BadInput(f"task #{i + 1} is not a table/object", index=i)
            raw_id = e.get("id")
            given.append(validate_id(raw_id) if raw_id is not None else None)
        dup = {i for i in given if i is not None and given.count(i) > 1}
        if dup:
            raise BadInput(f"the same id is given twice: {', '.join(sorted(dup))}", ids=sorted(dup))

        def decide(snap: Snapshot, attempt: int) -> Write[tuple[Task, ...]]:
            cfg = snap.config
            now = utc(self.clock())
            ids: list[str] = []
            taken = {i for i in given if i is not None}
            for gid in given:
                if gid is not None:
                    ids.append(gid)
                    continue
                length = 4
                while True:
                    cand = generate_id(self.rng, length, cfg.id_prefix)
                    if cand not in taken and snap.task(cand) is None:
                        break
                    length += 1  # collision: lengthen, never reuse
                taken.add(cand)
                ids.append(cand)
            new_tasks = []
            for tid, e in zip(ids, entries, strict=True):
                raw = {k: v for k, v in e.items()}
                raw["id"] = tid
                if raw.get("priority") is None:
                    raw["priority"] = cfg.default_priority if cfg else DEFAULT_PRIORITY
                new_tasks.append(
                    task_from_input(raw, default_priority=cfg.default_priority, created_at=now, created_by=who)
                )
            batch = {t.id: t for t in new_tasks}
            for gid in given:  # after validating the entries: bad input is reported first
                if gid is not None and snap.task(gid) is not None:
                    raise AlreadyExists(f"a task {gid!r} already exists", task=gid)
            _check_new_deps(snap, batch)
            files = {task_path(t.id): dump_task(t) for t in new_tasks}
            if len(new_tasks) == 1:
                subject = f"add {new_tasks[0].id} by {who}"
            else:
                subject = f"add {len(new_tasks)} tasks by {who}: {audit.ids_phrase(batch)}"
            trailers = [("Op", "add"), ("Agent", who), ("To", new_tasks[0].state.value)]
            trailers += [("Task", t.id) for t in new_tasks]
            return Write(files, audit.message(subject, trailers), tuple(new_tasks))

        out = self._mutate(who, decide)
        assert out.commit is not None
        return AddResult(out.value, out.commit, out.retries)

    # --- claiming and the verbs ---------------------------------------------

    def claim(self, task_id: str, *, agent: str | None = None) -> OpResult:
        """Claim one task for the agent: one commit, pushed with compare-and-swap.

        A re-claim by the holder succeeds and changes nothing. Raises
        :class:`LostRace` (held by another; details name holder, time and
        commit), :class:`NotClaimable`, :class:`Blocked`, :class:`NotFound`,
        :class:`RemoteUnreachable`, :class:`RetriesExhausted`.
        """
        who = self.whoami(agent)
        validate_id(task_id)

        def decide(snap: Snapshot, attempt: int) -> Write[OpResult] | NoWrite[OpResult]:
            task = snap.require(task_id)
            return self._claim_decision(snap, task, who)

        return self._run_claim(who, decide)

    def next(self, *, agent: str | None = None) -> OpResult:
        """Claim the best ready task; having lost a race, go on to another.

        Raises :class:`NothingReady` and what :meth:`claim` raises.
        """
        who = self.whoami(agent)

        def decide(snap: Snapshot, attempt: int) -> Write[OpResult] | NoWrite[OpResult]:
            tasks, _problems = snap.scan()
            cands = rules.ready(tasks)
            if not cands:
                held = sum(1 for t in tasks if t.holder is not None)
                raise NothingReady(
                    f"nothing is ready to claim ({len(tasks)} tasks, {held} held)",
                    tasks=len(tasks),
                    held=held,
                )
            # First try the best task; once we lost a race, spread out among
            # the best few so that racing agents stop colliding on one task.
            pick = cands[0] if attempt == 0 else self.rng.choice(cands[:NEXT_SPREAD])
            return self._claim_decision(snap, pick, who, op="next")

        return self._run_claim(who, decide)

    def _claim_decision(
        self, snap: Snapshot, task: Task, who: str, op: str = "claim"
    ) -> Write[OpResult] | NoWrite[OpResult]:
        deps = snap.tasks_by_id(task.depends_on)
        verdict = rules.check_claim(task, deps, who)
        if verdict is rules.ClaimVerdict.ALREADY_HELD:
            return NoWrite(OpResult(op, task, task.state.value, None, False, 0))
        new = rules.apply_claim(task, who, self.clock())
        msg = audit.message(
            f"claim {task.id} by {who}",
            [("Op", "claim"), ("Task", task.id), ("Agent", who), ("From", task.state.value), ("To", new.state.value)],
        )
        return Write({task_path(task.id): dump_task(new)}, msg, OpResult(op, new, task.state.value, None, True, 0))

    def _run_claim(self, who: str, decide: Callable[[Snapshot, int], Write[OpResult] | NoWrite[OpResult]]) -> OpResult:
        try:
            out = self._mutate(who, decide)
        except LostRace as e:
            # Name the commit that won, so the loser can read it.
            task = e.details.get("task")
            holder = e.details.get("holder")
            tip = self.transport.local_tip()
            if task and holder and tip:
                commit = self._find_claim(tip, task, holder)
                if commit:
                    e.details["commit"] = commit
                    e.message += f" (commit {commit[:10]})"
                    e.args = (e.message,)
            raise
        r = out.value
        return OpResult(r.op, r.task, r.previous_state, out.commit, r.changed, out.retries)

    def _find_claim(self, tip: str, task_id: str, holder: str, limit: int = 5000) -> str | None:
        for e in self._entries(tip, limit):
            if e.op == "claim" and task_id in e.tasks and e.agent == holder:
                return e.commit
        return None

    def release(self, task_id: str, *, agent: str | None = None) -> OpResult:
        """Give a claimed task back to the queue. Only the holder may.

        Raises :class:`NotHolder`, :class:`NotClaimable` (not active), :class:`NotFound`.
        """
        return self._holder_verb("release", task_id, agent, rules.check_release, rules.apply_release)

    def done(self, task_id: str, *, agent: str | None = None) -> OpResult:
        """Mark the agent's active task done. Only the holder may.

        Raises :class:`NotHolder`, :class:`NotClaimable` (not active), :class:`NotFound`.
        """
        return self._holder_verb("done", task_id, agent, rules.check_done, rules.apply_done)

    def _holder_verb(
        self,
        op: str,
        task_id: str,
        agent: str | None,
        check: Callable[[Task, str], None],
        apply: Callable[[Task], Task],
    ) -> OpResult:
        who = self.whoami(agent)
        validate_id(task_id)

        def decide(snap: Snapshot, attempt: int) -> Write[OpResult]:
            task = snap.require(task_id)
            check(task, who)
            new = apply(task)
            msg = audit.message(
                f"{op} {task.id} by {who}",
                [("Op", op), ("Task", task.id), ("Agent", who), ("From", task.state.value), ("To", new.state.value)],
            )
            return Write({task_path(task.id): dump_task(new)}, msg, OpResult(op, new, task.state.value, None, True, 0))

        out = self._mutate(who, decide)
        r = out.value
        return OpResult(r.op, r.task, r.previous_state, out.commit, True, out.retries)


def _check_new_deps(snap: Snapshot, batch: Mapping[str, Task]) -> None:
    """Every dependency exists (in the store or the batch); no cycle through the batch."""
    for t in batch.values():
        for d in t.depends_on:
            if d not in batch and snap.task(d) is None:
                raise BadInput(
                    f"{t.id} depends on {d!r}, which is neither in the store nor in this batch", task=t.id, dependency=d
                )
    # Existing tasks cannot depend on a new id unless they name a missing task,
    # so a cycle must pass through the batch: walk from each new task.
    memo: dict[str, tuple[str, ...]] = {}

    def deps_of(i: str) -> tuple[str, ...]:
        if i in batch:
            return batch[i].depends_on
        if i not in memo:
            try:
                found = snap.task(i)
            except StoreCorrupt:
                found = None
            memo[i] = found.depends_on if found else ()
        return memo[i]

    state: dict[str, int] = {}
    for root in batch:
        stack = [(root, iter(deps_of(root)))]
        path = [root]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            s = state.get(nxt, 0)
            if s == 1:
                cyc = [*path[path.index(nxt) :], nxt]
                raise BadInput(f"dependency cycle: {' -> '.join(cyc)}", cycle=cyc)
            if s == 0:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(deps_of(nxt))))


_TASKS_README = """\
# gitclaim tasks

One TOML file per task, at tasks/<xx>/<id>.toml, where <xx> is the first two
hex digits of the SHA-1 of the id (`gitclaim show ID` prints the path). The
fan-out keeps every commit small however many tasks the store holds.

Change tasks with gitclaim (`gitclaim claim ID`, `gitclaim done ID`, ...):
every change is one commit whose trailers record who did what. Read the
audit trail with `git log` on this branch or `gitclaim log`.
"""
