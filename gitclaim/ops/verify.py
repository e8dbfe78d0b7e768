"""``verify``: replay the store branch's history through every check, after the fact.

Where no server hook can run (github.com), nothing stops a plain push; this
is what finds it afterwards. Every commit from the root (or after a trusted
commit, ``--since``) to the tip, parents first, is judged as the server hook
would judge it on arrival: the validator on its diff, its trailers against
its moves, and the signature and role rules of the policy before it. The
clock is each commit's own time and no heartbeat is known, so a takeover is
flagged only when it came before the lease could have run out. What a host
says about its pushers is gone by then: only signatures prove who made a
commit here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .. import audit, compaction
from ..enforce import verdict
from ..errors import BadInput, StoreCorrupt, StoreRewritten, VerifyFailed
from ..git import CommitInfo, Repo
from ..judge import Judge, all_violations
from ..results import Finding, VerifyResult
from ..validate import Violation

if TYPE_CHECKING:
    from ..api import Store


def anchors(store: Store, admins: Sequence[str] | None) -> str | None:
    """allowed_signers text of the keys given as NAME=PUBKEY_FILE, and of git config gitclaim.admin."""
    from .signers import _public_key

    lines = [v for k, v in store.repo.config_entries() if k == "gitclaim.admin"]
    for item in admins or []:
        name, eq, key = item.partition("=")
        if not eq or not name:
            raise BadInput(f"--admin takes NAME=PUBKEY_FILE, got {item!r}")
        lines.append(f"{name} {_public_key(key)}")
    return "\n".join(lines) + "\n" if lines else None


def verify(store: Store, since: str | None, admins: Sequence[str] | None, offline: bool) -> VerifyResult:
    tip = _tip(store, offline)
    repo = store.repo
    start = None
    if since is not None:
        try:
            start = repo.resolve(since)
        except Exception:
            raise BadInput(f"--since {since!r} names no commit in this clone", rev=since) from None
    fetched: list[str] = []
    if not offline and repo.is_shallow():
        store.transport.deepen()
        fetched.append("the whole history of the store branch (this clone was shallow)")
    judge = Judge(repo, anchors=anchors(store, admins), need_anchor=True)
    archives = {} if offline else store.transport.fetch_archives()
    segments = _segments(repo, tip, start, archives)
    if start is not None and segments[0][0] != start:
        raise BadInput(f"--since {since!r} is not in the store branch's history", rev=since)
    found: list[Finding] = []
    checked = 0
    for first, (base, head) in enumerate(segments):
        commits = repo.new_commits(base, head, limit=1 << 40) or []
        checked += len(commits)
        found += _check(
            repo,
            judge,
            commits,
            since=start is not None or first > 0,
            archives=archives,
            branch=store.transport.branch,
            compacts=segments[first - 1][1] if first else None,
        )
    if found:
        shown = "\n".join(f"  {f.commit[:10]} [{f.rule}] {f.author}: {f.message}" for f in found[:20])
        more = f"\n  ... and {len(found) - 20} more" if len(found) > 20 else ""
        raise VerifyFailed(
            f"{len(found)} violations in {checked} commits of the store branch:\n{shown}{more}",
            violations=[f.to_json() for f in found],
            commits=checked,
            tip=tip,
        )
    if len(segments) > 1 and not offline:
        fetched.append(f"{len(segments) - 1} archived histories, which compactions replaced on the branch")
    return VerifyResult(True, checked, start, tip, fetched=tuple(fetched))


def _tip(store: Store, offline: bool) -> str:
    """The tip to verify. A rewrite of the branch that is not a compaction, seen
    against the tip this clone knew, is itself a finding."""
    try:
        return store._tip(offline)
    except StoreRewritten as e:
        d = e.details
        raise VerifyFailed(
            f"1 violation: {e.message}",
            violations=[
                {
                    "commit": d.get("tip"),
                    "rule": "history",
                    "path": f"refs/heads/{d.get('branch')}",
                    "task": None,
                    "message": e.message,
                    "author": None,
                    "agent": None,
                    "did": "rewrote the store branch",
                }
            ],
            commits=0,
            tip=d.get("tip"),
        ) from None


def _segments(repo: Repo, tip: str, start: str | None, archives: Mapping[str, str]) -> list[tuple[str | None, str]]:
    """The histories to check, oldest first, as (exclusive base, head): the
    branch since its last compaction, and before each compaction the history
    its archive keeps (as far back as this clone has it, or ``start``)."""
    out: list[tuple[str | None, str]] = []
    head: str | None = tip
    while head is not None:
        root = _root(repo, head, start)
        if root == start:
            out.append((start, head))
            break
        claim = compaction.claim_of(repo.commit_info(root)) if root is not None else None
        if claim is None or not repo.has(claim.compacts):
            out.append((None, head))
            break
        out.append((None, head))  # the compaction and what follows it
        head = claim.compacts
    out.reverse()
    return out


def _root(repo: Repo, head: str, start: str | None) -> str | None:
    """The first-parent root of ``head``'s history, or ``start`` when met first."""
    c = head
    while True:
        if c == start:
            return start
        parents = repo.commit_info(c).parents
        if not parents:
            return c
        c = parents[0]


def _check(
    repo: Repo,
    judge: Judge,
    commits: Sequence[CommitInfo],
    *,
    since: bool,
    archives: Mapping[str, str],
    branch: str,
    compacts: str | None,
) -> list[Finding]:
    """Findings in one history, parents first. Its first root is the store's own
    (``since`` False), or a compaction of ``compacts`` judged by that shape."""
    found: list[Finding] = []
    roots = 0
    for info in commits:
        roots += not info.parents
        if not info.parents and compacts is not None and roots == 1:
            bad = compaction.violations(repo, compacts, info.id, branch=branch, judge=judge, pushed=archives)
            found += [_finding(info, x, f"compacts {compacts[:10]}") for x in bad or []]
            continue
        claim = compaction.claim_of(info)
        if claim is not None and not since:
            text = (
                f"the history this compaction replaced ({claim.compacts[:10]}, kept by {claim.archive}) is not in"
                " this clone, nor on the remote unless --offline was given: it cannot be checked"
            )
            found.append(_finding(info, Violation("commit", "compact", text), ""))
            continue
        if not info.parents and (since or roots > 1):
            found.append(_finding(info, Violation("commit", "history", "starts a new history on the branch"), ""))
            continue
        try:
            v = verdict(repo, info, now=info.time, seen={})
        except StoreCorrupt as e:
            found.append(_finding(info, Violation("commit", "schema", e.message), ""))
            continue
        did = "; ".join([*(m.text() for m in v.moves), *(f"changes {p}" for p in v.policy)])
        did = did or ("a merge" if len(info.parents) > 1 else "no task change")
        found += [_finding(info, x, did) for x in all_violations(judge, info, v)]
    return found


def _finding(info: CommitInfo, v: Violation, did: str) -> Finding:
    record = audit.read(info.message)
    return Finding(
        info.id, v.rule, v.path, v.task, v.message, info.author, record.agent if record is not None else None, did
    )
