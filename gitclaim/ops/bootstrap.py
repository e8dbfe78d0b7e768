"""Creating the store branch, or attaching a clone to the one on the remote."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import audit
from ..errors import BadInput, StoreCorrupt
from ..git import BranchMoved
from ..identity import agent_email
from ..ids import STORE_FILE, TASKS_DIR
from ..model import StoreConfig, dump_store_config, utc
from ..policy import ACCESS_FILE, SIGNERS_FILE, Policy
from ..policy import dump as dump_policy
from ..results import InitResult, RestoreResult

if TYPE_CHECKING:
    from ..api import Store

SCHEMA = "1"


def init(store: Store, agent: str | None, require_signed: bool = False) -> InitResult:
    """Create or attach; see :meth:`gitclaim.api.Store.init`."""
    who = store.whoami(agent)
    first = _first_policy(store, who) if require_signed else {}
    t = store.transport
    for _ in range(3):
        tip = t.fetch()
        if tip is not None:
            store.snapshot(tip).config  # noqa: B018 - validates the existing store
            if require_signed:
                raise BadInput(
                    f"the store {store.branch_name!r} exists already: --require-signed sets up a new store only",
                    hint="an admin turns it on for an existing store with `gitclaim signers require`",
                )
            remember(store)
            return InitResult(store.remote_name, store.branch_name, tip, created=False)
        now = utc(store.clock())
        cfg = StoreConfig(created_at=now, created_by=who)
        files = {STORE_FILE: dump_store_config(cfg), f"{TASKS_DIR}/README.md": TASKS_README.encode(), **first}
        msg = audit.write(f"init gitclaim store by {who}", audit.Record(op="init", agent=who, schema=SCHEMA))
        new = store.repo.write_commit(None, files, msg, who, agent_email(who), now, sign=store.sign)
        try:
            t.push(new, expected=None)
        except BranchMoved:
            continue  # someone initialised it meanwhile: attach
        remember(store)
        return InitResult(store.remote_name, store.branch_name, new, created=True)
    raise StoreCorrupt(f"the branch {store.branch_name!r} keeps appearing and vanishing on the remote")


def _first_policy(store: Store, who: str) -> dict[str, bytes]:
    """The first policy of a store that requires signatures: ``who`` is its
    admin and operator, with the key that signs this clone's commits."""
    signer = store.signer
    if signer is None:
        raise BadInput(
            "--require-signed needs this clone to sign its commits, and signing is off",
            hint="git config gpg.format ssh; git config user.signingKey ~/.ssh/id_ed25519; git config gitclaim.sign"
            " true (docs/identity.md)",
        )
    from ..sshsig import AllowedSigners

    signers = AllowedSigners().with_added(who, signer.public_key).text()
    policy = Policy(require_signed=True, admins=(who,), operators=(who,), signers=signers, defined=True)
    return {ACCESS_FILE: dump_policy(policy), SIGNERS_FILE: signers.encode()}


def restore(store: Store, agent: str | None) -> RestoreResult:
    """Put back the store branch this clone last saw; see :meth:`gitclaim.api.Store.restore`."""
    store.whoami(agent)  # a legal name, like every change
    t = store.transport
    last = t.last_seen()
    if last is None or not store.repo.has(last):
        raise BadInput(
            f"this clone has never seen the store branch {store.branch_name!r} on {store.remote_name}: nothing to"
            " restore from here",
            hint="run gitclaim restore in a clone that worked with the store before it vanished",
        )
    store.snapshot(last).config  # noqa: B018 - what is put back must be a store
    for _ in range(3):
        tip = t.fetch(vanished_ok=True)
        if tip is not None:
            if store.repo.is_ancestor(last, tip):
                return RestoreResult(store.remote_name, store.branch_name, tip, restored=False)
            raise BadInput(
                f"the remote has a store branch {store.branch_name!r} again, at {tip[:10]}, which does not"
                f" contain the one this clone saw ({last[:10]}): nothing was changed",
                hint="compare the two with git log before deciding which to keep",
                tip=tip,
                last_tip=last,
            )
        try:
            t.push(last, expected=None)  # create only: never over a branch someone made meanwhile
        except BranchMoved:
            continue
        remember(store)
        return RestoreResult(store.remote_name, store.branch_name, last, restored=True)
    raise StoreCorrupt(f"the branch {store.branch_name!r} keeps appearing and vanishing on the remote")


def remember(store: Store) -> None:
    """Keep the remote and branch in the clone's config, for the next command."""
    store.repo.config_set("gitclaim.remote", store.remote_name)
    store.repo.config_set("gitclaim.branch", store.branch_name)


TASKS_README = """\
# gitclaim tasks

One TOML file per task, at tasks/<xx>/<id>.toml, where <xx> is the first two
hex digits of the SHA-1 of the id (`gitclaim show ID` prints the path). The
fan-out keeps every commit small however many tasks the store holds.

Change tasks with gitclaim (`gitclaim claim ID`, `gitclaim done ID`, ...):
every change is one commit whose trailers record who did what. Read the
audit trail with `git log` on this branch or `gitclaim log`.
"""
