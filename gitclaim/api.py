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

import os
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import audit, compaction, readindex, views
from .api_admin import AdminOps
from .cache import FolderCache
from .cas import NoWrite, Outcome, Pace, RetryPolicy, Write, mutate
from .errors import BadInput, NotAllowed, PushRejected
from .git import Repo, Transport, require
from .identity import AGENT_ENV, agent_email, remember_agent, resolve_agent
from .ids import validate_agent
from .model import utc
from .ops import add as add_ops
from .ops import bootstrap, leases, notes, queries, verbs
from .ops import claim as claim_ops
from .ops import edit as edit_ops
from .refnames import DEFAULT_BRANCH, DEFAULT_REMOTE, validate_branch, validate_remote
from .results import (
    AddResult,
    DoneResult,
    HeartbeatResult,
    History,
    InitResult,
    Listing,
    OpResult,
    ReapResult,
    RestoreResult,
    RunResult,
    StaleReport,
    TaskView,
)
from .snapshot import Snapshot
from .trust import RULES as IDENTITY_RULES

if TYPE_CHECKING:
    from .signing import Signer

__all__ = ["AGENT_ENV", "DEFAULT_BRANCH", "DEFAULT_REMOTE", "Store", "agent_email", "resolve_agent"]


@dataclass
class Store(AdminOps):
    """A handle on the shared store as seen from one clone.

    ``path`` is any folder inside the clone (or a linked worktree).
    ``remote`` and ``branch`` default to git config ``gitclaim.remote`` /
    ``gitclaim.branch`` (written by :meth:`init`), then ``origin`` / ``gitclaim``.

    The store owns the configuration, the transport and the one mutation path
    (:meth:`_mutate`); each operation is a function in :mod:`gitclaim.ops`
    that the methods below hand their arguments to.
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
        # Both become parts of refs, here and on the remote: refuse what git would before anything is written.
        self.remote = validate_remote(self.remote or self.repo.config_get("gitclaim.remote") or DEFAULT_REMOTE)
        self.branch = validate_branch(self.branch or self.repo.config_get("gitclaim.branch") or DEFAULT_BRANCH)
        if self.agent is not None:
            validate_agent(self.agent)
        self._transport: Transport | None = None
        self._cache = FolderCache(self.repo.common_dir)
        self._index: readindex.Index | None = None
        self._seen_for_check: dict[str, datetime] = {}  # heartbeats a takeover decision used
        self._signer: Signer | None = None
        self._signer_known = False
        self._pace = Pace()  # this agent's measured pace on the branch: what the retry waits count in

    # --- configuration and the one mutation path ------------------------------

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = self.repo.transport(self.remote_name, self.branch_name)
            self._transport.progress = self.progress
            self._transport.rewrite_check = compaction.guard(self._transport)
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
        explicit = agent if agent is not None else self.agent
        return resolve_agent(explicit, self.env, self.repo.config_get, lambda name: remember_agent(self.repo, name))

    @property
    def signer(self) -> Signer | None:
        """What signs this clone's commits, from git's own configuration
        (``gpg.format=ssh``, ``user.signingkey``, ``commit.gpgsign`` or
        ``gitclaim.sign``; :mod:`gitclaim.signing`), or None when signing is off.
        Raises :class:`BadInput` for a configuration gitclaim cannot sign with."""
        if not self._signer_known:
            from .signing import signer_from_config

            self._signer = signer_from_config(self.repo.config_get, cwd=self.repo.top)
            self._signer_known = True
        return self._signer

    @property
    def sign(self) -> Callable[[bytes], str] | None:
        signer = self.signer
        return signer.sign if signer is not None else None

    def snapshot(self, commit: str) -> Snapshot:
        return Snapshot(self.repo, commit, self._cache)

    def read_index(self, commit: str) -> readindex.Index:
        """The read index of ``commit`` (:mod:`gitclaim.readindex`): kept in memory
        and in the clone's git folder, brought up to date from the last one by the
        diff of the two trees, rebuilt when missing or damaged."""
        self._index = readindex.current(self.repo, self.remote_name, self.branch_name, commit, self._index)
        return self._index

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
            sign=self.sign,
            pace=self._pace,
        )

    def _before_push(self, agent: str, base: str, new: str, paths: list[str]) -> None:
        """The validator on our own commit, then the clone's pre-push hook."""
        from .enforce import check_new_commit
        from .install import run_client_pre_push
        from .judge import Judge

        now = utc(self.clock())
        # Heartbeats matter only to a takeover, which checked them itself.
        judge = Judge(self.repo)
        bad = check_new_commit(self.repo, base, new, now=now, seen=self._seen_for_check, paths=paths, judge=judge)
        denied = [v for v in bad if v.rule in IDENTITY_RULES]
        if denied:
            raise NotAllowed(
                "the store's policy refuses this change; nothing was pushed:\n" + "\n".join(f"  {v}" for v in denied),
                rule=denied[0].rule,
                violations=[v.to_json() for v in denied],
            )
        if bad:
            raise PushRejected(
                "gitclaim refused its own commit; this is a bug, nothing was pushed:\n"
                + "\n".join(f"  {v}" for v in bad),
                violations=[v.to_json() for v in bad],
            )
        t = self.transport
        run_client_pre_push(self.repo, t.remote, self.repo.remote_url(t.remote), t.branch, new, base)

    # --- the operations (docs/cli.md; one function each in gitclaim.ops) -------

    def init(self, agent: str | None = None, *, require_signed: bool = False) -> InitResult:
        """Create the store branch on the remote, or attach to the one there.

        ``require_signed``: a new store requires signed commits from its first
        one, which lists the agent's key and makes it the admin (docs/identity.md).
        Raises :class:`RemoteUnreachable`, :class:`StoreCorrupt` (the branch exists
        but is not a store), :class:`SchemaTooNew`, :class:`BadInput` (no signing key).
        """
        return bootstrap.init(self, agent, require_signed)

    def restore(self, agent: str | None = None) -> RestoreResult:
        """Put back the store branch this clone last saw, history intact, after it
        vanished from the remote (create only: never over a branch made since).
        Raises :class:`BadInput` (nothing to restore from this clone)."""
        return bootstrap.restore(self, agent)

    def list(
        self,
        *,
        state: Iterable[str] | None = None,
        holder: str | None = None,
        tag: str | None = None,
        parent: str | None = None,
        limit: int | None = None,
        offline: bool = False,
    ) -> Listing:
        """Tasks filtered by state(s), holder, tag and parent (its children), ordered
        like ``ready``; the first ``limit`` of them (``total`` says how many there are)."""
        return queries.list_tasks(self, state, holder, tag, offline, limit, parent)

    def ready(self, *, limit: int | None = None, offline: bool = False) -> Listing:
        """Tasks claimable now: claimable state, every dependency done; by priority,
        then age; the first ``limit`` of them."""
        return queries.ready(self, offline, limit)

    def show(self, task_id: str, *, offline: bool = False, history_limit: int | None = None) -> TaskView:
        """One task, what blocks it, and its history (all of it, or the newest
        ``history_limit`` changes). Raises :class:`NotFound`."""
        return queries.show(self, task_id, offline, history_limit)

    def board(self, *, limit: int | None = None, offline: bool = False) -> views.Board:
        """Every task, in columns by state (the first ``limit`` of each)."""
        return queries.board(self, offline, limit)

    def who(self, *, limit: int | None = None, offline: bool = False) -> views.Who:
        """Who holds what, since when, and the state of each lease."""
        return queries.who(self, offline, limit)

    def blocked(self, *, limit: int | None = None, offline: bool = False) -> views.BlockedView:
        """Tasks waiting on dependencies that are not done, or on something outside."""
        return queries.blocked(self, offline, limit)

    def graph(self, fmt: str = "mermaid", *, offline: bool = False) -> views.Graph:
        """The dependency graph as Graphviz DOT or Mermaid text."""
        return queries.graph(self, fmt, offline)

    def log(self, task_id: str | None = None, *, limit: int | None = None, offline: bool = False) -> History:
        """The audit trail, newest first, read from commits and their trailers."""
        return queries.log(self, task_id, limit, offline)

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
        parent: str | None = None,
        agent: str | None = None,
    ) -> AddResult:
        """Add one task (a child of ``parent``, if given). Raises :class:`BadInput`, :class:`AlreadyExists`."""
        entry: dict[str, Any] = {
            "title": title,
            "priority": priority,
            "depends_on": [*depends_on],
            "tags": [*tags],
            "description": description,
            "acceptance": [*acceptance],
            "parent": parent,
        }
        if task_id is not None:
            entry["id"] = task_id
        return add_ops.add_many(self, [entry], agent)

    def add_many(self, entries: Sequence[Mapping[str, Any]], *, agent: str | None = None) -> AddResult:
        """Add many tasks in one commit; they may depend on each other and on
        existing tasks. Raises :class:`BadInput`, :class:`AlreadyExists`.
        """
        return add_ops.add_many(self, entries, agent)

    def claim(self, task_id: str, *, agent: str | None = None, ttl: int | str | None = None) -> OpResult:
        """Claim one task for the agent: one commit, pushed with compare-and-swap.

        ``ttl`` gives the claim a lease: seconds, or text such as ``90s``, ``15m``,
        ``2h`` (0: none; default: the store's ``defaults.lease_seconds``). A task whose lease expired is
        taken over, and the commit names the previous holder. A re-claim by the
        holder succeeds and changes nothing. Raises :class:`LostRace` (held by
        another; details name holder, time and commit), :class:`NotClaimable`,
        :class:`Blocked`, :class:`NotFound`, :class:`RemoteUnreachable`,
        :class:`RetriesExhausted`.
        """
        return claim_ops.claim(self, task_id, agent, ttl)

    def next(
        self,
        *,
        agent: str | None = None,
        ttl: int | str | None = None,
        wait: bool = False,
        timeout: int | str | None = None,
    ) -> OpResult:
        """Claim the best ready task (or one whose lease expired); having lost a
        race, go on to another. With ``wait``, block until one is claimable (up
        to ``timeout``; None: for ever), looking at the remote's tip and
        fetching only when it moved. Raises :class:`NothingReady` (after a
        timeout: details ``timed_out``) and what :meth:`claim` raises.
        """
        if wait:
            from .ops.wait import next_wait

            return next_wait(self, agent, ttl, timeout)
        if timeout is not None:
            raise BadInput("timeout goes with wait (next --wait --timeout D)")
        return claim_ops.next_task(self, agent, ttl)

    def run(
        self,
        task_id: str | None = None,
        *,
        pick_next: bool = False,
        ttl: int | str | None = None,
        loop: bool = False,
        agent: str | None = None,
        command: Sequence[str],
    ) -> RunResult:
        """Claim ``task_id`` (or, ``pick_next``, the best ready task), run
        ``command`` on it, renew the lease while it runs, and mark the task done
        (exit 0) or failed (the status as the reason); on SIGINT or SIGTERM
        (forwarded to it) release it; ``loop``: one task after another until
        nothing is ready (docs/agents-run.md). Raises what :meth:`claim` and
        :meth:`next` raise."""
        from .ops.run import run

        return run(self, command, task_id, pick_next, ttl, loop, agent)

    def watch(self) -> Iterator[audit.Entry]:
        """Every operation that lands on the store branch from now on, oldest
        first, as :meth:`log` reads it; never ends by itself. Raises
        :class:`RemoteUnreachable`."""
        from .ops.watch import watch

        return watch(self)

    def release(self, task_id: str, *, agent: str | None = None) -> OpResult:
        """Give a claimed task back to the queue. Only the holder may.

        Raises :class:`NotHolder`, :class:`NotClaimable` (not active), :class:`NotFound`.
        """
        return verbs.run(self, "release", task_id, agent)

    def done(
        self,
        task_id: str,
        *,
        result: str | None = None,
        next: bool = False,
        ttl: int | str | None = None,
        agent: str | None = None,
    ) -> DoneResult:
        """Finish a task: the holder of an active task, or anyone approving one in review.
        ``result`` (a link, a commit, a summary) is recorded with the completion.

        With ``next``, claim the best ready task in the same commit and push
        (``ttl``: its lease, as for :meth:`next`): the result's ``next`` is that
        claim, or ``nothing_ready`` is true and the task is only finished. A
        lost race picks another task; a finished task changed meanwhile is
        refused as without ``next``.

        Raises :class:`NotHolder`, :class:`NotClaimable`, :class:`NotFound`, :class:`BadInput`.
        """
        if next:
            from .ops.donenext import done_next

            return done_next(self, task_id, agent, result, ttl)
        if ttl is not None:
            raise BadInput("ttl goes with next (done ID --next --ttl D): the lease of the task it claims")
        return DoneResult.of(verbs.run(self, "done", task_id, agent, result=result))

    def note(self, task_id: str, text: str, *, agent: str | None = None) -> OpResult:
        """Append a timestamped note by the agent to the task, in one commit. Anyone
        may note any task; notes are never rewritten. Raises :class:`NotFound`, :class:`BadInput`."""
        return notes.note(self, task_id, text, agent)

    def handoff(self, task_id: str, to: str, *, agent: str | None = None) -> OpResult:
        """Pass an active task to another agent; the commit records both. Holder only."""
        return verbs.run(self, "handoff", task_id, agent, to=to)

    def wait(self, task_id: str, waiting_for: str, *, agent: str | None = None) -> OpResult:
        """Park the holder's task until ``waiting_for`` happens; the holder keeps it."""
        return verbs.run(self, "wait", task_id, agent, text=waiting_for)

    def resume(self, task_id: str, *, agent: str | None = None) -> OpResult:
        """Continue a waiting task (holder only). Resuming is a sign of life: the
        holder's heartbeat is renewed first, so a lease that ran out while the
        task was parked does not expose it to a takeover the moment it resumes."""
        return verbs.run(self, "resume", task_id, agent)

    def review(self, task_id: str, *, agent: str | None = None) -> OpResult:
        """Ask for review; the holder stays, anyone may then ``done`` or ``reopen`` it."""
        return verbs.run(self, "review", task_id, agent)

    def fail(self, task_id: str, reason: str, *, agent: str | None = None) -> OpResult:
        """The holder gives up on the task, saying why."""
        return verbs.run(self, "fail", task_id, agent, text=reason)

    def cancel(self, task_id: str, *, agent: str | None = None) -> OpResult:
        """Drop a task: anyone if unheld, the holder if held."""
        return verbs.run(self, "cancel", task_id, agent)

    def reopen(self, task_id: str, *, agent: str | None = None) -> OpResult:
        """Put a done, cancelled, failed or reviewed task back in the queue."""
        return verbs.run(self, "reopen", task_id, agent)

    def reset(self, task_id: str, *, agent: str | None = None) -> OpResult:
        """Clear anyone's claim and put the task back (an operator's override);
        the commit records whom it was taken from."""
        return verbs.run(self, "reset", task_id, agent)

    def retry(self, task_id: str, *, agent: str | None = None) -> OpResult:
        """Run a failed or done task again. In the same commit, clear the claims
        of every task downstream of it (transitively), which were built on the
        old result."""
        return verbs.run(self, "retry", task_id, agent)

    def edit(self, task_id: str, changes: Mapping[str, str], *, agent: str | None = None) -> OpResult:
        """Change plain fields: ``changes`` maps a field to its new value as text.

        Lists (tags, depends_on, acceptance) take comma-separated text or a TOML
        array; other fields not owned by gitclaim take any TOML value (or plain
        text). ``state`` may move only among backlog, todo and someday; claim
        fields change only through verbs. Raises :class:`BadInput`.
        """
        return edit_ops.edit(self, task_id, changes, agent)

    def heartbeat(self, *, agent: str | None = None) -> HeartbeatResult:
        """Renew every lease the agent holds, by overwriting its liveness ref.

        Adds no commit to the store branch and never contends with claims.
        """
        return leases.heartbeat(self, agent)

    def stale(
        self, *, silent_after: int | str | None = None, limit: int | None = None, offline: bool = False
    ) -> StaleReport:
        """Claims whose lease expired, and (with ``silent_after`` seconds) claims
        whose holder has not been heard from for that long."""
        return leases.stale(self, silent_after, offline, limit)

    def reap(self, *, silent_after: int | str | None = None, agent: str | None = None) -> ReapResult:
        """Return every expired (or, with ``silent_after``, silent) claim to the
        queue in one commit that records whom each was taken from."""
        return leases.reap(self, silent_after, agent)
