"""Turning libgit2's errors into gitclaim's: what happened, whether a push may have
landed, and never a secret in a message."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import pygit2

if TYPE_CHECKING:
    pass
from ..errors import (
    AuthFailed,
    RemoteUnreachable,
    UntrustedRemote,
)

if TYPE_CHECKING:
    from .callbacks import NetCallbacks


class NoMoreCredentials(Exception):
    """Every credential we have was offered and refused (or there was none)."""


_HTTP_USERINFO = re.compile(r"(https?://)[^/@\s]+@", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(\w://[^/@:\s]*):[^/@\s]*@")


def scrub(text: str) -> str:
    """``text`` without secrets: who and what of any http(s) URL's login
    (a token may be the user name: https://TOKEN@host/repo.git), the password
    of any other URL, and the value of GITCLAIM_TOKEN.

    Messages, --json errors and agents' logs must never repeat a secret.
    """
    text = _HTTP_USERINFO.sub(r"\1***@", text)
    text = _URL_PASSWORD.sub(r"\1:***@", text)
    token = os.environ.get("GITCLAIM_TOKEN")
    if token and len(token) >= 4:
        text = text.replace(token, "***")
    return text


def error_text(e: BaseException) -> str:
    return scrub(str(e).strip() or type(e).__name__)


_LOCK_FILE = re.compile(r"""['"]?([^'"\s]+\.lock)['"]?""")


def lock_named(text: str) -> str | None:
    """The lock file a refusal names ("Unable to create '.../gitclaim.lock': File exists")."""
    if "lock" not in text:
        return None
    m = _LOCK_FILE.search(text)
    return m.group(1) if m else "the ref's .lock file"


RACE_WORDS = ("fetch first", "non-fast-forward", "non-fastforward", "failed to lock", "cannot lock",
               "stale info", "failed to update ref", "but expected", "is at ")  # fmt: skip


AUTH_PHRASES = ("failed to authenticate ssh session", "status code: 401", "authentication replays",
                 "authentication required")  # fmt: skip


# A server's words for "you, whom it knows, may not do this here": the login worked,
# the access check refused. Nothing was sent, and retrying will not help.
DENIAL_PHRASES = (
    " denied by ",  # gitolite: FATAL: W any REPO USER DENIED by fallthru
    "fatal: w any ",
    "fatal: r any ",
    "access denied",
    "you are not allowed to push",  # GitLab
    "user permission denied",  # Gitea, Forgejo
    "write access to repository not granted",  # GitHub
)


def network_error(cb: NetCallbacks, e: BaseException, what: str, remote: str, url: str) -> RemoteUnreachable:
    """One of five distinct failures: the ssh host key, the TLS certificate,
    the credentials, access refused to known credentials, or the host itself."""
    text = error_text(e)
    url, what = scrub(url), scrub(what)
    tls = urlparse(url).scheme.lower() == "https"
    if cb.host_key_refused is not None or isinstance(e, pygit2.CertificateError):
        if tls:
            return UntrustedRemote(
                f"{what}: the server's TLS certificate is not trusted ({text})",
                hint="if the server uses a private CA, point GITCLAIM_CA_BUNDLE (or git's http.sslCAInfo) "
                "at that CA's certificate (PEM); otherwise the certificate is wrong or someone is "
                "impersonating the server",
                remote=remote,
                url=url,
                reason="certificate",
            )
        return UntrustedRemote(
            f"{what}: the server's host key is unknown or has changed ({text})",
            hint="check the host's key fingerprint, then add it to ~/.ssh/known_hosts "
            "(e.g. `ssh-keyscan -p PORT HOST >> ~/.ssh/known_hosts`); a changed key may mean an impostor",
            remote=remote,
            url=url,
            reason="host_key",
        )
    lowered = text.lower()
    if any(w in lowered for w in DENIAL_PHRASES) and not cb.auth_failed:
        return AuthFailed(
            f"{what}: the server refused access: {text}",
            hint="the server knows who you are but does not let you do this here: ask its operator for access"
            " (gitolite: a rule for your key's user in gitolite.conf), or use the key it knows for your agent",
            remote=remote,
            url=url,
            reason="forbidden",
        )
    if "status code: 403" in lowered and not cb.auth_failed:
        return AuthFailed(
            f"{what}: the server refused access (HTTP 403 Forbidden)",
            hint="the server knows who you are (or needs no login) but does not let you do this here: ask its "
            "operator for access to this repository; git http-backend refuses pushes unless the user is "
            "authenticated or http.receivepack is set",
            remote=remote,
            url=url,
            reason="forbidden",
        )
    if (
        cb.auth_failed
        or isinstance(e, NoMoreCredentials)
        # libgit2's own words for a refused login (not bare numbers or words a host name may hold)
        or any(w in lowered for w in AUTH_PHRASES)
    ):
        tried = "no credentials were available" if cb.offered == 0 else f"{cb.offered} credential(s) refused"
        said = scrub("".join(f"; {p}" for p in dict.fromkeys(cb.problems)))
        return AuthFailed(
            f"{what}: authentication failed ({tried}{said})",
            hint="ssh: load a key into ssh-agent or set GITCLAIM_SSH_KEY to a private key file the server "
            "accepts; http(s): set GITCLAIM_TOKEN, or configure a git credential helper "
            "(`git config credential.helper ...`) that has a credential for this server",
            remote=remote,
            url=url,
            reason="auth",
        )
    return RemoteUnreachable(
        f"{what}: {text}",
        hint="check the network and that the server is running",
        remote=remote,
        url=url,
        reason="unreachable",
    )
