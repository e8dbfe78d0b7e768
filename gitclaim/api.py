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
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from . import audit, rules, views
from .cache import FolderCache
from .cas import NoWrite, Outcome, RetryPolicy, Write, mutate
from .errors import (
    AlreadyExists,
    BadInput,
    LostRace,
    NotClaimable,
    NothingReady,
    NotHolder,
    PushRejected,
    SchemaTooNew,
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
    State,
    StoreConfig,
    Task,
    _iso,
    dump_store_config,
    dump_task,
    task_from_input,
    utc,
)
from .results import (
    AddResult,
    HeartbeatResult,
    History,
    InitResult,
    Listing,
    OpResult,
    ReapResult,
    StaleClaim,
    StaleReport,
    TaskView,
)
from .snapshot import Snapshot

DEFAULT_REMOTE = "origin"
DEFAULT_BRANCH = "gitclaim"
AGENT_ENV = "GITCLAIM_AGENT"
NEXT_SPREAD = 8  # after a lost race, `next` picks among this many best candidates


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
    progress: Callable[[str, int, int], None] | None = None  # (stage, done, total) for long work

    def __post_init__(self) -> None:
        self.repo = Repo(self.path)
        self.remote = self.remote or self.repo.config_get("gitclaim.remote") or DEFAULT_REMOTE
        self.branch = self.branch or self.repo.config_get("gitclaim.branch") or DEFAULT_BRANCH
        if self.agent is not None:
            validate_agent(self.agent)
        self._transport: Transport | None = None
        self._cache = FolderCache(self.repo.common_dir)
        self._seen_for_check: dict[str, datetime] = {}  # heartbeats a takeover decision used

    # --- plumbing ------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = self.repo.transport(self.remote_name, self.branch_name)
            self._transport.progress = self.progress
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

    def _mutate(
        self, agent: str, decide: Callable[[Snapshot, int], Write[Any] | NoWrite[Any]], *, optimistic: bool = False
    ) -> Outcome[Any]:
        """Every change goes through the one compare-and-swap loop.

        Only ``claim ID`` builds optimistically on the last tip this clone saw
        (one round trip instead of two when nobody else moved the branch).
        Everything else fetches first: an agent that just pushed and then
        pushes again on its own fresh tip needs one round trip where its
        rivals need two, and under load it wins every race (measured: 8 agents
        over git daemon, some gave up after 60 s without one success).
        """
        return mutate(
            self.repo,
            self.transport,
            decide,
            author=agent,
            email=agent_email(agent),
            now=self.clock,
            policy=self.policy,
            snapshot=self.snapshot,
            optimistic=optimistic,
            before_push=lambda base, new, paths: self._before_push(agent, base, new, paths),
        )

    def _before_push(self, agent: str, base: str, new: str, paths: list[str]) -> None:
        """The validator on our own commit, then the clone's pre-push hook."""
        from .enforce import check_new_commit, run_client_pre_push

        now = utc(self.clock())
        # Heartbeats matter only to a takeover, which checked them itself.
        bad = check_new_commit(self.repo, base, new, now=now, seen=self._seen_for_check, paths=paths)
        if bad:
            raise PushRejected(
                "gitclaim refused its own commit; this is a bug, nothing was pushed:\n"
                + "\n".join(f"  {v}" for v in bad),
                violations=[v.to_json() for v in bad],
            )
        t = self.transport
        run_client_pre_push(self.repo, t.remote, self.repo.remote_url(t.remote), t.branch, new, base)

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

    def board(self, *, offline: bool = False) -> views.Board:
        """Every task, in columns by state."""
        tip = self._tip(offline)
        tasks, _ = self.snapshot(tip).scan()
        return views.board(tasks, tip)

    def who(self, *, offline: bool = False) -> views.Who:
        """Who holds what, since when, and the state of each lease."""
        tip = self._tip(offline)
        tasks, _ = self.snapshot(tip).scan()
        seen = {} if offline else self.transport.fetch_alive()
        return views.who(tasks, tip, utc(self.clock()), seen)

    def blocked(self, *, offline: bool = False) -> views.BlockedView:
        """Tasks waiting on dependencies that are not done, or on something outside."""
        tip = self._tip(offline)
        tasks, _ = self.snapshot(tip).scan()
        return views.blocked(tasks, tip)

    def graph(self, fmt: str = "mermaid", *, offline: bool = False) -> views.Graph:
        """The dependency graph as Graphviz DOT or Mermaid text."""
        if fmt not in ("dot", "mermaid"):
            raise BadInput(f"unknown graph format {fmt!r}: use dot or mermaid", format=fmt)
        tip = self._tip(offline)
        tasks, _ = self.snapshot(tip).scan()
        return views.Graph(fmt, views.dot(tasks) if fmt == "dot" else views.mermaid(tasks), tip)

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

    def _last_change(self, tip: str, task_id: str, limit: int = 2000) -> audit.Entry | None:
        """The latest commit (within ``limit``) that changed ``task_id``, read as an audit entry."""
        for e in self._entries(tip, limit):
            if task_id in e.tasks:
                return e
        return None

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
        counts = Counter(i for i in given if i is not None)
        dup = {i for i, n in counts.items() if n > 1}
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
            for n, (tid, e) in enumerate(zip(ids, entries, strict=True)):
                if self.progress is not None and n % 200 == 0:
                    self.progress("add", n, len(entries))
                raw = {k: v for k, v in e.items()}
                raw["id"] = tid
                if raw.get("priority") is None:
                    raw["priority"] = cfg.default_priority if cfg else DEFAULT_PRIORITY
                new_tasks.append(
                    task_from_input(raw, default_priority=cfg.default_priority, created_at=now, created_by=who)
                )
            if self.progress is not None:
                self.progress("add", len(entries), len(entries))
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

    # --- claiming ------------------------------------------------------------

    def claim(self, task_id: str, *, agent: str | None = None, ttl: int | None = None) -> OpResult:
        """Claim one task for the agent: one commit, pushed with compare-and-swap.

        ``ttl`` gives the claim a lease of that many seconds (0: none; default:
        the store's ``defaults.lease_seconds``). A task whose lease expired is
        taken over, and the commit names the previous holder. A re-claim by the
        holder succeeds and changes nothing. Raises :class:`LostRace` (held by
        another; details name holder, time and commit), :class:`NotClaimable`,
        :class:`Blocked`, :class:`NotFound`, :class:`RemoteUnreachable`,
        :class:`RetriesExhausted`.
        """
        who = self.whoami(agent)
        validate_id(task_id)
        _check_ttl(ttl)

        def decide(snap: Snapshot, attempt: int) -> Write[OpResult] | NoWrite[OpResult]:
            task = snap.require(task_id)
            return self._claim_decision(snap, task, who, "claim", ttl)

        return self._run_claim(who, decide, optimistic=True)

    def next(self, *, agent: str | None = None, ttl: int | None = None) -> OpResult:
        """Claim the best ready task (or one whose lease expired); having lost a
        race, go on to another. Raises :class:`NothingReady` and what
        :meth:`claim` raises.
        """
        who = self.whoami(agent)
        _check_ttl(ttl)

        def decide(snap: Snapshot, attempt: int) -> Write[OpResult] | NoWrite[OpResult]:
            tasks, _problems = snap.scan()
            now = utc(self.clock())
            seen = self._alive_if_needed(tasks, now)
            cands = rules.ready(tasks, now=now, last_seen=seen)
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
            return self._claim_decision(snap, pick, who, "next", ttl, seen)

        return self._run_claim(who, decide)

    def _alive_if_needed(self, tasks: Iterable[Task], now: datetime) -> dict[str, datetime]:
        """Heartbeats, fetched only when some lease looks expired without them."""
        for t in tasks:
            if t.state is State.ACTIVE and t.claim is not None and rules.lease_expired(t.claim, now, None):
                self._seen_for_check = self.transport.fetch_alive()
                return self._seen_for_check
        return {}

    def _claim_decision(
        self,
        snap: Snapshot,
        task: Task,
        who: str,
        op: str,
        ttl: int | None,
        seen: Mapping[str, datetime] | None = None,
    ) -> Write[OpResult] | NoWrite[OpResult]:
        now = utc(self.clock())
        deps = snap.tasks_by_id(task.depends_on)
        if seen is None:
            seen = self._alive_if_needed([task], now)
        verdict = rules.check_claim(task, deps, who, now=now, last_seen=seen)
        if verdict is rules.ClaimVerdict.ALREADY_HELD:
            return NoWrite(OpResult(op, task, task.state.value, None, False, 0))
        lease = snap.config.lease_seconds if ttl is None else ttl
        new = rules.apply_claim(task, who, now, lease or None)
        trailers = [("Op", "claim"), ("Task", task.id), ("Agent", who), ("From", task.state.value), ("To", "active")]
        previous = None
        if verdict is rules.ClaimVerdict.TAKEOVER:
            assert task.claim is not None
            previous = task.claim.holder
            expiry = rules.lease_expiry(task.claim, seen.get(previous))
            subject = f"take over {task.id} from {previous} by {who} (lease expired {_iso(expiry)})"
            trailers[0] = ("Op", "takeover")
            trailers.append(("Previous-Holder", previous))
        else:
            subject = f"claim {task.id} by {who}"
        if new.claim is not None and new.claim.lease_seconds:
            trailers.append(("Lease-Seconds", str(new.claim.lease_seconds)))
        msg = audit.message(subject, trailers)
        result = OpResult(op, new, task.state.value, None, True, 0, previous_holder=previous)
        return Write({task_path(task.id): dump_task(new)}, msg, result)

    def _run_claim(
        self,
        who: str,
        decide: Callable[[Snapshot, int], Write[OpResult] | NoWrite[OpResult]],
        *,
        optimistic: bool = False,
    ) -> OpResult:
        try:
            out = self._mutate(who, decide, optimistic=optimistic)
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
        return _with_commit(out)

    def _find_claim(self, tip: str, task_id: str, holder: str, limit: int = 5000) -> str | None:
        for e in self._entries(tip, limit):
            if e.op in ("claim", "takeover", "handoff") and task_id in e.tasks:
                if e.op == "handoff" and e.trailers.get("To-Agent", ("",))[0] == holder:
                    return e.commit
                if e.op != "handoff" and e.agent == holder:
                    return e.commit
        return None

    # --- the other verbs -----------------------------------------------------

    def release(self, task_id: str, *, agent: str | None = None) -> OpResult:
        """Give a claimed task back to the queue. Only the holder may.

        Raises :class:`NotHolder`, :class:`NotClaimable` (not active), :class:`NotFound`.
        """
        return self._verb("release", task_id, agent)

    def done(self, task_id: str, *, agent: str | None = None) -> OpResult:
        """Finish a task: the holder of an active task, or anyone approving one in review.

        Raises :class:`NotHolder`, :class:`NotClaimable`, :class:`NotFound`.
        """
        return self._verb("done", task_id, agent)

    def handoff(self, task_id: str, to: str, *, agent: str | None = None) -> OpResult:
        """Pass an active task to another agent; the commit records both. Holder only."""
        validate_agent(to)
        return self._verb("handoff", task_id, agent, to=to)

    def wait(self, task_id: str, waiting_for: str, *, agent: str | None = None) -> OpResult:
        """Park the holder's task until ``waiting_for`` happens; the holder keeps it."""
        text = audit.one_line(waiting_for, 200)
        if not text:
            raise BadInput("say what the task waits for (--for TEXT)")
        return self._verb("wait", task_id, agent, fields={"waiting_for": text}, note=text)

    def resume(self, task_id: str, *, agent: str | None = None) -> OpResult:
        """Continue a waiting task (holder only). Resuming is a sign of life: the
        holder's heartbeat is renewed first, so a lease that ran out while the
        task was parked does not expose it to a takeover the moment it resumes."""
        self._beat(self.whoami(agent))
        return self._verb("resume", task_id, agent)

    def review(self, task_id: str, *, agent: str | None = None) -> OpResult:
        """Ask for review; the holder stays, anyone may then ``done`` or ``reopen`` it."""
        return self._verb("review", task_id, agent)

    def fail(self, task_id: str, reason: str, *, agent: str | None = None) -> OpResult:
        """The holder gives up on the task, saying why."""
        text = audit.one_line(reason, 500)
        if not text:
            raise BadInput("say why the task failed (--reason TEXT)")
        return self._verb("fail", task_id, agent, fields={"fail_reason": text}, note=text)

    def cancel(self, task_id: str, *, agent: str | None = None) -> OpResult:
        """Drop a task: anyone if unheld, the holder if held."""
        return self._verb("cancel", task_id, agent)

    def reopen(self, task_id: str, *, agent: str | None = None) -> OpResult:
        """Put a done, cancelled, failed or reviewed task back in the queue."""
        return self._verb("reopen", task_id, agent)

    def reset(self, task_id: str, *, agent: str | None = None) -> OpResult:
        """Clear anyone's claim and put the task back (an operator's override);
        the commit records whom it was taken from."""
        return self._verb("reset", task_id, agent)

    def retry(self, task_id: str, *, agent: str | None = None) -> OpResult:
        """Run a failed or done task again. In the same commit, clear the claims
        of every task downstream of it (transitively), which were built on the
        old result."""
        return self._verb("retry", task_id, agent)

    def _verb(
        self,
        verb: str,
        task_id: str,
        agent: str | None,
        *,
        to: str | None = None,
        fields: Mapping[str, Any] | None = None,
        note: str = "",
    ) -> OpResult:
        who = self.whoami(agent)
        validate_id(task_id)

        def decide(snap: Snapshot, attempt: int) -> Write[OpResult] | NoWrite[OpResult]:
            task = snap.require(task_id)
            try:
                row = rules.check_move(verb, task, who)
            except (NotClaimable, NotHolder):
                # The same command run again after its first push was cut off
                # (or interrupted) after landing: recognise the change as the
                # caller's own instead of refusing what is already done.
                last = self._last_change(snap.commit, task_id)
                if (
                    last is not None
                    and (last.op, last.agent, last.to_state) == (verb, who, task.state.value)
                    and (verb != "handoff" or last.trailers.get("To-Agent", ("",))[0] == to)
                    and all(getattr(task, k) == v for k, v in (fields or {}).items())  # wait/fail: same text
                ):
                    return NoWrite(OpResult(verb, task, last.from_state or task.state.value, None, False, 0))
                raise
            if verb == "handoff" and task.holder == to:
                raise BadInput(f"{task_id} is already held by {to}", task=task_id, to=to)
            now = utc(self.clock())
            new = rules.apply_move(row, task, now=now, to=to, **(fields or {}))
            files = {task_path(task.id): dump_task(new)}
            trailers = [("Op", verb), ("Task", task.id), ("Agent", who), ("From", task.state.value)]
            trailers.append(("To", new.state.value))
            # whose claim this ended, when it was not the caller's own
            previous = task.holder if task.holder not in (None, new.holder, who) else None
            if verb == "handoff":
                previous = task.holder  # the caller, whose claim passes on
            if previous is not None:
                trailers.append(("Previous-Holder", previous))
            if to is not None:
                trailers.append(("To-Agent", to))
            if note:
                trailers.append(("Note", note))
            also: list[Task] = []
            if verb == "retry":
                tasks, _ = snap.scan()
                by_id = {t.id: t for t in tasks}
                for down_id in rules.downstream(tasks, task.id):
                    down = by_id[down_id]
                    if down.state in rules.CLAIMED and down.claim is not None:
                        cleared = down.evolve(state=State.TODO, claim=None, waiting_for=None)
                        files[task_path(down_id)] = dump_task(cleared)
                        also.append(cleared)
                        trailers.append(("Task", down_id))
                        trailers.append(("Cleared", f"{down_id} from {down.claim.holder}"))
            subject = {
                "handoff": f"hand off {task.id} from {who} to {to}",
                "reset": f"reset {task.id} by {who}" + (f" (was held by {previous})" if previous else ""),
                "retry": f"retry {task.id} by {who}" + (f", clearing {len(also)} downstream claims" if also else ""),
                "wait": f"wait on {task.id} by {who}: {note}",
                "fail": f"fail {task.id} by {who}: {note}",
            }.get(verb, f"{verb} {task.id} by {who}")
            msg = audit.message(subject, trailers)
            result = OpResult(verb, new, task.state.value, None, True, 0, previous_holder=previous, also=tuple(also))
            return Write(files, msg, result)

        return _with_commit(self._mutate(who, decide))

    # --- editing -------------------------------------------------------------

    def edit(self, task_id: str, changes: Mapping[str, str], *, agent: str | None = None) -> OpResult:
        """Change plain fields: ``changes`` maps a field to its new value as text.

        Lists (tags, depends_on, acceptance) take comma-separated text or a TOML
        array; other fields not owned by gitclaim take any TOML value (or plain
        text). ``state`` may move only among backlog, todo and someday; claim
        fields change only through verbs. Raises :class:`BadInput`.
        """
        who = self.whoami(agent)
        validate_id(task_id)
        if not changes:
            raise BadInput("nothing to change: give --set FIELD=VALUE")

        def decide(snap: Snapshot, attempt: int) -> Write[OpResult]:
            task = snap.require(task_id)
            new = _edited(task, changes)
            if new.state is not task.state:
                rules.check_move("edit", task, who)
                if new.state not in rules.PLANNING:
                    raise BadInput(
                        f"edit moves a task only among {', '.join(sorted(s.value for s in rules.PLANNING))};"
                        f" use a verb to make it {new.state.value}",
                        task=task_id,
                    )
            if new.depends_on != task.depends_on:
                _check_new_deps(snap, {new.id: new})
            msg = audit.message(
                f"edit {task.id} by {who}: {', '.join(sorted(changes))}",
                [("Op", "edit"), ("Task", task.id), ("Agent", who), ("From", task.state.value),
                 ("To", new.state.value), *[("Field", k) for k in sorted(changes)]],
            )  # fmt: skip
            return Write(
                {task_path(task.id): dump_task(new)}, msg, OpResult("edit", new, task.state.value, None, True, 0)
            )

        return _with_commit(self._mutate(who, decide))

    # --- leases --------------------------------------------------------------

    def heartbeat(self, *, agent: str | None = None) -> HeartbeatResult:
        """Renew every lease the agent holds, by overwriting its liveness ref.

        Adds no commit to the store branch and never contends with claims.
        """
        who = self.whoami(agent)
        now = self._beat(who)
        tip = self.transport.local_tip()
        holding: tuple[str, ...] = ()
        if tip is not None and self.repo.has(tip):
            tasks, _ = self.snapshot(tip).scan()
            holding = tuple(t.id for t in tasks if t.holder == who)
        return HeartbeatResult(who, now, holding)

    def _beat(self, who: str) -> datetime:
        now = utc(self.clock())
        msg = audit.message(f"heartbeat {who}", [("Op", "heartbeat"), ("Agent", who), ("At", _iso(now) or "")])
        commit = self.repo.write_commit(None, {}, msg, who, agent_email(who), now)
        self.transport.push_alive(who, commit)
        return now

    def stale(self, *, silent_after: int | None = None, offline: bool = False) -> StaleReport:
        """Claims whose lease expired, and (with ``silent_after`` seconds) claims
        whose holder has not been heard from for that long."""
        tip = self._tip(offline)
        tasks, _ = self.snapshot(tip).scan()
        now = utc(self.clock())
        seen = self.transport.fetch_alive()
        return StaleReport(tuple(_stale_claims(tasks, now, seen, silent_after)), tip, now)

    def reap(self, *, silent_after: int | None = None, agent: str | None = None) -> ReapResult:
        """Return every expired (or, with ``silent_after``, silent) claim to the
        queue in one commit that records whom each was taken from."""
        who = self.whoami(agent)

        def decide(snap: Snapshot, attempt: int) -> Write[tuple[StaleClaim, ...]] | NoWrite[tuple[StaleClaim, ...]]:
            tasks, _ = snap.scan()
            now = utc(self.clock())
            found = _stale_claims(tasks, now, self.transport.fetch_alive(), silent_after)
            if not found:
                return NoWrite(())
            files = {}
            trailers = [("Op", "reap"), ("Agent", who)]
            for st in found:
                files[task_path(st.task.id)] = dump_task(st.task.evolve(state=State.TODO, claim=None, waiting_for=None))
                trailers.append(("Task", st.task.id))
                trailers.append(("Cleared", f"{st.task.id} from {st.holder} ({st.reason})"))
            subject = f"reap {len(found)} stale claims by {who}: {audit.ids_phrase(st.task.id for st in found)}"
            return Write(files, audit.message(subject, trailers), tuple(found))

        out = self._mutate(who, decide)
        return ReapResult(out.value, out.commit, out.retries)


