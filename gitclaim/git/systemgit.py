"""Compare-and-swap over the network through the system's git (``git fetch``, ``git push --porcelain``).

What the user's git and OpenSSH already do comes with it: the whole ssh_config
(``ProxyJump``, ``Match``, ``Include``), git's credential helpers and managers,
``url.<base>.insteadOf``, proxies, and git's sparse push walk. The swap is the
server's receive-pack, as for libgit2: a non-forced push of a commit whose
parent is the expected tip, with ``--force-with-lease=refs/heads/BRANCH:EXPECTED``
so that git itself refuses to send when the advertised tip is another; the
outcome is read from ``--porcelain`` only, never from git's words for humans.
Error text (stderr) is read only to tell apart why a connection failed, with
the messages forced to English (``LC_ALL=C``).

Every git process is bounded: ssh gets ``ConnectTimeout`` and ``BatchMode``,
http ``http.lowSpeedLimit``, and a watchdog ends a git that says nothing (no
progress, no answer) for GITCLAIM_IO_TIMEOUT_MS.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from ..errors import (
    AuthFailed,
    BadInput,
    GitclaimError,
    LocalIOError,
    PushRejected,
    RemoteUnreachable,
    UntrustedRemote,
)
from ..ids import ARCHIVE_PREFIX
from .failures import DENIAL_PHRASES, RACE_WORDS, lock_named, scrub
from .transport import ALIVE_PREFIX, CONNECT_TIMEOUT_MS, IO_TIMEOUT_MS, BranchMoved, Transport, env_ms

if TYPE_CHECKING:
    from .repo import Repo

# Variables a hook or a wrapper may have set that would point git elsewhere than this clone.
_FOREIGN_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR",
                "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH", "GIT_NAMESPACE", "GIT_PREFIX")  # fmt: skip
_PROGRESS = ("Enumerating", "Counting", "Compressing", "Writing", "Total", "Receiving", "Resolving", "Unpacking",
             "Delta compression", "From ", "To ", " * ", " + ")  # fmt: skip
HOST_KEY_PHRASES = ("host key verification failed", "remote host identification has changed")
TLS_PHRASES = ("ssl certificate problem", "server certificate verification failed", "certificate verify failed")
AUTH_PHRASES = ("permission denied (publickey", "permission denied, please try again", "authentication failed",
                "could not read username", "could not read password", "terminal prompts disabled",
                "returned error: 401", "too many authentication failures")  # fmt: skip
# A helper that gives GITCLAIM_TOKEN to git, read from the environment (never on a command line).
_TOKEN_HELPER = ('!f() { test "$1" = get || exit 0; grep -q "^username=" || echo username=x-access-token;'
                 ' echo "password=$GITCLAIM_TOKEN"; }; f')  # fmt: skip


@dataclass
class Ran:
    code: int
    out: str
    err: str
    silent: bool  # ended by the watchdog: nothing was heard for the I/O timeout


def run_git(argv: Sequence[str], env: dict[str, str], idle_s: float) -> Ran:
    """Run git; end it (and its ssh) when it has said nothing for ``idle_s`` seconds.

    ``--progress`` keeps a working transfer talking on stderr, so silence means a
    stalled server, not a large pack.
    """
    p = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env, start_new_session=True)  # fmt: skip
    chunks: dict[int, list[bytes]] = {1: [], 2: []}
    sel = selectors.DefaultSelector()
    assert p.stdout is not None and p.stderr is not None
    sel.register(p.stdout, selectors.EVENT_READ, 1)
    sel.register(p.stderr, selectors.EVENT_READ, 2)
    heard, silent, ended = time.monotonic(), False, None
    try:
        while sel.get_map():
            now = time.monotonic()
            if p.poll() is not None:
                # A background ssh master may hold the pipes open: stop reading soon after git ends.
                ended = ended or now
                if now - ended > 0.5:
                    break
            if now - heard > idle_s:
                silent = True
                _kill(p)
                break
            for key, _ in sel.select(timeout=0.1):
                data = os.read(key.fd, 65536)
                if data:
                    chunks[key.data].append(data)
                    heard = time.monotonic()
                else:
                    sel.unregister(key.fileobj)
        code = p.wait()
    except BaseException:
        _kill(p)  # Ctrl-C or the like: no git left behind writing
        raise
    finally:
        sel.close()
        p.stdout.close()
        p.stderr.close()
    text = {k: b"".join(v).decode("utf-8", "replace") for k, v in chunks.items()}
    return Ran(code, text[1], text[2], silent)


def _kill(p: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        p.wait(5)


def said(err: str) -> str:
    """git's and ssh's own lines of a failure, without progress meters."""
    lines = []
    for raw in err.replace("\r", "\n").splitlines():
        line = raw.strip()
        body = line[len("remote:") :].strip() if line.startswith("remote:") else line
        if line and not body.startswith(_PROGRESS) and not body.endswith(", done."):
            lines.append(line)
    return scrub("\n".join(dict.fromkeys(lines)))


def server_said(err: str) -> str:
    """What the server's hooks printed (git shows it as ``remote: ...`` lines)."""
    lines = [ln[len("remote:") :].strip() for ln in said(err).splitlines() if ln.startswith("remote:")]
    return "\n".join(ln for ln in lines if ln)


