"""Feeding the validator from git, and the hooks that run it.

Three places run :func:`gitclaim.validate.check_commit` on every commit of a
push of the store branch: gitclaim itself before each push
(:func:`check_new_commit`), the client ``pre-push`` hook and the server
``pre-receive`` hook (:mod:`gitclaim.hook`, via :func:`check_push`). The
server hook also refuses deleting the branch, rewriting it (a force-push)
and merge commits on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from .errors import BadInput, StoreCorrupt
from .git import ALIVE_PREFIX, Repo
from .ids import STORE_FILE, task_path, validate_agent
from .model import Task, parse_task
from .validate import Change, Violation, check_commit

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
) -> list[Violation]:
    """Violations of one commit against its parent. ``paths``: the files the
    commit is known to change (gitclaim's own commits); otherwise a tree diff
    finds them (a pushed commit from anyone)."""
    info = repo.commit_info(commit)
    new_tree = repo.commit_tree(commit)
    old_tree = repo.commit_tree(parent) if parent is not None else None
    ids = repo.changed_blobs(old_tree, new_tree) if paths is None else repo.changes_at(old_tree, new_tree, paths)
    changes: dict[str, Change] = {
        path: (repo.blob(a) if a else None, repo.blob(b) if b else None) for path, (a, b) in ids.items()
    }
    out = []
    if parent is None and STORE_FILE not in changes:
        out.append(Violation(STORE_FILE, "store-file", "the first commit of the store must hold the store file"))
    cache: dict[str, Task | None] = {}

    def lookup(task_id: str) -> Task | None:
        if task_id not in cache:
            data = repo.read_path(new_tree, task_path(task_id))
            try:
                cache[task_id] = None if data is None else parse_task(data, expected_id=task_id, path=task_id)
            except Exception:
                cache[task_id] = None
        return cache[task_id]

    out += check_commit(changes, agent=info.author, lookup=lookup, now=now, last_seen=seen, commit=commit)
    return out


def check_push(
    repo: Repo, old: str | None, new: str | None, *, branch: str, now: datetime, seen: Mapping[str, datetime]
) -> list[Violation]:
    """Violations of moving the store branch from ``old`` to ``new`` (None: absent)."""
    ref = f"refs/heads/{branch}"
    if new is None:
        return [Violation(ref, "history", f"the store branch {branch} must not be deleted")]
    if old is not None and not repo.has(old):
        return [Violation(ref, "history", f"{old[:10]} (the remote tip) is unknown here: fetch first")]
    if old is not None and not repo.is_ancestor(old, new):
        return [Violation(ref, "history", f"the push rewrites {branch}: the store branch is never force-pushed")]
    commits: list[tuple[str, str | None]] = []
    cur: str | None = new
    while cur is not None and cur != old:
        info = repo.commit_info(cur)
        if len(info.parents) > 1:
            return [Violation(ref, "history", f"{cur[:10]} is a merge; the store branch takes one commit per change")]
        parent = info.parents[0] if info.parents else None
        if parent is None and old is not None:
            return [Violation(ref, "history", f"{cur[:10]} starts a new history on {branch}")]
        commits.append((cur, parent))
        if len(commits) > MAX_COMMITS:
            return [Violation(ref, "history", f"more than {MAX_COMMITS} new commits in one push")]
        cur = parent
    out: list[Violation] = []
    for commit, parent in reversed(commits):
        try:
            out += check_new_commit(repo, parent, commit, now=now, seen=seen)
        except StoreCorrupt as e:
            out.append(Violation(ref, "schema", e.message, commit=commit))
    return out


def check_liveness(ref: str, new: str | None) -> list[Violation]:
    """Violations of updating an agent's liveness ref (``refs/gitclaim/alive/<agent>``).

    Nobody deletes one: gitclaim never does, and a plain ``git push --mirror``
    from a clone without them deleted every heartbeat at once, after which a
    rival took over a live lease. Who may update whose ref is the identity
    checks' business (docs/enforcement.md).
    """
    agent = ref[len(ALIVE_PREFIX) :]
    if new is None:
        return [Violation(ref, "liveness", f"the liveness ref of {agent} must not be deleted")]
    try:
        validate_agent(agent)
    except BadInput as e:
        return [Violation(ref, "liveness", e.message)]
    return []


def render(violations: list[Violation]) -> str:
    lines = ["gitclaim: push refused, the store branch would break its rules:"]
    lines += [f"  {v}" for v in violations]
    return "\n".join(lines)
