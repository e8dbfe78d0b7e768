"""Feeding the validator from git, and the hooks that run it.

Three places run :func:`gitclaim.validate.check_commit` on every commit of a
push of the store branch: gitclaim itself before each push
(:func:`check_new_commit`), the client ``pre-push`` hook and the server
``pre-receive`` hook (:mod:`gitclaim.hook`, via :func:`check_push`). The
server hook also refuses deleting the branch and rewriting it (a
force-push). Every commit's trailers must agree with the move its diff makes
(:mod:`gitclaim.labels`); a merge is read by :func:`_merge_verdict`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from . import audit, compaction, labels
from .errors import BadInput, StoreCorrupt
from .git import ALIVE_PREFIX, CommitInfo, Repo, Tree
from .ids import STORE_FILE, archive_path, task_path, validate_agent
from .judge import Judge, all_violations
from .model import Task
from .validate import Change, Verdict, Violation, classify_commit, merged_cleanly, read_task, task_id_of

MAX_COMMITS = 10_000  # per push: a longer range is refused rather than checked for minutes


def last_seen(repo: Repo) -> dict[str, datetime]:
    """Agents' last heartbeats from the liveness refs of this repository."""
    return {agent: repo.commit_time(oid) for agent, oid in repo.refs_under(ALIVE_PREFIX).items()}


def check_new_commit(
    repo: Repo,
    parent: str | None,
    commit: str,
    *,
    now: datetime,
    seen: Mapping[str, datetime],
    paths: Iterable[str] | None = None,
    judge: Judge | None = None,
) -> list[Violation]:
    """Violations of one commit against its parent. ``paths``: the files the
    commit is known to change (gitclaim's own commits); otherwise a tree diff
    finds them (a pushed commit from anyone). ``judge``: check identity too."""
    info = repo.commit_info(commit)
    return list(all_violations(judge, info, verdict(repo, info, now=now, seen=seen, paths=paths)))


def verdict(
    repo: Repo,
    info: CommitInfo,
    *,
    now: datetime,
    seen: Mapping[str, datetime],
    paths: Iterable[str] | None = None,
    about: str | None = None,
) -> Verdict:
    """What one commit did (its moves, classified from the diff) and its
    violations, its trailers checked against those moves. A merge is read by
    :func:`_merge_verdict`. ``about``: read only that task's move (``paths``
    then name its file), for a view of its history."""
    if len(info.parents) > 1:
        return _merge_verdict(repo, info, now=now, seen=seen, about=about)
    if compaction.claim_of(info) is not None:
        return Verdict((), ())  # moves nothing: whether it is an honest one is compaction.violations'
    parent = info.parents[0] if info.parents else None
    new_tree = repo.commit_tree(info.id)
    old_tree = repo.commit_tree(parent) if parent is not None else None
    ids = repo.changed_blobs(old_tree, new_tree) if paths is None else repo.changes_at(old_tree, new_tree, paths)
    found = _classify(repo, info, new_tree, ids, now=now, seen=seen, about=about)
    extra = []
    if parent is None and STORE_FILE not in ids and about is None:
        extra.append(Violation(STORE_FILE, "store-file", "the first commit of the store must hold the store file"))
    return Verdict(found.moves, (*extra, *found.violations), found.policy)


def _classify(
    repo: Repo,
    info: CommitInfo,
    new_tree: Tree,
    ids: Mapping[str, tuple[str | None, str | None]],
    *,
    now: datetime,
    seen: Mapping[str, datetime],
    about: str | None = None,
) -> Verdict:
    changes: dict[str, Change] = {
        path: (repo.blob(a) if a else None, repo.blob(b) if b else None) for path, (a, b) in ids.items()
    }
    cache: dict[str, Task | None] = {}

    def lookup(task_id: str) -> Task | None:  # live, else archived: a dependency on an archived task is met
        if task_id not in cache:
            data = repo.read_path(new_tree, task_path(task_id))
            if data is None:
                data = repo.read_path(new_tree, archive_path(task_id))
            try:
                cache[task_id] = None if data is None else read_task(data, task_id, task_id)
            except Exception:
                cache[task_id] = None
        return cache[task_id]

    def archived(task_id: str) -> bool:
        return repo.read_path(new_tree, archive_path(task_id)) is not None

    found = classify_commit(
        changes, agent=info.author, lookup=lookup, now=now, last_seen=seen, commit=info.id, archived=archived
    )
    record = audit.read(info.message)
    if record is None:
        return found
    lies = [
        Violation("commit", labels.RULE, text, commit=info.id)
        for text in labels.disagreements(record, found.moves, info.author, about=about, policy=found.policy)
    ]
    return Verdict(found.moves, (*found.violations, *lies), found.policy)