def failure(ran: Ran, what: str, remote: str, url: str, timeout_s: float) -> RemoteUnreachable:
    """One of five distinct failures, from git's exit and its (English) error lines."""
    url, what, text = scrub(url), scrub(what), said(ran.err)
    last = text.splitlines()[-1] if text else f"git exited with status {ran.code}"
    low = text.lower()
    if ran.silent:
        return RemoteUnreachable(
            f"{what}: no answer within {timeout_s:g} s", hint="check the network and that the server is running; "
            "GITCLAIM_IO_TIMEOUT_MS sets how long to wait", remote=remote, url=url, reason="unreachable",
        )  # fmt: skip
    if any(p in low for p in HOST_KEY_PHRASES):
        return UntrustedRemote(
            f"{what}: the server's host key is unknown or has changed ({last})",
            hint="check the host's key fingerprint, then add it to the known_hosts file ssh reads "
            "(e.g. `ssh-keyscan -p PORT HOST >> ~/.ssh/known_hosts`); a changed key may mean an impostor",
            remote=remote, url=url, reason="host_key",
        )  # fmt: skip
    if any(p in low for p in TLS_PHRASES):
        return UntrustedRemote(
            f"{what}: the server's TLS certificate is not trusted ({last})",
            hint="if the server uses a private CA, point GITCLAIM_CA_BUNDLE (or git's http.sslCAInfo) at that "
            "CA's certificate (PEM); otherwise the certificate is wrong or someone is impersonating the server",
            remote=remote, url=url, reason="certificate",
        )  # fmt: skip
    if any(p in low for p in DENIAL_PHRASES) or "returned error: 403" in low:
        return AuthFailed(
            f"{what}: the server refused access: {last}",
            hint="the server knows who you are but does not let you do this here: ask its operator for access; "
            "git http-backend refuses pushes unless the user is authenticated or http.receivepack is set",
            remote=remote, url=url, reason="forbidden",
        )  # fmt: skip
    if any(p in low for p in AUTH_PHRASES):
        return AuthFailed(
            f"{what}: authentication failed ({last})",
            hint="ssh: a key the server accepts, in ssh-agent, your ssh config, or GITCLAIM_SSH_KEY; http(s): "
            "GITCLAIM_TOKEN, or a credential helper in git's config (`git config credential.helper ...`)",
            remote=remote, url=url, reason="auth",
        )  # fmt: skip
    return RemoteUnreachable(f"{what}: {text or last}", hint="check the network and that the server is running",
                             remote=remote, url=url, reason="unreachable")  # fmt: skip


def porcelain(out: str, dst: str) -> tuple[str, str] | None:
    """``git push --porcelain``'s (flag, summary) for ``dst``, or None if it reported none."""
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and len(parts[0]) == 1 and parts[1].endswith(f":{dst}"):
            return parts[0], parts[2]
    return None


