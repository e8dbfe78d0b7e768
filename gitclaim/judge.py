"""Identity checks fed from git: the policy at a commit's parent, its signature, its pusher.

:mod:`gitclaim.trust` holds the rules; this module reads what they need
from the repository. A :class:`Judge` lives for one push (or one ``verify``
run) and caches each policy by the blobs that hold it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from . import trust
from .errors import StoreCorrupt
from .git import CommitInfo, Repo
from .policy import ACCESS_FILE, SIGNERS_FILE, Policy
from .policy import parse as parse_policy
from .validate import Verdict, Violation


@dataclass
class Judge:
    """How strictly to judge: who pushed (None: the host does not say), and
    what anchors a store's first policy. ``anchors``: allowed_signers text of
    keys trusted from outside the branch (the server's ``gitclaim.admin``,
    ``verify --admin``); ``need_anchor``: refuse a first policy no anchor
    vouches for (the server hook and ``verify``; gitclaim's own pre-push
    check does not ask)."""

    repo: Repo
    pusher: str | None = None
    anchors: str | None = None
    need_anchor: bool = False
    anchor_pushers: tuple[str, ...] = ()  # host users who may set a first policy (gitclaim.adminPusher)
    _policies: dict[tuple[str | None, str | None], Policy] = field(default_factory=dict)

    def policy_at(self, commit: str | None) -> Policy:
        """The policy of the tree of ``commit`` (the empty policy for None).
        A broken policy file counts as the empty policy; the commit that broke it was refused."""
        if commit is None:
            return Policy()
        tree = self.repo.commit_tree(commit)
        ids = (self.repo.tree_entry_id(tree, ACCESS_FILE), self.repo.tree_entry_id(tree, SIGNERS_FILE))
        if ids not in self._policies:
            access, signers = (self.repo.blob(i) if i else None for i in ids)
            try:
                self._policies[ids] = parse_policy(access, signers)
            except StoreCorrupt:
                self._policies[ids] = Policy()
        return self._policies[ids]

    def violations(self, info: CommitInfo, found: Verdict) -> list[Violation]:
        """The identity rules ``info`` breaks, given what its diff did."""
        first = info.parents[0] if info.parents else None
        before, after = self.policy_at(first), self.policy_at(info.id) if found.policy else self.policy_at(first)
        bootstrap = bool(found.policy) and not before.admins
        if not (bootstrap or before.require_signed):  # nothing asks about the signature: don't read it
            signature = trust.Signature(trust.NONE)
            facts = trust.Facts(info.id, info.author, before, after, bool(found.policy), signature, self.pusher)
            return trust.violations(facts, found.moves)
        signed = self.repo.commit_signature(info.id)
        anchored: bool | None = None
        if bootstrap:
            anchored, signature = self._anchored(info, signed, after)
        else:
            signature = trust.check_signature(signed, before.signers, info.time)
        facts = trust.Facts(info.id, info.author, before, after, bool(found.policy), signature, self.pusher, anchored)
        return trust.violations(facts, found.moves)

    def _anchored(
        self, info: CommitInfo, signed: tuple[str, bytes] | None, after: Policy
    ) -> tuple[bool | None, trust.Signature]:
        """Whether something outside the branch vouches for a first policy, and
        the signature as checked. A key of the anchors must sign it as its
        author, or the host must name an anchor pusher. Where neither could be
        proven (an unsigned store, no pusher named) nothing is asked (None)."""
        if self.anchors is not None:
            by_anchor = trust.check_signature(signed, self.anchors, info.time)
            if by_anchor.status == trust.GOOD and info.author in by_anchor.principals:
                return True, by_anchor
        # Not vouched for from outside: the signature rules judge it by the keys it lists itself.
        signature = trust.check_signature(signed, after.signers, info.time)
        if self.pusher is not None and self.pusher in self.anchor_pushers:
            return True, signature
        if self.need_anchor and after.defined and (after.require_signed or self.pusher is not None):
            return False, signature
        return None, signature

    def liveness(self, pusher: str, ref: str, agent: str, tip: str | None, deleting: bool) -> list[Violation]:
        """Who may move ``refs/gitclaim/alive/<agent>``: that agent's pusher, or an operator's."""
        policy = self.policy_at(tip)
        if policy.pusher_is_operator(pusher):
            return []
        if deleting:
            return [Violation(ref, "liveness", f"only an operator deletes the liveness ref of {agent}")]
        if not policy.may_act_as(pusher, agent):
            return [Violation(ref, "liveness", f"{pusher} may not renew the lease of {agent}")]
        return []

    def heartbeat_signature(self, ref: str, agent: str, new: str, tip: str | None) -> list[Violation]:
        """Where the store requires signatures, a heartbeat is signed by its agent's key:
        without it anyone could keep another agent's lease alive, or let it lapse."""
        policy = self.policy_at(tip)
        if not policy.require_signed:
            return []
        info = self.repo.commit_info(new)
        s = trust.check_signature(self.repo.commit_signature(new), policy.signers, info.time)
        if s.status == trust.GOOD and agent in s.principals:
            return []
        return [Violation(ref, "liveness", f"the heartbeat of {agent} is not signed by {agent}'s key ({s.status})")]


def all_violations(judge: Judge | None, info: CommitInfo, found: Verdict) -> Sequence[Violation]:
    return found.violations if judge is None else (*found.violations, *judge.violations(info, found))
