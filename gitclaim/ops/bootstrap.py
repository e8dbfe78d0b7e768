"""Creating the store branch, or attaching a clone to the one on the remote."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import audit
from ..errors import StoreCorrupt
from ..git import BranchMoved
from ..identity import agent_email
from ..ids import STORE_FILE, TASKS_DIR
from ..model import StoreConfig, dump_store_config, utc
from ..results import InitResult

if TYPE_CHECKING:
    from ..api import Store

SCHEMA = "1"


def init(store: Store, agent: str | None) -> InitResult:
    """Create or attach; see :meth:`gitclaim.api.Store.init`."""
    who = store.whoami(agent)
    t = store.transport
    for _ in range(3):
        tip = t.fetch()
        if tip is not None:
            store.snapshot(tip).config  # noqa: B018 - validates the existing store
            remember(store)
            return InitResult(store.remote_name, store.branch_name, tip, created=False)
        now = utc(store.clock())
        cfg = StoreConfig(created_at=now, created_by=who)
        files = {STORE_FILE: dump_store_config(cfg), f"{TASKS_DIR}/README.md": TASKS_README.encode()}
        msg = audit.write(f"init gitclaim store by {who}", audit.Record(op="init", agent=who, schema=SCHEMA))
        new = store.repo.write_commit(None, files, msg, who, agent_email(who), now)
        try:
            t.push(new, expected=None)
        except BranchMoved:
            continue  # someone initialised it meanwhile: attach
        remember(store)
        return InitResult(store.remote_name, store.branch_name, new, created=True)
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
