"""Who may do what on a store: its access file and its allowed signers. Pure.

Two files at the root of the store branch hold a store's policy:

* ``allowed_signers``: the agents' public keys, in git's ``allowed_signers``
  format (``NAME KEYTYPE BASE64``), so ``git -c
  gpg.ssh.allowedSignersFile=allowed_signers verify-commit`` works on a
  checkout of the branch.
* ``access.toml``: whether signatures are required, who is an admin (may
  change these two files), who is an operator (may reset or reap another
  agent's claim) and which pushers, as the host names them, may act as which
  agents::

      schema = 1
      kind = "gitclaim-access"
      require_signed = true
      admins = ["alice"]
      operators = ["alice", "ops-bot"]

      [pushers]             # a pusher may always act as the agent of its own name
      ci-runner = ["agent-1", "agent-2"]
      alice = ["*"]         # any agent

A commit is judged by the policy of its parent: a key vouches only for
commits after the one that listed it, and an admin's change of the policy is
checked against the admins and keys that were there before it. The first
policy of a store has no parent to vouch for it: it must be anchored from
outside the branch (docs/identity.md).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import BadInput, StoreCorrupt
from .ids import validate_agent

ACCESS_FILE = "access.toml"
SIGNERS_FILE = "allowed_signers"
FILES = (ACCESS_FILE, SIGNERS_FILE)
SCHEMA = 1
ANY_AGENT = "*"


@dataclass(frozen=True, slots=True)
class Policy:
    """A store's access rules (the empty policy: nothing defined, nothing required)."""

    require_signed: bool = False
    admins: tuple[str, ...] = ()
    operators: tuple[str, ...] = ()
    pushers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    signers: str = ""  # the allowed_signers file's text
    defined: bool = False  # an access file exists

    def may_act_as(self, pusher: str, agent: str) -> bool:
        """Whether the host's user ``pusher`` may push commits authored as ``agent``."""
        allowed = self.pushers.get(pusher, ())
        return agent == pusher or agent in allowed or ANY_AGENT in allowed

    def pusher_is_operator(self, pusher: str) -> bool:
        named = (pusher, *(a for a in self.pushers.get(pusher, ()) if a != ANY_AGENT))
        return any(a in self.operators for a in named)

    def is_operator(self, agent: str) -> bool:
        """Operators reset and reap others' claims; with no access file, anyone may (as before)."""
        return not self.defined or agent in self.operators

    def to_json(self) -> dict[str, object]:
        return {
            "require_signed": self.require_signed,
            "admins": list(self.admins),
            "operators": list(self.operators),
            "pushers": {k: list(v) for k, v in sorted(self.pushers.items())},
        }


def _names(doc: Mapping[str, Any], key: str, *, star: bool = False) -> tuple[str, ...]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise StoreCorrupt(f"{ACCESS_FILE}: {key!r} must be a list of agent names", path=ACCESS_FILE)
    for v in value:
        if not (star and v == ANY_AGENT):
            try:
                validate_agent(v)
            except BadInput as e:
                raise StoreCorrupt(f"{ACCESS_FILE}: {key}: {e.message}", path=ACCESS_FILE) from None
    return tuple(dict.fromkeys(value))


def parse(access: bytes | None, signers: bytes | None) -> Policy:
    """The policy two files make (None: absent). Raises :class:`StoreCorrupt`."""
    text = "" if signers is None else signers.decode("utf-8", errors="replace")
    if access is None:
        return Policy(signers=text)
    try:
        doc = tomllib.loads(access.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise StoreCorrupt(f"{ACCESS_FILE} is not valid TOML: {e}", path=ACCESS_FILE) from None
    if doc.get("kind") != "gitclaim-access":
        raise StoreCorrupt(f"{ACCESS_FILE}: 'kind' must be \"gitclaim-access\"", path=ACCESS_FILE)
    schema = doc.get("schema")
    if schema != SCHEMA:
        raise StoreCorrupt(f"{ACCESS_FILE}: schema {schema!r} is not {SCHEMA}", path=ACCESS_FILE)
    required = doc.get("require_signed", False)
    if not isinstance(required, bool):
        raise StoreCorrupt(f"{ACCESS_FILE}: 'require_signed' must be true or false", path=ACCESS_FILE)
    table = doc.get("pushers", {})
    if not isinstance(table, dict):
        raise StoreCorrupt(f"{ACCESS_FILE}: 'pushers' must be a table", path=ACCESS_FILE)
    pushers = {str(k): _names(table, k, star=True) for k in table}
    return Policy(required, _names(doc, "admins"), _names(doc, "operators"), pushers, text, True)


def dump(policy: Policy) -> bytes:
    """The access file of ``policy``."""
    import tomli_w  # only an admin writes one: the hooks never load it

    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "kind": "gitclaim-access",
        "require_signed": policy.require_signed,
        "admins": list(policy.admins),
        "operators": list(policy.operators),
    }
    if policy.pushers:
        doc["pushers"] = {k: list(v) for k, v in sorted(policy.pushers.items())}
    return tomli_w.dumps(doc).encode()
