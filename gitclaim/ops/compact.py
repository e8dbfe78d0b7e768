"""``compact``: replace the store branch's history with one commit, keeping it in an archive ref.

The one forced update gitclaim makes (:mod:`gitclaim.compaction` defines the
exact shape the hooks accept). The loop is compare-and-swap like every other
change: the branch moves from the tip the compaction was built on, or the
compaction is rebuilt on the new tip and tried again. An operation another
agent pushes meanwhile either lands before it (and is in the compacted tree)
or is refused and rebuilt by its agent on the compaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import audit, compaction
from ..errors import NotAllowed, PushRejected, RetriesExhausted
from ..git import BranchMoved
from ..identity import agent_email
from ..model import utc
from ..results import CompactResult

if TYPE_CHECKING:
    from ..api import Store

TRIES = 20


def compact(store: Store, agent: str | None) -> CompactResult:
    who = store.whoami(agent)
    t = store.transport
    for attempt in range(TRIES):
        old = store._tip(offline=False)
        repo = store.repo
        if repo.is_shallow():
            t.deepen()  # whether the tip has parents, and how many commits it replaces
        if not repo.commit_info(old).parents:
            return CompactResult(old, old, None, 0, False, attempt)  # one commit already: nothing to replace
        when = utc(store.clock())
        archive = compaction.archive_ref(t.branch, when, old)
        record = audit.Record(op=compaction.OP, agent=who, compacts=old, archive=archive)
        message = audit.write(f"compact {t.branch} by {who}", record)
        new = repo.write_commit(None, {}, message, who, agent_email(who), when, sign=store.sign, tree_of=old)
        bad = compaction.violations(repo, old, new, branch=t.branch, judge=None, pushed={archive: old})
        if bad:
            denied = [v for v in bad if v.rule in ("operator", "unsigned", "unknown-key", "wrong-signer", "pusher")]
            if denied:
                raise NotAllowed(
                    "the store's policy refuses this compaction; nothing was pushed:\n"
                    + "\n".join(f"  {v}" for v in denied),
                    rule=denied[0].rule,
                    violations=[v.to_json() for v in denied],
                )
            raise PushRejected(
                "gitclaim refused its own compaction; this is a bug, nothing was pushed:\n"
                + "\n".join(f"  {v}" for v in bad)
            )
        replaced = sum(1 for _ in repo.walk(old))
        try:
            t.replace(new, old, archive)
        except BranchMoved:
            store.policy.sleep(store.policy.delay(attempt + 1))
            continue
        return CompactResult(old, new, archive, replaced, True, attempt)
    raise RetriesExhausted(
        f"the store branch moved under each of {TRIES} compactions; nothing was changed",
        hint="compact when the team is quieter, or pause the agents for a moment",
        tries=TRIES,
    )
