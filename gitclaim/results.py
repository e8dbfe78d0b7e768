"""What the operations return: frozen values with a stable ``to_json()``.

The CLI prints ``to_json()`` under ``result`` with --json, the MCP server
returns it, and Python callers use the fields. The shapes are documented in
docs/cli.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import audit
from .ids import archive_path, task_path
from .model import Problem, Task, _iso
from .policy import Policy
from .views import HeldClaim

if TYPE_CHECKING:
    from .cas import Outcome


@dataclass(frozen=True)
class InitResult:
    remote: str
    branch: str
    commit: str
    created: bool  # False: attached to an existing store

    def to_json(self) -> dict[str, Any]:
        return {"remote": self.remote, "branch": self.branch, "commit": self.commit, "created": self.created}


@dataclass(frozen=True)
class RestoreResult:
    remote: str
    branch: str
    commit: str  # the tip of the store branch on the remote now
    restored: bool  # False: the remote had it already (nothing was pushed)

    def to_json(self) -> dict[str, Any]:
        return {"remote": self.remote, "branch": self.branch, "commit": self.commit, "restored": self.restored}


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
    previous_holder: str | None = None  # whose claim a takeover, reset or handoff ended
    also: tuple[Task, ...] = ()  # other tasks changed in the same commit (retry's downstream)

    def to_json(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "task": self.task.to_json(),
            "from": self.previous_state,
            "to": self.task.state.value,
            "commit": self.commit,
            "changed": self.changed,
            "retries": self.retries,
            "previous_holder": self.previous_holder,
            "also": [t.to_json() for t in self.also],
        }


@dataclass(frozen=True)
class DoneResult(OpResult):
    """``done``: the finished task, and with ``--next`` the task claimed in the
    same commit (``next``), or that nothing was ready to claim (``nothing_ready``)."""

    next: OpResult | None = None
    nothing_ready: bool = False

    @classmethod
    def of(cls, r: OpResult) -> DoneResult:
        """A plain ``done``'s result: nothing claimed with it."""
        return cls(r.op, r.task, r.previous_state, r.commit, r.changed, r.retries, r.previous_holder, r.also)

    def to_json(self) -> dict[str, Any]:
        then = self.next.to_json() if self.next is not None else None
        return {**super().to_json(), "next": then, "nothing_ready": self.nothing_ready}


def with_commit(out: Outcome[OpResult]) -> OpResult:
    """The result of a change, with the commit that landed it and the races lost on the way."""
    return replace(out.value, commit=out.commit, retries=out.retries)


@dataclass(frozen=True)
class StaleClaim(HeldClaim):
    reason: str  # "expired" (lease ran out) or "silent" (no heartbeat for long)

    def to_json(self) -> dict[str, Any]:
        return {**self.claim_json(), "reason": self.reason}


@dataclass(frozen=True)
class StaleReport:
    claims: tuple[StaleClaim, ...]
    commit: str
    now: datetime
    problems: tuple[Problem, ...] = ()
    total: int | None = None
    cut: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "claims": [c.to_json() for c in self.claims],
            "problems": [p.to_json() for p in self.problems],
            "commit": self.commit,
            "now": _iso(self.now),
            "total": len(self.claims) if self.total is None else self.total,
            "cut": self.cut,
        }


@dataclass(frozen=True)
class ReapResult:
    reaped: tuple[StaleClaim, ...]
    commit: str | None
    retries: int

    def to_json(self) -> dict[str, Any]:
        return {"reaped": [c.to_json() for c in self.reaped], "commit": self.commit, "retries": self.retries}


@dataclass(frozen=True)
class HeartbeatResult:
    agent: str
    at: datetime
    holding: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"agent": self.agent, "at": _iso(self.at), "holding": list(self.holding)}


@dataclass(frozen=True)
class Listing:
    tasks: tuple[Task, ...]  # the first ``limit`` of them, in the listing's order
    problems: tuple[Problem, ...]
    commit: str
    total: int | None = None  # how many there are (None: as many as shown)
    cut: bool = False  # a limit left some out

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": [t.to_json() for t in self.tasks],
            "problems": [p.to_json() for p in self.problems],
            "commit": self.commit,
            "total": len(self.tasks) if self.total is None else self.total,
            "cut": self.cut,
        }


@dataclass(frozen=True)
class TaskView:
    task: Task
    blockers: tuple[dict[str, str], ...]
    history: tuple[audit.Entry, ...]  # every change to the task's file, newest first
    commit: str
    history_cut: bool = False  # a history_limit left older changes out
    children: tuple[dict[str, str], ...] = ()  # the tasks whose parent it is: {id, state, title}
    fetched: tuple[str, ...] = ()  # what reading the history fetched (a shallow clone's rest, archives)
    archived: bool = False  # gitclaim archive moved it out of the live folder

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task.to_json(),
            "path": archive_path(self.task.id) if self.archived else task_path(self.task.id),
            "archived": self.archived,
            "blockers": list(self.blockers),
            "children": list(self.children),
            "history": [e.to_json() for e in self.history],
            "history_cut": self.history_cut,
            "commit": self.commit,
            "fetched": list(self.fetched),
        }


