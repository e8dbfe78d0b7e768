"""Compaction: the one rewrite of the store branch that gitclaim accepts.

A store branch grows by one commit an operation. A compaction replaces its
history with one parentless commit that holds the tip's tree, and keeps the
old history under a create-only archive ref, so nothing is lost and a fresh
clone of the branch fetches one commit instead of a year of them.

The shape is exact. The compaction commit ``C``:

- has no parent, and its tree is the tree of the old tip ``T``;
- says ``Gitclaim-Op: compact``, ``Gitclaim-Compacts: T`` and
  ``Gitclaim-Archive: refs/gitclaim/archive/<branch>/<date>-<T[:12]>``;
- is authored by an operator (anyone, where the store has no access file),
  signed where the store requires signatures, and pushed by a pusher who may
  act as its author.

The archive ref points at ``T`` and is created, never moved or deleted. The
server hook accepts a non-fast-forward of the store branch only for that
shape (:func:`violations`); a client that sees its last known tip replaced
accepts it only for that shape too (:func:`recognise`), and reads history
across compactions through the archive refs (:func:`previous`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from . import audit, trust
from .errors import StoreRewritten
from .ids import ARCHIVE_PREFIX
from .validate import Violation

if TYPE_CHECKING:
    from .git import CommitInfo, Repo, Transport
    from .judge import Judge

OP = "compact"
_STAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}-([0-9a-f]{12})$")


def archive_ref(branch: str, when: datetime, old: str) -> str:
    """The archive ref that keeps ``old``'s history: named by the day and the tip,
    so a compaction retried on a newer tip never collides with its first try."""
    return f"{ARCHIVE_PREFIX}{branch}/{when:%Y-%m-%d}-{old[:12]}"


@dataclass(frozen=True, slots=True)
class Claim:
    """What a compaction commit says it is."""

    commit: str
    author: str
    compacts: str  # the old tip
    archive: str  # the ref that keeps it


def claim_of(info: CommitInfo) -> Claim | None:
    """The compaction a parentless commit's trailers claim it is, or None."""
    if info.parents:
        return None
    record = audit.read(info.message)
    if record is None or record.op != OP or not record.compacts or not record.archive:
        return None
    return Claim(info.id, info.author, record.compacts, record.archive)


def archive_name_problem(ref: str, branch: str, target: str) -> str | None:
    """Why ``ref`` is not the archive name of ``target`` on ``branch`` (None: it is)."""
    prefix = f"{ARCHIVE_PREFIX}{branch}/"
    m = _STAMP_RE.match(ref[len(prefix) :]) if ref.startswith(prefix) else None
    if m is None:
        return f"{ref} is not an archive ref of {branch} ({prefix}YYYY-MM-DD-<tip[:12]>)"
    if not target.startswith(m.group(1)):
        return f"{ref} is named for {m.group(1)}, not for {target[:12]}"
    return None


def violations(
    repo: Repo,
    old: str,
    new: str,
    *,
    branch: str,
    judge: Judge | None,
    pushed: Mapping[str, str | None],
) -> list[Violation] | None:
    """The violations of replacing the store branch's ``old`` tip with ``new``,
    if ``new`` is a compaction (None: it does not claim to be one, and the
    rewrite is refused as any other). ``pushed``: the other refs the same push
    sets (the archive ref may come with it or before it)."""
    info = repo.commit_info(new)
    claim = claim_of(info)
    if claim is None:
        return None
    ref = f"refs/heads/{branch}"

    def bad(text: str) -> Violation:
        return Violation(ref, "compact", text, commit=new)

    out = [bad(text) for text in shape_problems(repo, claim, old, branch, pushed)]
    return out + identity_violations(repo, info, old, judge)


def shape_problems(repo: Repo, claim: Claim, old: str, branch: str, pushed: Mapping[str, str | None]) -> list[str]:
    """How ``claim`` differs from an exact compaction of ``old`` (empty: it is one)."""
    out: list[str] = []
    if claim.compacts != old:
        return [f"the compaction names {claim.compacts[:10]} as the tip it replaces, but the tip is {old[:10]}"]
    named = archive_name_problem(claim.archive, branch, old)
    if named is not None:
        out.append(named)
    if repo.commit_tree(claim.commit).id != repo.commit_tree(old).id:
        out.append(f"the compaction's tree is not the tree of {old[:10]}: it would change tasks")
    archived = pushed[claim.archive] if claim.archive in pushed else repo.ref(claim.archive)
    if archived != old:
        where = "missing" if archived is None else f"at {archived[:10]}"
        out.append(f"the archive ref {claim.archive} is {where}; it must keep {old[:10]}, pushed with or before it")
    return out