def _check_ttl(ttl: int | None) -> None:
    if ttl is not None and (ttl < 0 or ttl > 366 * 86400):
        raise BadInput(f"--ttl must be 0 (no lease) to {366 * 86400} seconds, got {ttl}", ttl=ttl)


def _with_commit(out: Outcome[OpResult]) -> OpResult:
    return replace(out.value, commit=out.commit, retries=out.retries)


def _stale_claims(
    tasks: Iterable[Task], now: datetime, seen: Mapping[str, datetime], silent_after: int | None
) -> list[StaleClaim]:
    out = []
    for t in tasks:
        c = t.claim
        if c is None or t.state not in rules.CLAIMED:
            continue
        last = seen.get(c.holder)
        expiry = rules.lease_expiry(c, last)
        if t.state is State.ACTIVE and expiry is not None and now >= expiry:
            out.append(StaleClaim(t, c.holder, c.claimed_at, expiry, last, "expired"))
        elif silent_after is not None and now - max(last or c.claimed_at, c.claimed_at) >= timedelta(
            seconds=silent_after
        ):
            out.append(StaleClaim(t, c.holder, c.claimed_at, expiry, last, "silent"))
    out.sort(key=lambda s: s.task.id)
    return out


_LIST_FIELDS = ("tags", "depends_on", "acceptance")
_OWNED = ("schema", "id", "claim", "created_at", "created_by", "waiting_for", "fail_reason")