class SystemGitTransport(Transport):
    """git://, ssh:// or http(s):// remotes through the git program."""

    def __init__(self, repo: Repo, remote: str, branch: str, url: str, git: str) -> None:
        super().__init__(repo, remote, branch)
        self.url = url
        self.git = git
        from . import sshconfig

        self.is_ssh = sshconfig.split_ssh_url(url) is not None
        self.is_http = urlparse(url).scheme.lower() in ("http", "https")
        self._env: dict[str, str] | None = None

    def _shown_url(self) -> str:
        return scrub(self.url)

    # --- running git ------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        if self._env is None:
            env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
            env.update(LC_ALL="C", LANGUAGE="C", GIT_TERMINAL_PROMPT="0")
            if self.is_ssh:
                from .sshmux import ssh_command

                configured = os.environ.get("GIT_SSH_COMMAND") or self.repo.config_get("core.sshCommand")
                connect = env_ms("GITCLAIM_CONNECT_TIMEOUT_MS", CONNECT_TIMEOUT_MS)
                command = ssh_command(configured, key=os.environ.get("GITCLAIM_SSH_KEY"), connect_ms=connect,
                                      multiplex=self.repo.config_get("gitclaim.sshShare") != "false")  # fmt: skip
                if command is not None:
                    env["GIT_SSH_COMMAND"] = command
            ca = os.environ.get("GITCLAIM_CA_BUNDLE") if self.is_http else None
            if ca:
                if not os.path.isfile(os.path.expanduser(ca)):
                    raise BadInput(
                        f"the CA bundle {ca} does not exist",
                        hint="point GITCLAIM_CA_BUNDLE (or git's http.sslCAInfo) at a PEM file with the CA's "
                        "certificate",
                        path=ca,
                    )
                env["GIT_SSL_CAINFO"] = os.path.expanduser(ca)  # the environment's: it beats git's config
            self._env = env
        return self._env

    def _options(self) -> list[str]:
        idle = max(1, int(self._idle()))
        opts = ["-c", "http.lowSpeedLimit=1", "-c", f"http.lowSpeedTime={idle}", "-c", "gc.auto=0",
                "-c", "maintenance.auto=false", "-c", "fetch.writeCommitGraph=false",
                "-c", "fetch.showForcedUpdates=false", "-c", "push.useBitmaps=true"]  # fmt: skip
        if self.is_http and os.environ.get("GITCLAIM_TOKEN"):
            opts += ["-c", "credential.helper=", "-c", f"credential.helper={_TOKEN_HELPER}"]
        return opts

    def _idle(self) -> float:
        return env_ms("GITCLAIM_IO_TIMEOUT_MS", IO_TIMEOUT_MS) / 1000

    def _run(self, *args: str) -> Ran:
        argv = [self.git, f"--git-dir={self.repo.git_dir}", *self._options(), *args]
        try:
            return run_git(argv, self._environment(), self._idle())
        except OSError as e:
            raise LocalIOError(f"cannot run {self.git}: {e}", hint="install git, or set gitclaim.transport to "
                               "libgit2", path=self.git) from None  # fmt: skip

    # --- fetch ------------------------------------------------------------------

    def _fetch_tip(self) -> str | None:
        # As the libgit2 transport: a clone with no copy of the branch fetches the tip
        # and its parent (docs/history.md); log, show and verify deepen.
        first = self.local_tip() is None and self.last_seen() is None and self.shallow_ok()
        return self._fetch_into_tracking(["--depth", "2"] if first else [])

    def deepen(self) -> None:
        """The whole history of the branch and of the archives, in one fetch."""
        if self.repo.is_shallow():
            local = f"refs/gitclaim/archived/{self.remote}/"
            ran = self._fetch("--unshallow", f"+{self.remote_ref}:{self.tracking_ref}", f"+{ARCHIVE_PREFIX}*:{local}*")
            if ran.code != 0:
                raise self._fetch_failure(ran, f"cannot fetch the history of {self.branch} from {self.remote}")
        self._fetch_into_tracking([])

    def fetch_archives(self, depth: int = 0) -> dict[str, str]:
        local = f"refs/gitclaim/archived/{self.remote}/"
        ran = self._fetch("--prune", f"+{ARCHIVE_PREFIX}*:{local}*")
        if ran.code != 0:
            raise self._fetch_failure(ran, f"cannot fetch the archives from {self.remote} ({self._shown_url()})")
        return {ARCHIVE_PREFIX + name: oid for name, oid in self.repo.refs_under(local).items()}

    def _fetch_into_tracking(self, extra: list[str]) -> str | None:
        # Into a ref of its own, read and dropped at once; the tracking ref is then
        # set as the cache it is (see Transport._fetch_branch). --refmap= keeps git
        # from updating the configured tracking refs itself; FETCH_HEAD stays the user's.
        tmp = f"refs/gitclaim/fetch/{uuid.uuid4().hex}"
        try:
            ran = self._fetch(*extra, f"+{self.remote_ref}:{tmp}")
            if ran.code != 0:
                if "couldn't find remote ref" in ran.err.lower():
                    self.repo.set_ref(self.tracking_ref, None, "gitclaim: branch absent")
                    return None
                raise self._fetch_failure(ran, f"cannot fetch {self.branch} from {self.remote} ({self._shown_url()})")
            tip = self.repo.ref(tmp)
        finally:
            with contextlib.suppress(LocalIOError):
                self.repo.set_ref(tmp, None, "gitclaim: fetched")
        self.repo.set_ref(self.tracking_ref, tip, "gitclaim: fetch")
        return tip

    def _fetch(self, *args: str) -> Ran:
        before = self.repo.shallow_stamp()
        ran = self._run("fetch", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules", "--refmap=",
                        "--progress", self.remote, *args)  # fmt: skip
        if self.repo.shallow_stamp() != before:
            # git wrote, or removed, the shallow list (a first fetch, a deepening); libgit2 reads it only
            # when a repository is opened, and its history walks would stop at a parent it lacks
            self.repo.reopen()
        return ran

    def _fetch_failure(self, ran: Ran, what: str) -> GitclaimError:
        low = ran.err.lower()
        if "cannot lock ref" in low or ("unable to" in low and "no space" in low):
            return LocalIOError(
                f"cannot store what was fetched from {self.remote} in this clone: {said(ran.err)}",
                hint="free disk space or fix the permissions of the clone's .git folder, or end the other git "
                "writing it, then run the same command again",
                path=str(self.repo.git_dir), lock=lock_named(ran.err),
            )  # fmt: skip
        return failure(ran, what, self.remote, self.url, self._idle())

    def fetch_alive(self) -> dict[str, datetime]:
        local = f"refs/gitclaim/seen/{self.remote}/"
        ran = self._fetch("--prune", f"+{ALIVE_PREFIX}*:{local}*")
        if ran.code != 0:
            raise self._fetch_failure(ran, f"cannot fetch the heartbeats from {self.remote} ({self._shown_url()})")
        return {agent: self.repo.commit_time(oid) for agent, oid in self.repo.refs_under(local).items()}

    # --- push -------------------------------------------------------------------

    def push(self, new: str, expected: str | None, paths: Iterable[str] | None = None) -> None:
        parents = self.repo.commit_info(new).parents
        if expected is not None and expected not in parents and not self.repo.is_ancestor(expected, new):
            raise BranchMoved(None)  # the lease would let git force it: never
        ran = self._run("push", "--porcelain", "--no-verify", "--progress",
                        f"--force-with-lease={self.remote_ref}:{expected or ''}", self.remote,
                        f"{new}:{self.remote_ref}")  # fmt: skip
        status = porcelain(ran.out, self.remote_ref)
        if ran.code == 0 and status is not None and status[0] == "=" and new != expected:
            # "up to date": the branch already pointed at this very commit, so git skipped the lease.
            # It moved there without this push (an earlier run's commit, byte for byte the same):
            # moved, as libgit2's check of the advertised tip says, and decided again on it.
            raise BranchMoved(None)
        self._outcome(ran, self.remote_ref, f"the push of {self.branch}", race=True)
        self._pushed(new)

    def replace(self, new: str, expected: str, archive: str) -> None:
        # Archive first (a per-ref hook sees it before the branch moves); each ref
        # leased: the archive must not exist, the branch must be at ``expected``.
        ran = self._run("push", "--porcelain", "--no-verify", "--progress",
                        f"--force-with-lease={archive}:", f"--force-with-lease={self.remote_ref}:{expected}",
                        self.remote, f"{expected}:{archive}", f"{new}:{self.remote_ref}")  # fmt: skip
        self._outcome(ran, self.remote_ref, f"the compaction of {self.branch}", race=True)
        self._pushed(new)

    def push_alive(self, agent: str, commit: str) -> None:
        ref = ALIVE_PREFIX + agent
        ran = self._run("push", "--porcelain", "--no-verify", "--progress", self.remote, f"+{commit}:{ref}")
        self._outcome(ran, ref, f"the heartbeat of {agent}", race=False)

    def _outcome(self, ran: Ran, dst: str, what: str, *, race: bool) -> None:
        """Return if the remote took the update; else raise what it said (BranchMoved, PushRejected,
        or RemoteUnreachable when the answer never came: whether it landed is then unknown)."""
        status = porcelain(ran.out, dst)
        if status is not None and status[0] in " *+=" and ran.code == 0:
            return
        if status is None or status[0] != "!" or "[remote failure]" in status[1]:
            raise failure(ran, f"cannot push {what} to {self.remote} ({self._shown_url()})", self.remote,
                          self.url, self._idle())  # fmt: skip
        reason = status[1]
        if race and any(w in reason for w in RACE_WORDS):
            raise BranchMoved(None, lock=lock_named(" ".join([reason, server_said(ran.err)])))
        words = server_said(ran.err)  # the hook's own words, not only "hook declined"
        short = reason.split("(", 1)[-1].rstrip(")") if "(" in reason else reason
        raise PushRejected(
            scrub(f"the remote refused {what}: {short}") + (f"\n{words}" if words else ""),
            remote=self.remote,
            reason=scrub(short),
            server_output=words,
        )