@dataclass(frozen=True)
class History:
    entries: tuple[audit.Entry, ...]
    commit: str
    cut: bool = False  # --limit left older entries out
    fetched: tuple[str, ...] = ()  # what reading the history fetched (a shallow clone's rest, archives)

    def to_json(self) -> dict[str, Any]:
        # the total of a cut history is unknown: counting it would walk every commit
        total = None if self.cut else len(self.entries)
        return {
            "entries": [e.to_json() for e in self.entries],
            "cut": self.cut,
            "commit": self.commit,
            "total": total,
            "fetched": list(self.fetched),
        }


@dataclass(frozen=True)
class PolicyResult:
    """The store's policy (``signers list``), or what an admin operation made of it."""

    policy: Policy
    commit: str | None
    changed: bool = False
    retries: int = 0

    def signers(self) -> list[dict[str, str]]:
        from .sshsig import AllowedSigners

        out = []
        for e in AllowedSigners.parse(self.policy.signers).entries:
            out += [{"name": name, "key": e.key.line(), "fingerprint": e.key.fingerprint()} for name in e.principals]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            **self.policy.to_json(),
            "signers": self.signers(),
            "commit": self.commit,
            "changed": self.changed,
            "retries": self.retries,
        }


@dataclass(frozen=True)
class Finding:
    """One rule a commit of the history breaks (``verify``)."""

    commit: str
    rule: str
    path: str
    task: str | None
    message: str
    author: str
    agent: str | None  # what the trailers name, if anything
    did: str  # what the change did, as the validator classifies it

    def to_json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "rule": self.rule,
            "path": self.path,
            "task": self.task,
            "message": self.message,
            "author": self.author,
            "agent": self.agent,
            "did": self.did,
        }


@dataclass(frozen=True)
class CompactResult:
    old_tip: str  # the tip whose history was replaced
    tip: str  # the compaction commit (the old tip when nothing was done)
    archive: str | None  # the ref that keeps the old history
    replaced: int  # commits the old history held
    changed: bool
    retries: int

    def to_json(self) -> dict[str, Any]:
        return {
            "old_tip": self.old_tip,
            "tip": self.tip,
            "archive": self.archive,
            "replaced": self.replaced,
            "changed": self.changed,
            "retries": self.retries,
        }


@dataclass(frozen=True)
class ArchiveResult:
    before: datetime  # the cut: tasks finished before it were moved
    archived: tuple[str, ...]  # the tasks moved to archive/ (or that would be, with dry_run), by id
    commit: str | None  # the archive commit; None when nothing was moved
    changed: bool
    dry_run: bool
    retries: int

    def to_json(self) -> dict[str, Any]:
        return {
            "before": _iso(self.before),
            "archived": list(self.archived),
            "count": len(self.archived),
            "commit": self.commit,
            "changed": self.changed,
            "dry_run": self.dry_run,
            "retries": self.retries,
        }


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    commits: int  # how many were checked
    since: str | None  # the trusted commit (--since); None: from the root
    tip: str
    violations: tuple[Finding, ...] = ()
    fetched: tuple[str, ...] = ()  # what it fetched to read the whole history

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "commits": self.commits,
            "since": self.since,
            "tip": self.tip,
            "violations": [v.to_json() for v in self.violations],
            "fetched": list(self.fetched),
        }


@dataclass(frozen=True)
class Ran:
    """One task ``run`` worked on, and how it ended."""

    task: Task  # as claimed
    outcome: str  # done, failed, released, lost, left (COMMAND settled the task itself)
    status: int  # COMMAND's exit status (128 + N when a signal N ended it)
    commit: str | None  # the commit that settled the task; None when run wrote none
    renewals: int  # heartbeats sent while COMMAND ran
    seconds: float
    state: str  # the task's state afterwards
    holder: str | None = None  # who holds it now (lost: whoever took it over)
    signal: str | None = None  # the signal that stopped COMMAND, if one did (SIGTERM...)

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task.to_json(),
            "outcome": self.outcome,
            "status": self.status,
            "commit": self.commit,
            "renewals": self.renewals,
            "seconds": round(self.seconds, 3),
            "state": self.state,
            "holder": self.holder,
            "signal": self.signal,
        }


@dataclass(frozen=True)
class RunResult:
    agent: str
    runs: tuple[Ran, ...]
    status: int  # the exit status of `gitclaim run`: COMMAND's (--loop: the last non-zero one, else 0)

    def to_json(self) -> dict[str, Any]:
        return {"agent": self.agent, "runs": [r.to_json() for r in self.runs], "status": self.status}
