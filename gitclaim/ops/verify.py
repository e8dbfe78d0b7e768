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

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .. import audit
from ..enforce import verdict
from ..errors import BadInput, StoreCorrupt, VerifyFailed
from ..git import CommitInfo
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
    tip = store._tip(offline)
    repo = store.repo
    start = None
    if since is not None:
        try:
            start = repo.resolve(since)
        except Exception:
            raise BadInput(f"--since {since!r} names no commit in this clone", rev=since) from None
        if not repo.is_ancestor(start, tip):
            raise BadInput(f"--since {since!r} is not in the store branch's history", rev=since)
    judge = Judge(repo, anchors=anchors(store, admins), need_anchor=True)
    commits = repo.new_commits(start, tip, limit=1 << 40) or []
    found: list[Finding] = []
    roots = 0
    for info in commits:
        roots += not info.parents
        if not info.parents and (start is not None or roots > 1):
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
    if found:
        shown = "\n".join(f"  {f.commit[:10]} [{f.rule}] {f.author}: {f.message}" for f in found[:20])
        more = f"\n  ... and {len(found) - 20} more" if len(found) > 20 else ""
        raise VerifyFailed(
            f"{len(found)} violations in {len(commits)} commits of the store branch:\n{shown}{more}",
            violations=[f.to_json() for f in found],
            commits=len(commits),
            tip=tip,
        )
    return VerifyResult(True, len(commits), start, tip)


def _finding(info: CommitInfo, v: Violation, did: str) -> Finding:
    record = audit.read(info.message)
    return Finding(
        info.id, v.rule, v.path, v.task, v.message, info.author, record.agent if record is not None else None, did
    )
