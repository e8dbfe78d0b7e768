"""Reading the audit trail back from the store branch.

A task's history is found by its file, not by what commit messages say: every
commit whose tree changes the task's path is in it, whatever its trailers
claim, and the move it reports (the verb, from, to) is what the validator
classifies from the task file before and after (:func:`gitclaim.enforce.verdict`),
by the commit's author. Trailers are kept only where they agree. Nothing is
cut: every parent is walked (a lookup of one path per commit), and callers
that print a part say so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from .. import audit, compaction, labels, rules
from ..enforce import verdict
from ..git import CommitInfo
from ..ids import archive_path, task_path
from ..validate import TaskMove

if TYPE_CHECKING:
    from ..api import Store


def entries(
    store: Store, tip: str, limit: int | None = None, *, reach: bool = False, said: list[str] | None = None
) -> Iterator[audit.Entry]:
    """The audit entries reachable from ``tip`` through every parent, newest first,
    across compactions (:func:`commits`)."""
    for c in commits(store, tip, limit, reach=reach, said=said):
        yield read(store, c)


def task_entries(
    store: Store, tip: str, task_id: str, *, reach: bool = False, said: list[str] | None = None
) -> Iterator[audit.Entry]:
    """Every commit that changed ``task_id``'s file, newest first, through every
    parent: a commit whose file differs from its parent's, or a merge whose
    file matches none of its parents' (a merge that takes one side's version
    moved nothing: the side's own commit did). Each entry reports that task's
    move, read from its file before and after. A compaction changes no file:
    the history it replaced follows it."""
    repo = store.repo
    paths = (task_path(task_id), archive_path(task_id))  # an archived task's file moved: follow it

    def where(commit: str) -> tuple[str | None, ...]:
        tree = repo.commit_tree(commit)
        return tuple(repo.tree_entry_id(tree, p) for p in paths)

    for c in commits(store, tip, reach=reach, said=said):
        if compaction.claim_of(c) is not None:
            continue
        mine = where(c.id)
        theirs = [where(p) for p in c.parents] or [(None, None)]
        if mine not in theirs:
            yield read(store, c, about=task_id)


def commits(
    store: Store, tip: str, limit: int | None = None, *, reach: bool = False, said: list[str] | None = None
) -> Iterator[CommitInfo]:
    """Every commit from ``tip`` through every parent, newest first, and on
    through each compaction into the history it replaced (kept by its archive
    ref). With ``reach``, what this clone lacks is fetched first: the whole
    history of a shallow clone, the archives a compaction names; ``said``
    gets a line for each."""
    repo = store.repo
    said = [] if said is None else said
    if reach and repo.is_shallow():
        store.transport.deepen()
        said.append("the whole history of the store branch (this clone was shallow)")
    edge = repo.shallow_edge()  # what is left of a shallow clone's cut: no change can be read from it
    start: str | None = tip
    n = 0
    while start is not None:
        root = None
        for c in repo.walk(start, None if limit is None else limit - n):
            if c.id in edge:
                continue
            yield c
            n += 1
            root = c
        if root is None or root.parents or (limit is not None and n >= limit):
            return  # (a shallow clone's cut ends here too: its edge was not yielded)
        claim = compaction.claim_of(root)
        if claim is None:
            return
        if reach and not repo.has(claim.compacts):
            store.transport.fetch_archives()
            said.append(f"{claim.archive}, the history compaction {claim.commit[:10]} replaced")
        start = claim.compacts if repo.has(claim.compacts) else None


def read(store: Store, c: CommitInfo, about: str | None = None) -> audit.Entry:
    """One commit as the audit reports it: the moves its diff makes (for one
    task when ``about`` names it) and its author, with the trailers kept only
    when they agree. The validator's clock is the commit's own time and no
    heartbeat is known, so a takeover counts as early only when it came before
    the lease could have run out."""
    paths = [task_path(about), archive_path(about)] if about is not None else None
    v = verdict(store.repo, c, now=c.time, seen={}, paths=paths, about=about)
    record = audit.read(c.message)
    lies = [x for x in v.violations if x.rule == labels.RULE]
    told = record if record is not None and not lies else None
    if told is not None and about is not None:
        told = told.about(about)  # a commit of two moves (done --next): the one of this task
    moves = tuple(m for m in v.moves if about is None or m.task == about)
    op = _op(told, moves, c)
    one = moves[0] if len(moves) == 1 else None
    trailers = audit.parse_trailers(c.message) if told is not None else {}
    return audit.Entry(
        commit=c.id,
        time=c.time,
        author=c.author,
        subject=c.message.split("\n", 1)[0],
        op=op,
        agent=c.author,
        tasks=told.tasks if told is not None and about is None else tuple(m.task for m in moves),
        from_state=one.from_state if one is not None else None,
        to_state=one.to_state if one is not None else None,
        trailers={k: tuple(x) for k, x in trailers.items()},
        record=told,
        moves=moves,
        violations=tuple(str(x.message) for x in v.violations),
    )


def _op(told: audit.Record | None, moves: tuple[TaskMove, ...], c: CommitInfo) -> str:
    """The commit's operation as its trailers name it, where they agree with
    every move (they tell a reset from a release, or a retry that cleared this
    claim, which the diff alone cannot); otherwise what the moves were."""
    if told is not None:
        return told.op
    summary = labels.summary(moves)
    if summary is not None:
        return summary
    if not moves:
        return "merge" if len(c.parents) > 1 else "other"
    return "change"


def last_change(store: Store, tip: str, task_id: str) -> audit.Entry | None:
    """The latest commit that changed ``task_id``, however far back."""
    return next(task_entries(store, tip, task_id), None)


def find_claim(store: Store, tip: str, task_id: str, holder: str) -> str | None:
    """The commit that made ``holder`` the holder of ``task_id``, or None."""
    for e in task_entries(store, tip, task_id):
        rec = e.record.about(task_id) if e.record is not None else None
        if rec is None or rec.task != task_id:
            continue
        effect = rules.claim_effect(rec.op)
        if effect is rules.ClaimEffect.SET and rec.agent == holder:
            return e.commit
        if effect is rules.ClaimEffect.TRANSFER and rec.to_agent == holder:
            return e.commit
    return None
