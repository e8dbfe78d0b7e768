"""libgit2's callbacks for a network fetch or push: host keys, credentials, and the
compare-and-swap checks of a push."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pygit2
from pygit2.enums import CredentialType

from .failures import NoMoreCredentials
from .transport import ZERO, BranchMoved, io_timeout

if TYPE_CHECKING:
    from . import credentials as gitcred


def key_options(username: str | None, configured: Iterable[str] = (), identities_only: bool = False) -> list[Any]:
    """ssh keys to offer, in order.

    A key named for this remote comes first: the file GITCLAIM_SSH_KEY names,
    or else the IdentityFile lines of ~/.ssh/config for this host. Where the
    host knows its users by their keys (gitolite, forges), the first key it
    accepts is who you are, so an agent's other keys offered first would push
    as someone else. Then the ssh agent's keys, unless a key was named by
    GITCLAIM_SSH_KEY or ``IdentitiesOnly yes`` says the named ones only (as
    OpenSSH does). With nothing named: the agent, then ~/.ssh/id_ed25519 and
    ~/.ssh/id_rsa (the default keys only when the config names none).
    """
    user = username or "git"
    named = os.environ.get("GITCLAIM_SSH_KEY")
    ssh_dir = Path(os.path.expanduser("~")) / ".ssh"
    from_config = [Path(k) for k in configured]
    if named:
        keys = [Path(named).expanduser()]
    elif from_config:
        keys = from_config
    else:
        keys = [ssh_dir / "id_ed25519", ssh_dir / "id_rsa"]
    files = [
        pygit2.Keypair(user, str(Path(f"{key}.pub")) if Path(f"{key}.pub").is_file() else None, str(key), "")
        for key in keys
        if key.is_file()
    ]
    agent = [pygit2.KeypairFromAgent(user)] if os.environ.get("SSH_AUTH_SOCK") else []
    if named or from_config:
        return files if (named or identities_only) else [*files, *agent]
    return [*agent, *files]


def local_user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "")


class NetCallbacks(pygit2.RemoteCallbacks):
    """Host key check and credentials for every fetch and push over the network.

    libgit2 checks an ssh host key against ~/.ssh/known_hosts (and a TLS
    certificate against the system's CAs plus any configured CA bundle) and
    passes its verdict as ``valid``; pygit2's default would accept any ssh
    host key, so return the verdict. libgit2 asks for credentials again after
    each refusal: offer each option once, then give up instead of looping.

    http(s) credentials, in order: GITCLAIM_TOKEN, then git's credential
    helpers (see credentials.py), told ``store`` or ``erase`` by the outcome.
    """

    def __init__(
        self,
        config: Callable[[], list[tuple[str, str]]] | None = None,
        ssh_keys: tuple[str, ...] = (),
        identities_only: bool = False,
    ) -> None:
        super().__init__()
        self.ssh_keys = ssh_keys
        self.identities_only = identities_only
        self.host_key_refused: str | None = None
        self.offered: int = 0
        self.auth_failed = False
        self.problems: list[str] = []
        self._config = config
        self._options: list[Any] | None = None
        self._gave_username = False
        self._helpers_asked = False
        self._session: gitcred.Session | None = None
        self._pending: gitcred.Credential | None = None

    def certificate_check(self, certificate: None, valid: bool, host: bytes) -> bool:
        if not valid:
            self.host_key_refused = host.decode("utf-8", "replace")
        return bool(valid)

    def credentials(self, url: str, username_from_url: str | None, allowed_types: CredentialType) -> Any:
        if self._pending is not None and self._session is not None:
            # Asked again: the server refused what the helpers gave. Tell them, as git
            # does; if it was only remembered from earlier, forget it and ask them afresh.
            remembered = self._session.remembered
            self._session.tell(self._pending, "erase")
            self._pending = None
            if remembered:
                self._helpers_asked = False
        if not allowed_types & (CredentialType.SSH_KEY | CredentialType.USERPASS_PLAINTEXT):
            if allowed_types & CredentialType.USERNAME and not self._gave_username:
                self._gave_username = True  # ssh without a user in the URL asks for one first
                return pygit2.Username(username_from_url or "git")
            self.auth_failed = True
            raise NoMoreCredentials()
        if self._options is None:
            if allowed_types & CredentialType.SSH_KEY:
                self._options = key_options(username_from_url, self.ssh_keys, self.identities_only)
            else:
                token = os.environ.get("GITCLAIM_TOKEN")
                self._options = [pygit2.UserPass(username_from_url or "x-access-token", token)] if token else []
        if self._options:
            self.offered += 1
            return self._options.pop(0)
        if allowed_types & CredentialType.USERPASS_PLAINTEXT and not self._helpers_asked:
            self._helpers_asked = True
            cred = self._from_helpers(url, username_from_url)
            if cred is not None:
                self._pending = cred
                self.offered += 1
                return pygit2.UserPass(cred.username, cred.password)
        self.auth_failed = True
        raise NoMoreCredentials()

    def _from_helpers(self, url: str, username: str | None) -> gitcred.Credential | None:
        from . import credentials as gitcred  # only when a server asks: keeps every command's start-up short

        entries = self._config() if self._config is not None else []
        helpers = gitcred.helpers_for(url, entries)
        request = gitcred.request_for(url, helpers, username)
        if not helpers.commands:
            return None
        if request is None:
            self.problems.append("the URL cannot be given to credential helpers (a newline or NUL in it?)")
            return None
        self._session = gitcred.Session(helpers, request, io_timeout(), self.problems)
        return self._session.fill()

    def succeeded(self) -> None:
        """The operation went through: a helper's credential was good, so let the helpers keep it."""
        if self._pending is not None and self._session is not None:
            self._session.tell(self._pending, "store")
            self._pending = None


class PushCallbacks(NetCallbacks):
    def __init__(
        self,
        dst_ref: str,
        expected: str | None,
        *,
        check_old: bool = True,
        config: Callable[[], list[tuple[str, str]]] | None = None,
        ssh_keys: tuple[str, ...] = (),
        identities_only: bool = False,
    ) -> None:
        super().__init__(config, ssh_keys, identities_only)
        self.dst_ref = dst_ref
        self.check_old = check_old
        self.expected = expected or ZERO
        self.moved_to: str | None = None
        self.moved = False
        self.refused: str | None = None
        self.accepted = False
        self.sideband: list[str] = []

    def push_negotiation(self, updates: list[Any]) -> None:
        for u in updates:
            if self.check_old and u.dst_refname == self.dst_ref and str(u.src) != self.expected:
                self.moved = True
                self.moved_to = str(u.src)
                raise BranchMoved(self.moved_to)

    def push_update_reference(self, refname: str, message: str | None) -> None:
        if message is not None:
            self.refused = message
        elif refname == self.dst_ref:
            self.accepted = True  # the server moved the ref: whatever fails after this is ours, not its

    def sideband_progress(self, string: str) -> None:
        self.sideband.append(string)
