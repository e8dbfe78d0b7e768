"""Compare-and-swap over the network (git://, ssh, http and https) through libgit2."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import pygit2
from pygit2.enums import Option

if TYPE_CHECKING:
    pass
from ..errors import (
    LocalIOError,
    PushRejected,
)
from .callbacks import PushCallbacks, local_user
from .failures import RACE_WORDS, NoMoreCredentials, error_text, lock_named, network_error, scrub
from .tls import trust_ca_bundle
from .transport import ALIVE_PREFIX, CONNECT_TIMEOUT_MS, IO_TIMEOUT_MS, BranchMoved, Transport, env_ms

if TYPE_CHECKING:
    from .repo import Repo


class NetworkTransport(Transport):
    """git://, ssh:// or http(s):// remotes: the server's receive-pack does the swap."""

    def __init__(self, repo: Repo, remote: str, branch: str, url: str) -> None:
        super().__init__(repo, remote, branch)
        self.url = url
        pygit2.option(Option.SET_SERVER_CONNECT_TIMEOUT, env_ms("GITCLAIM_CONNECT_TIMEOUT_MS", CONNECT_TIMEOUT_MS))
        pygit2.option(Option.SET_SERVER_TIMEOUT, env_ms("GITCLAIM_IO_TIMEOUT_MS", IO_TIMEOUT_MS))
        # Where to connect: the URL, unless ~/.ssh/config says an ssh host alias is elsewhere.
        self.connect_url = url
        self.ssh_keys: tuple[str, ...] = ()
        self.identities_only = False
        from . import sshconfig  # network remotes only: keeps local commands' start-up short

        entries = sshconfig.load() if sshconfig.split_ssh_url(url) is not None else []  # read it for ssh only
        target = sshconfig.resolve(url, entries, home=os.path.expanduser("~"), local_user=local_user())
        if target is not None:
            self.ssh_keys = target.identity_files
            self.identities_only = target.identities_only
            if target.moved:
                self.connect_url = target.url()
        self._tls_ready = urlparse(url).scheme.lower() != "https"

    def _git_remote(self) -> pygit2.Remote:
        if not self._tls_ready:
            # On first use, not when built: --offline must work whatever the CA settings.
            trust_ca_bundle(self.url, self.repo.config_entries())
            self._tls_ready = True
        if self.connect_url == self.url:
            return self.repo.repo.remotes[self.remote]
        return self.repo.repo.remotes.create_anonymous(self.connect_url)

    def _ssh_keys(self) -> tuple[str, ...]:
        return self.ssh_keys

    def _identities_only(self) -> bool:
        return self.identities_only

    def _shown_url(self) -> str:
        shown = (
            self.url if self.connect_url == self.url else f"{self.url}, which ~/.ssh/config makes {self.connect_url}"
        )
        return scrub(shown)

    def _fetch_tip(self) -> str | None:
        # A clone with no copy of the store branch fetches its tip only: a claim
        # needs the tree, not a year of history (log, show and verify deepen).
        # Depth 2, not 1: the tip's own change can then be read (who claimed what,
        # for a lost race's answer); the commit below it is the cut.
        first = self.local_tip() is None and self.last_seen() is None and self.shallow_ok()
        return self._fetch_branch(depth=2 if first else 0)

    def push_alive(self, agent: str, commit: str) -> None:
        tmp = self._push_ref(commit)
        git = self.repo.repo
        cb = PushCallbacks(
            ALIVE_PREFIX + agent,
            None,
            check_old=False,
            config=self.repo.config_entries,
            ssh_keys=self.ssh_keys,
            identities_only=self.identities_only,
        )
        try:
            self._git_remote().push([f"+{tmp}:{ALIVE_PREFIX}{agent}"], callbacks=cb)
        except OSError as e:
            raise LocalIOError(f"cannot push the heartbeat of {agent}: {error_text(e)}", path=git.path) from None
        except (pygit2.GitError, NoMoreCredentials) as e:
            raise network_error(
                cb,
                e,
                f"cannot push the heartbeat of {agent} to {self.remote} ({self._shown_url()})",
                self.remote,
                self.url,
            ) from None
        finally:
            with contextlib.suppress(KeyError, pygit2.GitError, OSError):
                git.references.delete(tmp)
        cb.succeeded()
        if cb.refused is not None:
            said = scrub("".join(cb.sideband).strip())  # the hook's own words, not only "hook declined"
            raise PushRejected(
                scrub(f"the remote refused the heartbeat of {agent}: {cb.refused}") + (f"\n{said}" if said else ""),
                remote=self.remote,
                reason=scrub(cb.refused),
                server_output=said,
            )

    def _push_ref(self, commit: str) -> str:
        """libgit2 pushes from a ref, so give the commit a private, unique one."""
        tmp = f"refs/gitclaim/push/{uuid.uuid4().hex}"
        try:
            self.repo.repo.references.create(tmp, commit, force=True)
        except (pygit2.GitError, OSError) as e:
            raise LocalIOError(
                f"cannot write a ref into this clone ({self.repo.repo.path}): {error_text(e)}; nothing was pushed",
                path=self.repo.repo.path,
            ) from None
        return tmp

    def fetch_alive(self) -> dict[str, datetime]:
        local = f"refs/gitclaim/seen/{self.remote}/"
        self._libgit2_fetch(f"+{ALIVE_PREFIX}*:{local}*")
        return {agent: self.repo.commit_time(oid) for agent, oid in self.repo.refs_under(local).items()}

    def push(self, new: str, expected: str | None, paths: Iterable[str] | None = None) -> None:
        tmp = self._push_ref(new)
        self._push([f"{tmp}:{self.remote_ref}"], [tmp], new, expected)

    def replace(self, new: str, expected: str, archive: str) -> None:
        # One push, archive first: receive-pack updates refs in order, so a
        # per-ref hook (gitolite's VREF) sees the archive before the branch moves.
        # The forced update still swaps only from ``expected`` (push_negotiation).
        keep, tmp = self._push_ref(expected), self._push_ref(new)
        self._push([f"{keep}:{archive}", f"+{tmp}:{self.remote_ref}"], [keep, tmp], new, expected)

    def _push(self, specs: list[str], tmps: list[str], new: str, expected: str | None) -> None:
        git = self.repo.repo
        cb = PushCallbacks(
            self.remote_ref,
            expected,
            config=self.repo.config_entries,
            ssh_keys=self.ssh_keys,
            identities_only=self.identities_only,
        )
        try:
            self._git_remote().push(specs, callbacks=cb)
        except BranchMoved:
            cb.succeeded()  # the server answered: whatever credential it took was good
            raise
        except (pygit2.GitError, OSError, NoMoreCredentials) as e:
            text = error_text(e)
            if cb.accepted and cb.refused is None and self.repo.names_own_files(e):
                # The server took the push; only updating this clone's copy of the
                # ref failed (a lock, a full disk). That copy is a cache: the push landed.
                self._pushed(new)
                return
            if isinstance(e, OSError):
                raise LocalIOError(
                    f"cannot push {self.branch} from this clone: {text}; the remote did not take it",
                    path=self.repo.repo.path,
                ) from None
            if cb.moved or "non-fastforward" in text or "not present locally" in text:
                raise BranchMoved(cb.moved_to) from None
            raise network_error(
                cb, e, f"cannot push {self.branch} to {self.remote} ({self._shown_url()})", self.remote, self.url
            ) from None
        finally:
            for tmp in tmps:
                with contextlib.suppress(KeyError, pygit2.GitError, OSError):
                    git.references.delete(tmp)
        cb.succeeded()
        if cb.moved:
            raise BranchMoved(cb.moved_to)
        if cb.refused is not None:
            if any(w in cb.refused for w in RACE_WORDS):
                # the server's own words say whether a lock file was in the way
                raise BranchMoved(None, lock=lock_named(" ".join([cb.refused, *cb.sideband])))
            said = scrub("".join(cb.sideband).strip())
            raise PushRejected(
                scrub(f"the remote refused the push of {self.branch}: {cb.refused}") + (f"\n{said}" if said else ""),
                remote=self.remote,
                reason=scrub(cb.refused),
                server_output=said,
            )
        self._pushed(new)
