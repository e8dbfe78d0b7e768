"""The store's policy: allowed signers, roles and the pusher map (admin operations).

Each change is one commit touching ``access.toml`` and ``allowed_signers``
only, with ``Gitclaim-Op: signers`` or ``access``. The validator and the
server hook judge it by the policy before it (:mod:`gitclaim.trust`): only a
listed admin changes the policy, and where signatures are required the
admin's key, listed before, must sign it. gitclaim checks the same here
first, so a refusal is a clear ``not_allowed`` rather than a refused push.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from .. import audit
from ..cas import NoWrite, Write
from ..errors import BadInput, NotAllowed
from ..ids import validate_agent
from ..policy import ACCESS_FILE, ANY_AGENT, SIGNERS_FILE, Policy, dump
from ..policy import parse as parse_policy
from ..results import PolicyResult

if TYPE_CHECKING:
    from ..api import Store
    from ..snapshot import Snapshot

ROLES = ("admin", "operator", "pusher")
Change = Callable[[Policy, str], Policy]  # (policy before, the acting agent) -> after


def policy_of(snap: Snapshot) -> Policy:
    tree = snap.tree
    return parse_policy(snap.repo.read_path(tree, ACCESS_FILE), snap.repo.read_path(tree, SIGNERS_FILE))


def show(store: Store, offline: bool) -> PolicyResult:
    tip = store._tip(offline)
    return PolicyResult(policy_of(store.snapshot(tip)), tip)


def _public_key(key: str) -> str:
    """The key line of a .pub file's path, or of the key itself."""
    from ..sshsig import parse_public_key

    text = key.strip()
    if not text.startswith(("ssh-", "ecdsa-", "sk-")):
        path = Path(key).expanduser()
        try:
            text = path.read_text().strip()
        except OSError as e:
            raise BadInput(f"cannot read the public key file {key}: {e.strerror}", path=key) from None
    return parse_public_key(text.splitlines()[0] if text else text).line()


def add(store: Store, name: str, key: str, admin: bool, operator: bool, agent: str | None) -> PolicyResult:
    validate_agent(name)
    line = _public_key(key)

    def change(p: Policy, who: str) -> Policy:
        from ..sshsig import AllowedSigners, parse_public_key

        signers = AllowedSigners.parse(p.signers).with_added(name, parse_public_key(line)).text()
        return _roles(replace(p, signers=signers), name, admin, operator)

    return _change(store, agent, "signers", f"add signer {name}", change)


def remove(store: Store, name: str, agent: str | None) -> PolicyResult:
    validate_agent(name)

    def change(p: Policy, who: str) -> Policy:
        from ..sshsig import AllowedSigners

        signers = AllowedSigners.parse(p.signers)
        if not signers.keys_for(name):
            raise BadInput(f"{name} has no key in the store's allowed_signers", name=name)
        return replace(p, signers=signers.without(name).text())

    return _change(store, agent, "signers", f"remove signer {name}", change)


def require(store: Store, agent: str | None) -> PolicyResult:
    def change(p: Policy, who: str) -> Policy:
        from ..sshsig import AllowedSigners

        if not AllowedSigners.parse(p.signers).keys_for(who):
            raise BadInput(
                f"{who} has no key in the store's allowed_signers: nothing could vouch for this commit",
                hint=f"gitclaim signers add {who} ~/.ssh/id_ed25519.pub --admin, then signers require",
            )
        return replace(p, require_signed=True)

    return _change(store, agent, "signers", "require signed commits", change)


def grant(store: Store, role: str, name: str, as_agents: Sequence[str] | None, agent: str | None) -> PolicyResult:
    return _access(store, role, name, as_agents, agent, grant=True)


def revoke(store: Store, role: str, name: str, as_agents: Sequence[str] | None, agent: str | None) -> PolicyResult:
    return _access(store, role, name, as_agents, agent, grant=False)


def _access(
    store: Store, role: str, name: str, as_agents: Sequence[str] | None, agent: str | None, *, grant: bool
) -> PolicyResult:
    if role not in ROLES:
        raise BadInput(f"unknown role {role!r}: use {', '.join(ROLES)}", role=role)
    validate_agent(name)
    agents = [a if a == ANY_AGENT else validate_agent(a) for a in as_agents or []]
    if role == "pusher" and grant and not agents:
        raise BadInput("say which agents the pusher may act as: --as AGENT (repeat), or --as '*'")
    verb = "grant" if grant else "revoke"

    def change(p: Policy, who: str) -> Policy:
        if role == "pusher":
            now = list(p.pushers.get(name, ()))
            now = [*now, *(a for a in agents if a not in now)] if grant else [a for a in now if a not in agents]
            pushers = {**p.pushers, name: tuple(now)}
            return replace(p, pushers={k: v for k, v in pushers.items() if v})
        return _roles(p, name, grant and role == "admin", grant and role == "operator", drop=None if grant else role)

    return _change(store, agent, "access", f"{verb} {role} {name}", change)


def _roles(p: Policy, name: str, admin: bool, operator: bool, drop: str | None = None) -> Policy:
    admins = [a for a in p.admins if not (drop == "admin" and a == name)]
    operators = [a for a in p.operators if not (drop == "operator" and a == name)]
    if admin and name not in admins:
        admins.append(name)
    if operator and name not in operators:
        operators.append(name)
    return replace(p, admins=tuple(admins), operators=tuple(operators))


def _change(store: Store, agent: str | None, op: str, what: str, change: Change) -> PolicyResult:
    who = store.whoami(agent)

    def decide(snap: Snapshot, attempt: int) -> Write[PolicyResult] | NoWrite[PolicyResult]:
        before = policy_of(snap)
        if before.admins and who not in before.admins:
            raise NotAllowed(
                f"only an admin ({', '.join(before.admins)}) changes the store's policy; {who} is not one",
                rule="admin",
                admins=list(before.admins),
            )
        after = change(before, who)
        if not before.admins:  # the first policy names its author as an admin (docs/identity.md)
            after = _roles(after, who, admin=True, operator=True)
        after = replace(after, defined=True)
        files = {}
        if dump(after) != dump(before) or not before.defined:
            files[ACCESS_FILE] = dump(after)
        if after.signers != before.signers:
            files[SIGNERS_FILE] = after.signers.encode()
        if not files:
            return NoWrite(PolicyResult(before, snap.commit))
        record = audit.Record(op=op, agent=who, note=what, fields=tuple(sorted(files)))
        return Write(files, audit.write(f"{what} by {who}", record), PolicyResult(after, None, True))

    out = store._mutate(who, decide)
    value: PolicyResult = out.value
    return replace(value, commit=out.commit or value.commit, retries=out.retries)