def identity_violations(repo: Repo, info: CommitInfo, old: str, judge: Judge | None) -> list[Violation]:
    """The policy at the old tip judges a compaction: its author is an operator,
    its signature is good where signatures are required, its pusher may act as its author."""
    from .judge import Judge

    j = judge if judge is not None else Judge(repo)
    policy = j.policy_at(old)
    signature = trust.Signature(trust.NONE)
    if policy.require_signed:
        signature = trust.check_signature(repo.commit_signature(info.id), policy.signers, info.time)
    facts = trust.Facts(info.id, info.author, policy, policy, False, signature, j.pusher)
    out = trust.violations(facts, ())
    if not policy.is_operator(info.author):
        out.append(
            Violation(
                "commit",
                "operator",
                f"a compaction is an operator move; {info.author} is not an operator",
                commit=info.id,
            )
        )
    return out


def archive_update(repo: Repo, ref: str, old: str | None, new: str | None, branch: str) -> list[Violation]:
    """An archive ref is created, never moved or deleted, and only to keep the
    store branch's current tip (the one a compaction in the same push replaces)."""
    if old is not None or new is None:
        return [Violation(ref, "archive", f"{ref} is an archive ref: it is created once, never moved or deleted")]
    tip = repo.ref(f"refs/heads/{branch}")
    if tip != new:
        return [Violation(ref, "archive", f"{ref} must keep the tip of {branch} ({(tip or 'none')[:10]})")]
    named = archive_name_problem(ref, branch, new)
    return [Violation(ref, "archive", named)] if named else []


def recognise(repo: Repo, last: str, tip: str, branch: str, archives: Callable[[], Mapping[str, str]]) -> str | None:
    """Why the remote's ``tip`` is not an honest successor of ``last``, the tip
    this clone saw before (None: it is). It is one when it descends from
    ``last``, or when the root of its first-parent line is a compaction whose
    archive (``archives``: the remote's archive refs, fetched when needed)
    keeps a history that holds ``last``, made by an operator (signed where
    the store requires it). Walks first parents only:
    ``descendant_of`` across unrelated histories walks all of them."""
    c = tip
    while True:
        if c == last:
            return None
        info = repo.commit_info(c)
        if not info.parents:
            break
        c = info.parents[0]
    claim = claim_of(repo.commit_info(c))
    if claim is None:
        if repo.is_ancestor(last, tip):  # ``last`` on a merge's other side
            return None
        return f"its history does not hold {last[:10]} and does not start with a compaction"
    known = archives()
    if not repo.has(claim.compacts):
        return f"the history the compaction {claim.commit[:10]} replaced is missing (no archive ref {claim.archive})"
    problems = shape_problems(repo, claim, claim.compacts, branch, known)
    problems += [v.message for v in identity_violations(repo, repo.commit_info(claim.commit), claim.compacts, None)]
    if problems:
        return "; ".join(problems)
    if not repo.is_ancestor(last, claim.compacts):
        return f"the compaction {claim.commit[:10]} replaces a history that does not hold {last[:10]}"
    return None


def guard(transport: Transport) -> Callable[[str, str], None]:
    """The check a store's transport runs on a tip that moved: refuse a rewrite
    that is not an honest compaction (:class:`StoreRewritten`)."""

    def check(last: str, tip: str) -> None:
        if not transport.repo.has(last):
            return  # this clone lost its copy: nothing to hold the remote to
        reason = recognise(transport.repo, last, tip, transport.branch, transport.fetch_archives)
        if reason is not None:
            transport.repo.set_ref(transport.tracking_ref, last, "gitclaim: a rewrite refused")
            raise StoreRewritten.of(transport.branch, transport.remote, last, tip, reason)

    return check


def previous(repo: Repo, info: CommitInfo) -> str | None:
    """The tip whose history a compaction commit replaced, where this clone
    has it (from the archive ref); None for any other commit."""
    claim = claim_of(info)
    if claim is None or not repo.has(claim.compacts):
        return None
    return claim.compacts
