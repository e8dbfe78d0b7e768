"""Identity: is a commit's author proven, and may that author make its moves? Pure.

git's author name is self-asserted. Two things can prove it, and the server
hook and ``gitclaim verify`` use whichever a store has:

* **a signature** (SSHSIG, :mod:`gitclaim.sshsig`) by a key that the
  policy of the commit's parent lists for the author's name
  (:mod:`gitclaim.policy`); required for every commit when the parent's
  policy says ``require_signed``;
* **the pusher**, where the host authenticates it and tells the hook
  (gitolite ``GL_USER`` and the like, :func:`gitclaim.hook.pusher`): it must
  be allowed to act as the author.

On top of a proven author, the policy's roles decide the moves that need
one, keyed on the move the validator classified, never on trailers: only an
admin changes the policy, only an operator resets or reaps another agent's
claim (a retry's clearing of its downstream claims is the retry's own) or
archives a finished task (``gitclaim archive``: an archived task is never
reopened or retried, so it ends everybody's say over it, as a compaction does).
Taking over an expired lease stays open to every agent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING

from .errors import BadInput, StoreCorrupt
from .policy import Policy
from .validate import TaskMove, Violation

if TYPE_CHECKING:
    from .sshsig import AllowedSigners

GOOD, NONE, BAD, UNKNOWN = "good", "none", "bad", "unknown-key"
#: The rules of identity (the validator's own are in :class:`gitclaim.validate.Violation`).
RULES = frozenset({"unsigned", "unknown-key", "bad-signature", "wrong-signer", "pusher", "admin", "operator", "trust"})


@dataclass(frozen=True, slots=True)
class Signature:
    """What a commit's signature proves against a set of allowed signers."""

    status: str  # good | none | bad | unknown-key
    principals: tuple[str, ...] = ()
    fingerprint: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"status": self.status, "principals": list(self.principals), "key": self.fingerprint}


def check_signature(signed: tuple[str, bytes] | None, signers: str, at: datetime | None) -> Signature:
    """Check a commit's (armoured signature, signed bytes) against ``signers``
    (allowed_signers text); ``at``: the commit time, for validity windows."""
    if signed is None:
        return Signature(NONE)
    from . import sshsig

    armored, payload = signed
    try:
        key = sshsig.signature_key(armored)
    except BadInput:
        return Signature(BAD)
    allowed = _signers(signers)
    found = sshsig.verify(payload, armored, allowed, at=at)
    if found is not None:
        return Signature(GOOD, found.principals, key.fingerprint())
    listed = bool(allowed.principals_for(key))
    return Signature(BAD if listed else UNKNOWN, tuple(allowed.principals_for(key)), key.fingerprint())


@lru_cache(maxsize=64)
def _signers(text: str) -> AllowedSigners:
    """A policy's signers, parsed once per text (a history has few versions of them)."""
    from .sshsig import AllowedSigners

    try:
        return AllowedSigners.parse(text)
    except StoreCorrupt:
        return AllowedSigners()


@dataclass(frozen=True, slots=True)
class Facts:
    """What is known about one commit besides its diff."""

    commit: str
    author: str
    before: Policy  # the parent's policy (the empty policy for a root)
    after: Policy  # the commit's own
    policy_changed: bool
    signature: Signature  # checked against the signers that vouch for this commit
    pusher: str | None = None  # who the host says pushed it, where it says
    anchored: bool | None = None  # a first policy: vouched for from outside (None: nobody asks)


def violations(facts: Facts, moves: Sequence[TaskMove]) -> list[Violation]:
    """Every identity rule the commit breaks."""
    f = facts
    out = [Violation("commit", rule, text, commit=f.commit) for rule, text in _found(f, moves)]
    return out


def _found(f: Facts, moves: Sequence[TaskMove]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    bootstrap = f.policy_changed and not f.before.admins
    required = f.before.require_signed or (bootstrap and f.after.require_signed)
    if required:
        out += _signature_rule(f)
    if f.pusher is not None and not f.before.may_act_as(f.pusher, f.author):
        out.append(("pusher", f"pushed by {f.pusher}, who may not act as {f.author} (access.toml [pushers])"))
    if f.policy_changed:
        out += _admin_rule(f, bootstrap)
    out += [
        ("operator", f"{m.task}: {_operator_what(m)} is an operator move; {f.author} is not an operator")
        for m in moves
        if _operator_move(m, f.author) and not f.before.is_operator(f.author)
    ]
    return out


def _signature_rule(f: Facts) -> list[tuple[str, str]]:
    s = f.signature
    if s.status == NONE:
        return [("unsigned", "not signed; the store requires signed commits (docs/identity.md)")]
    if s.status == UNKNOWN:
        return [("unknown-key", f"signed by a key not in the store's allowed_signers ({s.fingerprint})")]
    if s.status == BAD:
        return [("bad-signature", f"the signature does not match the commit (key {s.fingerprint})")]
    if f.author not in s.principals:
        return [("wrong-signer", f"signed by the key of {', '.join(s.principals)}, but authored as {f.author}")]
    return []


def _admin_rule(f: Facts, bootstrap: bool) -> list[tuple[str, str]]:
    if bootstrap:
        if f.anchored is False:
            admins = ", ".join(f.after.admins) or "nobody"
            return [
                (
                    "trust",
                    f"sets the store's first policy (admins: {admins}), which nothing outside the branch vouches"
                    " for (docs/identity.md: on the server, git config gitclaim.admin 'NAME KEY' or"
                    " gitclaim.adminPusher USER; for verify, --admin NAME=PUBKEY_FILE or --since REV)",
                )
            ]
        if f.after.defined and f.author not in f.after.admins:
            return [("admin", f"the first policy must name its author {f.author} as an admin")]
        return []
    if f.author not in f.before.admins:
        return [("admin", f"only an admin ({', '.join(f.before.admins)}) changes access.toml and allowed_signers")]
    return []


def _operator_move(m: TaskMove, author: str) -> bool:
    """Clearing a claim the author does not hold, outside a retry's cascade;
    archiving a finished task (it is never reopened or retried afterwards)."""
    if m.verb == "archive":
        return True
    return m.verb == "reset" and m.holder_before not in (None, author) and not m.cascade


def _operator_what(m: TaskMove) -> str:
    return "archiving it" if m.verb == "archive" else f"clearing {m.holder_before}'s claim"