def _merge_verdict(
    repo: Repo, info: CommitInfo, *, now: datetime, seen: Mapping[str, datetime], about: str | None = None
) -> Verdict:
    """A merge on the store branch (``git pull`` by a human, say) is read as
    follows. Each side's commits are checked on their own; the merge adds no
    move of its own except where it writes a task file that matches neither
    side and is not what both sides' changes make together
    (:func:`gitclaim.validate.merged_cleanly`: a resolved conflict), which is
    checked as the merge author's change from the first parent. A merge that
    keeps one side's version of a file that the other side changed drops that
    change and is refused (rule ``merge``); so is a merge of more than two
    parents."""
    if len(info.parents) > 2:
        return Verdict(
            (), (Violation("commit", "merge", "an octopus merge; merge one side at a time", commit=info.id),)
        )
    first, second = info.parents
    base = repo.merge_base(first, second)
    tree = repo.commit_tree(info.id)
    trees = [repo.commit_tree(first), repo.commit_tree(second)]
    base_tree = repo.commit_tree(base) if base is not None else None
    own: dict[str, tuple[str | None, str | None]] = {}
    out: list[Violation] = []
    paths = sorted(repo.changed_blobs(trees[0], tree).keys() | repo.changed_blobs(trees[1], tree).keys())
    for path in paths:
        m = repo.tree_entry_id(tree, path)
        a, b = repo.tree_entry_id(trees[0], path), repo.tree_entry_id(trees[1], path)
        o = repo.tree_entry_id(base_tree, path) if base_tree is not None else None
        if m not in (a, b):
            if not (task_id_of(path) and merged_cleanly(*(repo.blob(x) if x else None for x in (o, a, b, m)))):
                own[path] = (a, m)
        elif a != b and (b if m == a else a) != o:  # the side it did not keep changed the file
            side = "first" if m == b else "second"
            out.append(
                Violation(path, "merge", f"the merge drops the {side} parent's change of {path}", commit=info.id)
            )
    if about is not None:
        own = {p: ids for p, ids in own.items() if p in (task_path(about), archive_path(about))}
    found = _classify(repo, info, tree, own, now=now, seen=seen, about=about) if own else Verdict((), ())
    return Verdict(found.moves, (*out, *found.violations), found.policy)


def check_push(
    repo: Repo,
    old: str | None,
    new: str | None,
    *,
    branch: str,
    now: datetime,
    seen: Mapping[str, datetime],
    judge: Judge | None = None,
    pushed: Mapping[str, str | None] | None = None,
) -> list[Violation]:
    """Violations of moving the store branch from ``old`` to ``new`` (None: absent);
    with ``judge``, the identity rules too (:mod:`gitclaim.trust`). The one
    rewrite allowed is a compaction (:mod:`gitclaim.compaction`); ``pushed``:
    the other refs the same push sets, where its archive ref may be."""
    ref = f"refs/heads/{branch}"
    if new is None:
        return [Violation(ref, "history", f"the store branch {branch} must not be deleted")]
    if old is not None and not repo.has(old):
        return [Violation(ref, "history", f"{old[:10]} (the remote tip) is unknown here: fetch first")]
    if old is not None and old != new:
        compacted = compaction.violations(repo, old, new, branch=branch, judge=judge, pushed=pushed or {})
        if compacted is not None:
            return compacted
    if old is not None and not repo.is_ancestor(old, new):
        return [Violation(ref, "history", f"the push rewrites {branch}: the store branch is never force-pushed")]
    commits = repo.new_commits(old, new, MAX_COMMITS)
    if commits is None:
        return [Violation(ref, "history", f"more than {MAX_COMMITS} new commits in one push")]
    roots = [c for c in commits if not c.parents]
    if any(compaction.claim_of(c) is not None for c in roots):
        return [Violation(ref, "compact", "a compaction replaces the branch's tip; it starts no history of its own")]
    if roots and (old is not None or len(roots) > 1):
        return [Violation(ref, "history", f"{roots[-1].id[:10]} starts a new history on {branch}")]
    out: list[Violation] = []
    for info in commits:
        try:
            out += all_violations(judge, info, verdict(repo, info, now=now, seen=seen))
        except StoreCorrupt as e:
            out.append(Violation(ref, "schema", e.message, commit=info.id))
    return out


def check_liveness(ref: str, new: str | None, judge: Judge | None = None, tip: str | None = None) -> list[Violation]:
    """Violations of updating an agent's liveness ref (``refs/gitclaim/alive/<agent>``).

    Nobody but an operator deletes one: gitclaim never does, and a plain
    ``git push --mirror`` from a clone without them deleted every heartbeat at
    once, after which a rival took over a live lease. Where the host names the
    pusher (``judge``), only that agent's pusher or an operator moves it,
    under the policy at the store's ``tip``; where that policy requires
    signatures, the heartbeat must be signed by the agent's own key.
    """
    agent = ref[len(ALIVE_PREFIX) :]
    try:
        validate_agent(agent)
    except BadInput as e:
        return [Violation(ref, "liveness", e.message)]
    out = judge.heartbeat_signature(ref, agent, new, tip) if judge is not None and new is not None else []
    if judge is None or judge.pusher is None:
        gone = [Violation(ref, "liveness", f"the liveness ref of {agent} must not be deleted")] if new is None else []
        return out + gone
    return out + judge.liveness(judge.pusher, ref, agent, tip, new is None)


def render(violations: list[Violation]) -> str:
    lines = ["gitclaim: push refused, it would break the store's rules:"]
    lines += [f"  {v}" for v in violations]
    return "\n".join(lines)
