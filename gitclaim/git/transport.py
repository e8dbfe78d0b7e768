"""What every transport of the store branch is: fetch the tip, push with compare-and-swap,
keep liveness refs. Shared constants and the network timeouts live here too."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

import pygit2
from pygit2.enums import FetchPrune, Option

if TYPE_CHECKING:
    pass
from ..errors import BadInput, LocalIOError, NotInitialized, StoreVanished
from ..ids import ARCHIVE_PREFIX
from .failures import NoMoreCredentials, error_text, lock_named, network_error

if TYPE_CHECKING:
    from .repo import Repo

ZERO = "0" * 40
ZERO_RAW = bytes(20)
# Liveness lives outside the audited branch: one ref per agent, overwritten by
# each heartbeat, so renewals neither add commits to the branch nor contend
# with claims (they move a different ref).
ALIVE_PREFIX = "refs/gitclaim/alive/"

# Every network operation is bounded: an unreachable host must not hang an agent.
# The defaults hold from import on; a network transport applies the environment's.
CONNECT_TIMEOUT_MS, IO_TIMEOUT_MS = 10_000, 30_000
pygit2.option(Option.SET_SERVER_CONNECT_TIMEOUT, CONNECT_TIMEOUT_MS)
pygit2.option(Option.SET_SERVER_TIMEOUT, IO_TIMEOUT_MS)


def env_ms(name: str, default: int) -> int:
    """A timeout from the environment, in milliseconds. Raises BadInput for a bad value."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise BadInput(
            f"{name} must be a whole number of milliseconds above 0, not {raw!r}",
            hint=f"unset it for the default ({default} ms), or set e.g. {name}={default}",
            variable=name,
        )
    return value


Progress = Callable[[str, int, int], None]  # (stage, done, total)


class BranchMoved(Exception):
    """The remote branch is not where we built on: fetch, re-check, retry.

    ``lock`` names the lock file that refused the update, when that was the
    reason: a writer that holds it now, or one killed while holding it.
    """

    def __init__(self, tip: str | None = None, *, lock: str | None = None) -> None:
        super().__init__(tip)
        self.lock = lock


UNSHALLOW = 2147483647  # libgit2's GIT_FETCH_DEPTH_UNSHALLOW: fetch what a shallow clone lacks
STALE_LOCK_SECONDS = 10.0  # a writer holds a ref's lock for milliseconds; one this old was left behind


def local_path(url: str) -> Path | None:
    """The folder of a remote on this file system, or None for a network URL."""
    if url.startswith("file://"):
        return Path(unquote(urlparse(url).path))
    if "://" in url:
        return None
    # scp-like ssh syntax: host:path (a colon before any slash)
    head = url.split("/", 1)[0]
    if ":" in head and not (len(head) >= 2 and head[1] == ":"):
        return None
    return Path(url)


