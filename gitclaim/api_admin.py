"""The Store's operator and admin methods: identity policy, verify, compact, archive.

Kept apart from :mod:`gitclaim.api` only for size; :class:`gitclaim.api.Store`
inherits them, and they are part of its API like every other method.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from .ops import archive as archive_ops
from .ops import compact as compact_ops
from .ops import signers
from .ops import verify as verify_ops
from .results import ArchiveResult, CompactResult, PolicyResult, VerifyResult

if TYPE_CHECKING:
    from .api import Store


class AdminOps:
    """Methods of :class:`gitclaim.api.Store` for admins, operators and auditors."""

    @property
    def _as_store(self) -> Store:
        return cast("Store", self)

    # --- identity (docs/identity.md; gitclaim.ops.signers, gitclaim.ops.verify) --

    def signers_add(
        self, name: str, key: str, *, admin: bool = False, operator: bool = False, agent: str | None = None
    ) -> PolicyResult:
        """List ``name``'s public key (a .pub file's path or the key line) in allowed_signers. Admin only."""
        return signers.add(self._as_store, name, key, admin, operator, agent)

    def signers_remove(self, name: str, *, agent: str | None = None) -> PolicyResult:
        """Take ``name``'s keys out of allowed_signers. Admin only."""
        return signers.remove(self._as_store, name, agent)

    def signers_list(self, *, offline: bool = False) -> PolicyResult:
        """The store's allowed signers, roles and pusher map."""
        return signers.show(self._as_store, offline)

    def signers_require(self, *, agent: str | None = None) -> PolicyResult:
        """Require signed commits from now on. Admin only, with the admin's key listed."""
        return signers.require(self._as_store, agent)

    def access_grant(
        self, role: str, name: str, *, as_agents: Sequence[str] | None = None, agent: str | None = None
    ) -> PolicyResult:
        """Make ``name`` an admin or operator, or let the pusher ``name`` act as ``as_agents``. Admin only."""
        return signers.grant(self._as_store, role, name, as_agents, agent)

    def access_revoke(
        self, role: str, name: str, *, as_agents: Sequence[str] | None = None, agent: str | None = None
    ) -> PolicyResult:
        """Take a role away, or agents from a pusher's map. Admin only."""
        return signers.revoke(self._as_store, role, name, as_agents, agent)

    def verify(
        self, *, since: str | None = None, admins: Sequence[str] | None = None, offline: bool = False
    ) -> VerifyResult:
        """Replay the store branch's history through every check. Raises :class:`VerifyFailed`."""
        return verify_ops.verify(self._as_store, since, admins, offline)

    # --- bounded history (docs/history.md; gitclaim.ops.compact, gitclaim.ops.archive)

    def compact(self, *, agent: str | None = None) -> CompactResult:
        """Replace the store branch's history with one commit, keeping it in an archive ref.
        Operators only. Raises :class:`NotAllowed`, :class:`RetriesExhausted`."""
        return compact_ops.compact(self._as_store, agent)

    def archive(self, *, done_before: str, dry_run: bool = False, agent: str | None = None) -> ArchiveResult:
        """Move the tasks finished before ``done_before`` (a date, a time or an age: 30d) to archive/, in one
        commit. Operators only. Raises :class:`NotAllowed`, :class:`RetriesExhausted`."""
        return archive_ops.archive(self._as_store, done_before, dry_run, agent)