def _edited(task: Task, changes: Mapping[str, str]) -> Task:
    """The task with ``changes`` applied and validated. Pure. Raises :class:`BadInput`."""
    import tomllib

    from .model import task_from_doc, task_to_doc

    doc = task_to_doc(task)
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
        if key in ("title", "description", "state") and not isinstance(value, str):
            value = text
        doc[key] = value
    try:
        return task_from_doc(doc, expected_id=task.id, path=f"task {task.id}")
    except (StoreCorrupt, SchemaTooNew) as e:
        raise BadInput(e.message.replace(f"task {task.id}: ", f"edit of {task.id}: ", 1), task=task.id) from None


def _check_new_deps(snap: Snapshot, batch: Mapping[str, Task]) -> None:
    """Every dependency exists (in the store or the batch); no cycle through the batch.

    Existing tasks cannot depend on a new id unless they name a missing
    task, so a cycle this change creates passes through the batch.
    """
    for t in batch.values():
        for d in t.depends_on:
            if d not in batch and snap.task(d) is None:
                raise BadInput(
                    f"{t.id} depends on {d!r}, which is neither in the store nor in this batch", task=t.id, dependency=d
                )

    @cache
    def lookup(task_id: str) -> Task | None:
        if task_id in batch:
            return batch[task_id]
        try:
            return snap.task(task_id)
        except (StoreCorrupt, SchemaTooNew):
            return None

    cycles = rules.dependency_cycles((t.id for t in batch.values() if t.depends_on), lookup)
    if cycles:
        raise BadInput(f"dependency cycle: {' -> '.join(cycles[0])}", cycle=cycles[0])


_TASKS_README = """\
# gitclaim tasks

One TOML file per task, at tasks/<xx>/<id>.toml, where <xx> is the first two
hex digits of the SHA-1 of the id (`gitclaim show ID` prints the path). The
fan-out keeps every commit small however many tasks the store holds.

Change tasks with gitclaim (`gitclaim claim ID`, `gitclaim done ID`, ...):
every change is one commit whose trailers record who did what. Read the
audit trail with `git log` on this branch or `gitclaim log`.
"""