class Transport:
    """Fetch the store branch and push it with compare-and-swap."""

    def __init__(self, repo: Repo, remote: str, branch: str) -> None:
        self.repo = repo
        self.remote = remote
        self.branch = branch
        self.remote_ref = f"refs/heads/{branch}"
        self.tracking_ref = f"refs/remotes/{remote}/{branch}"
        self.last_ref = f"refs/gitclaim/last/{remote}/{branch}"
        self.progress: Progress | None = None
        # Set by the store: judges a tip that does not descend from the last one
        # seen (a compaction, or a forged rewrite); raises to refuse it.
        self.rewrite_check: Callable[[str, str], None] | None = None

    def local_tip(self) -> str | None:
        """The last tip we saw (may be stale). No network."""
        return self.repo.ref(self.tracking_ref)

    def peek(self) -> str | None:
        """The remote's tip now, asked without fetching anything (what
        ``git ls-remote`` does): a cheap way to learn whether the branch moved.
        None if the branch is absent. Raises :class:`RemoteUnreachable`."""
        trace("peek")
        return self._peek()

    def _peek(self) -> str | None:
        from .callbacks import NetCallbacks  # the network's callbacks import this module

        callbacks = NetCallbacks(self.repo.config_entries, self._ssh_keys(), self._identities_only())
        try:
            heads = self._git_remote().list_heads(callbacks=callbacks)
        except (OSError, pygit2.GitError, NoMoreCredentials) as e:
            shown = self._shown_url()
            raise network_error(
                callbacks, e, f"cannot ask {self.remote} ({shown}) for {self.branch}", self.remote, shown
            ) from None
        callbacks.succeeded()
        return next((str(h.oid) for h in heads if h.name == self.remote_ref), None)

    def fetch(self, *, vanished_ok: bool = False) -> str | None:
        """The remote's tip now, with its objects local. None if the branch is absent.

        A branch this clone saw before and the remote no longer has did not
        become a new, empty store: it vanished (a ``git push --mirror`` from a
        clone without it deletes it). That raises :class:`StoreVanished`, naming
        the last tip this clone knows, unless ``vanished_ok``. Raises
        :class:`RemoteUnreachable`.
        """
        trace("fetch")
        tip = self._fetch_tip()
        if tip is not None:
            last = self.last_seen()
            if last is not None and last != tip and self.rewrite_check is not None:
                self.rewrite_check(last, tip)
            self._saw(tip)
            return tip
        last = self.last_seen()
        if last is not None and not vanished_ok:
            raise StoreVanished.of(self.branch, self.remote, last)
        return None

    def last_seen(self) -> str | None:
        """The last tip of the store branch this clone saw on the remote (kept
        under refs/gitclaim/last/, so its history outlives the branch)."""
        return self.repo.ref(self.last_ref)

    def _saw(self, tip: str) -> None:
        if self.repo.ref(self.last_ref) != tip:
            self.repo.set_ref(self.last_ref, tip, "gitclaim: the remote's tip")

    def _pushed(self, new: str) -> None:
        self.repo.set_ref(self.tracking_ref, new, "gitclaim: push")
        self._saw(new)

    def _fetch_tip(self) -> str | None:
        raise NotImplementedError

    def push(self, new: str, expected: str | None, paths: Iterable[str] | None = None) -> None:
        """Move the remote branch from ``expected`` to ``new``, or fail.

        ``paths``, when given, are exactly the files ``new`` changes against
        ``expected`` (a transport may use them to send less).

        Raises :class:`BranchMoved` if the branch is not at ``expected``,
        :class:`PushRejected` if the remote refused for another reason,
        :class:`RemoteUnreachable` if it could not be reached.
        """
        raise NotImplementedError

    def replace(self, new: str, expected: str, archive: str) -> None:
        """Compaction: create ``archive`` at ``expected`` and move the branch from
        ``expected`` to ``new``, which does not descend from it (the one forced
        update gitclaim makes; :mod:`gitclaim.compaction`). Raises as :meth:`push`."""
        raise NotImplementedError

    def fetch_archives(self, depth: int = 0) -> dict[str, str]:
        """The remote's archive refs (full names, to their tips), their histories
        fetched (in a shallow clone, down to what it has, unless ``depth`` says more)."""
        local = f"refs/gitclaim/archived/{self.remote}/"
        self._libgit2_fetch(f"+{ARCHIVE_PREFIX}*:{local}*", depth)
        return {ARCHIVE_PREFIX + name: oid for name, oid in self.repo.refs_under(local).items()}

    def push_alive(self, agent: str, commit: str) -> None:
        """Overwrite the agent's liveness ref (not compare-and-swap: it is the agent's own)."""
        raise NotImplementedError

    def fetch_alive(self) -> dict[str, datetime]:
        """Each agent's last heartbeat, from the remote's liveness refs."""
        raise NotImplementedError

    def _git_remote(self) -> pygit2.Remote:
        return self.repo.repo.remotes[self.remote]

    def _ssh_keys(self) -> tuple[str, ...]:
        return ()

    def _identities_only(self) -> bool:
        return False

    def _shown_url(self) -> str:
        return str(self._git_remote().url)

    def shallow_ok(self) -> bool:
        """Whether a first fetch may be shallow (``gitclaim.shallow``, default true)."""
        value = (self.repo.config_get("gitclaim.shallow") or "true").strip().lower()
        return value not in ("false", "no", "off", "0")

    def deepen(self) -> None:
        """Fetch the whole history of the store branch into a shallow clone,
        and of the archives that keep what compactions replaced."""
        # Archives first: an unshallow fetch of the branch alone drops the shallow
        # mark of an archived tip whose history is still missing.
        self.fetch_archives(depth=UNSHALLOW)
        self._fetch_branch(depth=UNSHALLOW)
        self.repo.reopen()

    def _fetch_branch(self, depth: int = 0) -> str | None:
        """Fetch the store branch: its tip, or None if the remote has none.

        The fetch writes a ref of its own, read and dropped at once, and the
        tracking ref is then set as the cache it is: a lock on it left by a
        killed gitclaim or a concurrent git costs a stale cache, not the command.
        """
        tmp = f"refs/gitclaim/fetch/{uuid.uuid4().hex}"
        try:
            self._libgit2_fetch(f"+{self.remote_ref}:{tmp}", depth)
            tip = self.repo.ref(tmp)
        finally:
            self.repo.set_ref(tmp, None, "gitclaim: fetched")
        self.repo.set_ref(self.tracking_ref, tip, "gitclaim: fetch")
        return tip

    def _libgit2_fetch(self, spec: str, depth: int = 0) -> None:
        # libgit2 rewrites FETCH_HEAD on every fetch (and pygit2 has no switch for
        # it): put the user's back, so that `git fetch origin main && git merge
        # FETCH_HEAD` never merges the task store.
        head = Path(self.repo.repo.path) / "FETCH_HEAD"
        try:
            kept: bytes | None = head.read_bytes()
        except OSError:
            kept = None
        try:
            self._fetch_into_clone(spec, depth)
        finally:
            with contextlib.suppress(OSError):
                if kept is None:
                    head.unlink(missing_ok=True)
                elif head.read_bytes() != kept:
                    head.write_bytes(kept)

    def _fetch_into_clone(self, spec: str, depth: int = 0) -> None:
        from .callbacks import NetCallbacks  # the network's callbacks import this module

        remote = self._git_remote()
        callbacks = NetCallbacks(self.repo.config_entries, self._ssh_keys(), self._identities_only())
        if self.progress is not None:
            report = self.progress

            class _Progress(NetCallbacks):
                def transfer_progress(self, stats: pygit2.remotes.TransferProgress) -> None:
                    report("fetch", stats.received_objects, stats.total_objects)

            callbacks = _Progress(self.repo.config_entries, self._ssh_keys(), self._identities_only())
        try:
            remote.fetch([spec], prune=FetchPrune.PRUNE, callbacks=callbacks, depth=depth)
        except (OSError, pygit2.GitError, NoMoreCredentials) as e:
            text = error_text(e)
            if isinstance(e, OSError) or (isinstance(e, pygit2.GitError) and self.repo.names_own_files(e)):
                if "lock" in text.lower():
                    raise LocalIOError(
                        f"cannot update this clone's copy of {self.branch}: {text}",
                        hint="another git or gitclaim process is writing this clone, or one was killed while "
                        "writing: run the same command again; if no such process is running, delete the .lock "
                        "file named above",
                        path=self.repo.repo.path,
                        lock=lock_named(text),
                    ) from None
                raise LocalIOError(
                    f"cannot store what was fetched from {self.remote} in this clone: {text}",
                    hint="free disk space or fix the permissions of the clone's .git folder, then run the same "
                    "command again; reading commands can use --offline to read the copy fetched last",
                    path=self.repo.repo.path,
                ) from None
            shown = self._shown_url()
            raise network_error(
                callbacks, e, f"cannot fetch {self.branch} from {self.remote} ({shown})", self.remote, shown
            ) from None
        callbacks.succeeded()


TRACE_ENV = "GITCLAIM_TRACE_REMOTE"


def trace(kind: str) -> None:
    """Append ``kind`` (peek, fetch) to the file $GITCLAIM_TRACE_REMOTE names: how
    tests and benchmarks count what a command asked of the remote."""
    path = os.environ.get(TRACE_ENV)
    if path:
        with contextlib.suppress(OSError), open(path, "a", encoding="utf-8") as f:
            f.write(f"{kind} {os.getpid()}\n")


def io_timeout() -> float:
    return env_ms("GITCLAIM_IO_TIMEOUT_MS", IO_TIMEOUT_MS) / 1000


def require(tip: str | None, remote: str, branch: str) -> str:
    if tip is None:
        raise NotInitialized(
            f"the remote {remote!r} has no store branch {branch!r}",
            remote=remote,
            branch=branch,
        )
    return tip
