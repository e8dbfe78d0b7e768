"""All git access. Nothing above this module touches pygit2.

The layers above speak in commit ids (hex strings), paths and bytes. This
module owns: finding the repository, reading blobs and folders at a commit,
writing a commit that touches only the files it must, and the two transports
that fetch the store branch and push it with compare-and-swap semantics.

Compare-and-swap, per transport (see docs/design.md):

* a remote on a local path or ``file://`` URL: libgit2 would write the remote
  ref itself and check the old value only on the client, so concurrent pushes
  lose updates. We copy the new objects into the bare repository and move its
  ref inside a libgit2 reference transaction: lock the ref, compare it with
  the expected old tip, set it, unlock.
* any network remote (git://, ssh, http): a non-forced push through the
  server's receive-pack, which compares the old value under its own lock.
  ``push_negotiation`` additionally refuses to send anything if the remote's
  advertised tip is not the one we built on (what ``--force-with-lease``
  does), and a refusal reported by the server arrives in
  ``push_update_reference``.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import pygit2
from pygit2.enums import CredentialType, FetchPrune, FileMode, ObjectType, Option, RepositoryOpenFlag

if TYPE_CHECKING:
    from . import credentials as gitcred
from .errors import (
    AuthFailed,
    BadInput,
    LocalIOError,
    NotInitialized,
    PushRejected,
    RemoteUnreachable,
    StoreCorrupt,
    UntrustedRemote,
)

ZERO = "0" * 40
_ZERO_RAW = bytes(20)
# Liveness lives outside the audited branch: one ref per agent, overwritten by
# each heartbeat, so renewals neither add commits to the branch nor contend
# with claims (they move a different ref).
ALIVE_PREFIX = "refs/gitclaim/alive/"

# Every network operation is bounded: an unreachable host must not hang an agent.
# The defaults hold from import on; a network transport applies the environment's.
CONNECT_TIMEOUT_MS, IO_TIMEOUT_MS = 10_000, 30_000
pygit2.option(Option.SET_SERVER_CONNECT_TIMEOUT, CONNECT_TIMEOUT_MS)
pygit2.option(Option.SET_SERVER_TIMEOUT, IO_TIMEOUT_MS)


def _env_ms(name: str, default: int) -> int:
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
    """The remote branch is not where we built on: fetch, re-check, retry."""


@dataclass(frozen=True, slots=True)
class CommitInfo:
    id: str
    parents: tuple[str, ...]
    author: str
    author_email: str
    time: datetime
    message: str


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


def _git_error_text(e: BaseException) -> str:
    return scrub(str(e).strip() or type(e).__name__)


class Repo:
    """A clone (or linked worktree) that holds a copy of the store branch.

    Never touches the working tree, the index or HEAD.
    """

    @classmethod
    def from_hook_env(cls) -> Repo:
        """The repository a git hook runs in, with the objects of a push still
        in quarantine (GIT_DIR, GIT_OBJECT_DIRECTORY and alternates from the
        environment)."""
        self = cls.__new__(cls)
        gitdir = os.environ.get("GIT_DIR", ".")
        self.repo = pygit2.Repository(gitdir, RepositoryOpenFlag.FROM_ENV)
        self.common_dir = Path(_common_dir(self.repo.path))
        return self

    def __init__(self, path: str | os.PathLike[str] = ".") -> None:
        found = pygit2.discover_repository(str(path))
        if found is None:
            raise BadInput(
                f"{os.path.abspath(path)} is not inside a git repository",
                hint="run gitclaim inside a clone of the shared repository, or pass -C PATH",
                path=str(path),
            )
        self.repo = pygit2.Repository(found)
        # Linked worktrees share refs, objects and config with the main clone.
        self.common_dir = Path(_common_dir(found))

    # --- configuration -------------------------------------------------------

    def config_get(self, key: str) -> str | None:
        try:
            value = self.repo.config[key]
        except KeyError:
            return None
        return str(value)

    def config_entries(self) -> list[tuple[str, str]]:
        """Every setting of the clone's config, system first, then global, then local."""
        try:
            return [(e.name, e.value or "") for e in self.repo.config]
        except pygit2.GitError:
            return []

    def config_set(self, key: str, value: str) -> None:
        """Set one of gitclaim's own keys in the clone's config. Raises :class:`LocalIOError`."""
        try:
            self.repo.config[key] = value
        except (OSError, pygit2.GitError) as e:
            raise LocalIOError(f"cannot write {key} into this clone's config: {_git_error_text(e)}", key=key) from None

    def remote_url(self, name: str) -> str:
        try:
            remote = self.repo.remotes[name]
        except (KeyError, ValueError):
            raise BadInput(
                f"this repository has no remote named {name!r}",
                hint="add one with `git remote add NAME URL`, or pass --remote NAME",
                remote=name,
            ) from None
        url = remote.url
        if not url:
            raise BadInput(f"remote {name!r} has no URL", remote=name)
        return str(url)

    # --- objects -------------------------------------------------------------

    def has(self, oid: str) -> bool:
        return pygit2.Oid(hex=oid) in self.repo.odb

    def ref(self, name: str) -> str | None:
        ref = self.repo.references.get(name)
        return None if ref is None else str(ref.target)

    def names_own_files(self, e: BaseException) -> bool:
        """Whether a libgit2 error is about a file of this clone (disk full, read-only,
        permissions) rather than about the remote: libgit2 names the file it failed on."""
        text = str(e)
        return any(str(p).rstrip("/") + "/" in text for p in (self.common_dir, self.repo.path))

    def set_ref(self, name: str, oid: str | None, message: str) -> None:
        """Best effort: a local ref is a cache of the remote, never the truth."""
        try:
            if oid is None:
                if name in self.repo.references:
                    self.repo.references.delete(name)
            else:
                self.repo.references.create(name, oid, force=True)
        except (pygit2.GitError, KeyError, OSError):  # pygit2 raises OSError for a held lock
            pass

    def refs_under(self, prefix: str) -> dict[str, str]:
        return {
            name[len(prefix) :]: str(self.repo.references[name].target)
            for name in self.repo.references
            if name.startswith(prefix)
        }

    def commit_time(self, oid: str) -> datetime:
        c = self.repo[oid]
        assert isinstance(c, pygit2.Commit)
        return datetime.fromtimestamp(c.author.time, UTC)

    def commit_tree(self, commit: str) -> pygit2.Tree:
        try:
            obj = self.repo[commit]
        except KeyError:
            raise StoreCorrupt(f"commit {commit} is missing from the local object store", commit=commit) from None
        if not isinstance(obj, pygit2.Commit):
            raise StoreCorrupt(f"{commit} is not a commit", commit=commit)
        return obj.tree

    def read_path(self, tree: pygit2.Tree, path: str) -> bytes | None:
        try:
            obj = tree[path]
        except KeyError:
            return None
        if not isinstance(obj, pygit2.Blob):
            raise StoreCorrupt(f"{path} on the store branch is not a file", path=path)
        return bytes(obj.data)

    def subtree(self, tree: pygit2.Tree, path: str) -> pygit2.Tree | None:
        try:
            obj = tree[path]
        except KeyError:
            return None
        return obj if isinstance(obj, pygit2.Tree) else None

    def folders(self, tree: pygit2.Tree) -> list[tuple[str, str, pygit2.Tree | None]]:
        """(name, id, tree-or-None-if-not-a-folder) of each entry of ``tree``."""
        out = []
        for entry in tree:
            obj = self.repo[entry.id] if entry.type_str == "tree" else None
            out.append((str(entry.name), str(entry.id), obj if isinstance(obj, pygit2.Tree) else None))
        return out

    def blobs(self, tree: pygit2.Tree) -> Iterator[tuple[str, bytes]]:
        odb = self.repo.odb
        for entry in tree:
            if entry.type_str == "blob":
                _, data = odb.read(entry.id)
                yield str(entry.name), bytes(data)

    def changed_blobs(
        self, old: pygit2.Tree | None, new: pygit2.Tree | None
    ) -> dict[str, tuple[str | None, str | None]]:
        """path -> (old blob id, new blob id) for every file that differs.

        libgit2's tree diff skips every subtree whose id is unchanged, so a
        one-task change in a store of 100,000 tasks reads three small trees.
        """
        if old is None or new is None:
            empty = self.repo[self.repo.TreeBuilder().write()]
            assert isinstance(empty, pygit2.Tree)
            old, new = old or empty, new or empty
        a, b = old, new
        out: dict[str, tuple[str | None, str | None]] = {}
        for d in a.diff_to_tree(b).deltas:
            before = None if d.old_file.id.raw == _ZERO_RAW else str(d.old_file.id)
            after = None if d.new_file.id.raw == _ZERO_RAW else str(d.new_file.id)
            out[d.new_file.path or d.old_file.path] = (before, after)
        return out

    def changes_at(
        self, old: pygit2.Tree | None, new: pygit2.Tree, paths: Iterable[str]
    ) -> dict[str, tuple[str | None, str | None]]:
        """Like :meth:`changed_blobs`, for a commit whose changed paths are known
        (gitclaim's own): a lookup per path, no diff."""
        out: dict[str, tuple[str | None, str | None]] = {}
        for path in paths:
            before = self.tree_entry_id(old, path) if old is not None else None
            after = self.tree_entry_id(new, path)
            if before != after:
                out[path] = (before, after)
        return out

    def resolve(self, rev: str) -> str:
        try:
            return str(self.repo.revparse_single(rev).id)
        except (KeyError, ValueError, pygit2.GitError):
            raise BadInput(f"unknown revision {rev!r}", rev=rev) from None

    def blob(self, oid: str) -> bytes:
        _, data = self.repo.odb.read(pygit2.Oid(hex=oid))
        return bytes(data)

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        if ancestor == descendant:
            return True
        return bool(self.repo.descendant_of(pygit2.Oid(hex=descendant), pygit2.Oid(hex=ancestor)))

    def tree_entry_id(self, tree: pygit2.Tree, path: str) -> str | None:
        try:
            return str(tree[path].id)
        except KeyError:
            return None

    def write_commit(
        self,
        parent: str | None,
        files: Mapping[str, bytes],
        message: str,
        author: str,
        email: str,
        when: datetime,
    ) -> str:
        """Write a commit on ``parent`` replacing ``files``; rewrite only their trees.

        Raises :class:`LocalIOError` if the clone cannot be written.
        """
        repo = self.repo
        base = self.commit_tree(parent) if parent is not None else None
        nested: dict[str, Any] = {}
        for path, data in files.items():
            parts = path.split("/")
            node = nested
            for part in parts[:-1]:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise BadInput(f"{path} collides with a file on the store branch", path=path)
            node[parts[-1]] = data

        def build(tree: pygit2.Tree | None, changes: dict[str, Any], where: str) -> pygit2.Oid:
            tb = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
            for name, change in changes.items():
                if isinstance(change, bytes):
                    tb.insert(name, repo.create_blob(change), FileMode.BLOB)
                    continue
                sub: pygit2.Tree | None = None
                if tree is not None and name in tree:
                    found = repo[tree[name].id]
                    if not isinstance(found, pygit2.Tree):
                        raise StoreCorrupt(f"{where}{name} on the store branch is a file, not a folder")
                    sub = found
                tb.insert(name, build(sub, change, f"{where}{name}/"), FileMode.TREE)
            return tb.write()

        sig = pygit2.Signature(author, email, int(when.timestamp()), 0)
        parents = [pygit2.Oid(hex=parent)] if parent is not None else []
        try:
            return str(repo.create_commit(None, sig, sig, message, build(base, nested, ""), parents))
        except (OSError, pygit2.GitError) as e:  # pygit2 raises OSError when a write fails
            raise LocalIOError(
                f"cannot write the commit into this clone ({repo.path}): {_git_error_text(e)}; nothing was pushed",
                path=repo.path,
            ) from None

    def commit_info(self, oid: str) -> CommitInfo:
        c = self.repo[oid]
        assert isinstance(c, pygit2.Commit)
        return CommitInfo(
            id=str(c.id),
            parents=tuple(str(p) for p in c.parent_ids),
            author=c.author.name,
            author_email=c.author.email,
            time=datetime.fromtimestamp(c.author.time, UTC),
            message=c.message,
        )

    def walk(self, tip: str, limit: int | None = None) -> Iterator[CommitInfo]:
        """Commits reachable from ``tip``, newest first (first parent only)."""
        n = 0
        cur: str | None = tip
        while cur is not None and (limit is None or n < limit):
            info = self.commit_info(cur)
            yield info
            n += 1
            cur = info.parents[0] if info.parents else None

    # --- transports ----------------------------------------------------------

    def transport(self, remote: str, branch: str) -> Transport:
        url = self.remote_url(remote)
        local = _local_path(url)
        if local is not None:
            if not local.is_absolute():
                # git resolves a relative remote path from the top of the clone
                base = self.repo.workdir or self.repo.path
                local = (Path(base) / local).resolve()
            return LocalTransport(self, remote, branch, local)
        return NetworkTransport(self, remote, branch, url)


def _common_dir(gitdir: str) -> str:
    p = Path(gitdir)
    try:
        rel = (p / "commondir").read_text().strip()
    except OSError:
        return str(p)
    return str((p / rel).resolve())


def _local_path(url: str) -> Path | None:
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
        self.progress: Progress | None = None

    def local_tip(self) -> str | None:
        """The last tip we saw (may be stale). No network."""
        return self.repo.ref(self.tracking_ref)

    def fetch(self) -> str | None:
        """The remote's tip now, with its objects local. None if the branch is absent.

        Raises :class:`RemoteUnreachable`.
        """
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

    def _shown_url(self) -> str:
        return str(self._git_remote().url)

    def _libgit2_fetch(self, spec: str | None = None) -> None:
        remote = self._git_remote()
        spec = spec or f"+{self.remote_ref}:{self.tracking_ref}"
        callbacks = _NetCallbacks(self.repo.config_entries, self._ssh_keys())
        if self.progress is not None:
            report = self.progress

            class _Progress(_NetCallbacks):
                def transfer_progress(self, stats: pygit2.remotes.TransferProgress) -> None:
                    report("fetch", stats.received_objects, stats.total_objects)

            callbacks = _Progress(self.repo.config_entries, self._ssh_keys())
        try:
            remote.fetch([spec], prune=FetchPrune.PRUNE, callbacks=callbacks)
        except (OSError, pygit2.GitError, _NoMoreCredentials) as e:
            text = _git_error_text(e)
            if isinstance(e, OSError) or (isinstance(e, pygit2.GitError) and self.repo.names_own_files(e)):
                if "lock" in text.lower():
                    raise LocalIOError(
                        f"cannot update this clone's copy of {self.branch}: {text}",
                        hint="another git or gitclaim process is writing this clone, or one was killed while "
                        "writing: run the same command again; if no such process is running, delete the .lock "
                        "file named above",
                        path=self.repo.repo.path,
                    ) from None
                raise LocalIOError(
                    f"cannot store what was fetched from {self.remote} in this clone: {text}",
                    hint="free disk space or fix the permissions of the clone's .git folder, then run the same "
                    "command again; reading commands can use --offline to read the copy fetched last",
                    path=self.repo.repo.path,
                ) from None
            shown = self._shown_url()
            raise _network_error(
                callbacks, e, f"cannot fetch {self.branch} from {self.remote} ({shown})", self.remote, shown
            ) from None
        callbacks.succeeded()


class LocalTransport(Transport):
    """A bare repository on this machine (the embedded default)."""

    def __init__(self, repo: Repo, remote: str, branch: str, path: Path) -> None:
        super().__init__(repo, remote, branch)
        self.path = path
        self._remote_repo: pygit2.Repository | None = None

    def _open(self) -> pygit2.Repository:
        if self._remote_repo is None:
            try:
                # NO_SEARCH: a folder inside some other repository is not that repository
                self._remote_repo = pygit2.Repository(str(self.path), RepositoryOpenFlag.NO_SEARCH)
            except (pygit2.GitError, KeyError):
                raise RemoteUnreachable(
                    f"remote {self.remote!r} points to {self.path}, which is not a git repository",
                    hint="check `git remote -v`; the shared repository may have moved or been deleted",
                    remote=self.remote,
                    url=str(self.path),
                ) from None
        return self._remote_repo

    def _remote_tip(self) -> str | None:
        ref = self._open().references.get(self.remote_ref)
        return None if ref is None else str(ref.target)

    def fetch(self) -> str | None:
        tip = self._remote_tip()
        if tip is None:
            self.repo.set_ref(self.tracking_ref, None, "gitclaim: branch absent")
            return None
        if not self.repo.has(tip):
            self._libgit2_fetch()
            if not self.repo.has(tip):  # moved again meanwhile; objects of the newer tip are here
                tip = self.repo.ref(self.tracking_ref) or tip
            if not self.repo.has(tip):
                raise RemoteUnreachable(f"fetch from {self.path} did not bring {tip}", remote=self.remote)
        self.repo.set_ref(self.tracking_ref, tip, "gitclaim: fetch")
        return tip

    def push_alive(self, agent: str, commit: str) -> None:
        remote = self._open()
        ref = ALIVE_PREFIX + agent
        try:
            self._copy_objects(commit)
            with remote.transaction() as txn:
                txn.lock_ref(ref)
                txn.set_target(ref, pygit2.Oid(hex=commit), message="gitclaim: heartbeat")
        except (pygit2.GitError, OSError) as e:
            raise RemoteUnreachable(
                f"cannot write {ref} in {self.path}: {_git_error_text(e)}", remote=self.remote
            ) from None

    def fetch_alive(self) -> dict[str, datetime]:
        remote = self._open()
        out: dict[str, datetime] = {}
        for name in remote.references:
            if name.startswith(ALIVE_PREFIX):
                obj = remote[remote.references[name].target]
                if isinstance(obj, pygit2.Commit):
                    out[name[len(ALIVE_PREFIX) :]] = datetime.fromtimestamp(obj.author.time, UTC)
        return out

    def _copy_objects(self, new: str, paths: Iterable[str] | None = None) -> None:
        """Copy the objects of ``new`` the remote lacks.

        A commit built on the remote's tip differs from its parent only along
        the changed paths: copy those blobs and the trees on their paths
        (deepest first: the remote never holds a tree whose entries are
        missing), so a claim in a store of 100,000 tasks writes a handful of
        objects and looks at no others.
        """
        src = self.repo.repo
        dst = self._open().odb
        commit = src[new]
        assert isinstance(commit, pygit2.Commit)
        if commit.id in dst:
            return
        parents = commit.parent_ids
        if len(parents) != 1 or parents[0] not in dst:
            self._copy_closure(new)
            return
        base = src[parents[0]]
        assert isinstance(base, pygit2.Commit)
        tree = commit.tree
        folders: set[str] = {""}
        changed = (
            self.repo.changed_blobs(base.tree, tree) if paths is None else self.repo.changes_at(base.tree, tree, paths)
        )
        for path, (_, blob_id) in changed.items():
            parts = path.split("/")
            folders.update("/".join(parts[:k]) for k in range(1, len(parts)))
            if blob_id is not None and pygit2.Oid(hex=blob_id) not in dst:
                blob = src[blob_id]
                dst.write(blob.type, blob.read_raw())
        for folder in sorted(folders, key=lambda f: -f.count("/") - (f != "")):
            try:
                obj = tree if folder == "" else tree[folder]
            except KeyError:
                continue  # a folder the commit emptied and removed
            if obj.id not in dst:
                dst.write(ObjectType.TREE, src[obj.id].read_raw())
        dst.write(ObjectType.COMMIT, commit.read_raw())

    def _copy_closure(self, new: str) -> None:
        src = self.repo.repo.odb
        dst = self._open().odb
        todo = [pygit2.Oid(hex=new)]
        seen: set[pygit2.Oid] = set()
        while todo:
            oid = todo.pop()
            if oid in seen or oid in dst:
                continue
            seen.add(oid)
            typ, data = src.read(oid)
            obj = self.repo.repo[oid]
            if typ == ObjectType.COMMIT:
                assert isinstance(obj, pygit2.Commit)
                todo.append(obj.tree_id)
                todo.extend(obj.parent_ids)
            elif typ == ObjectType.TREE:
                assert isinstance(obj, pygit2.Tree)
                todo.extend(e.id for e in obj)
            dst.write(typ, data)

    def push(self, new: str, expected: str | None, paths: Iterable[str] | None = None) -> None:
        remote = self._open()
        try:
            self._copy_objects(new, paths)
        except (pygit2.GitError, OSError) as e:
            raise RemoteUnreachable(
                f"cannot write objects into {self.path}: {_git_error_text(e)}", remote=self.remote
            ) from None
        try:
            with remote.transaction() as txn:
                txn.lock_ref(self.remote_ref)
                ref = remote.references.get(self.remote_ref)
                current = None if ref is None else str(ref.target)
                if current != expected:
                    raise BranchMoved(current)
                txn.set_target(self.remote_ref, pygit2.Oid(hex=new), message="gitclaim: push")
        except pygit2.GitError as e:
            if "lock" in str(e):
                # Another writer holds the ref's lock right now: the branch is moving.
                raise BranchMoved(None) from None
            raise RemoteUnreachable(
                f"cannot update {self.remote_ref} in {self.path}: {_git_error_text(e)}", remote=self.remote
            ) from None
        self.repo.set_ref(self.tracking_ref, new, "gitclaim: push")


_RACE_WORDS = ("fetch first", "non-fast-forward", "non-fastforward", "failed to lock", "cannot lock",
               "stale info", "failed to update ref", "but expected", "is at ")  # fmt: skip


class _NoMoreCredentials(Exception):
    """Every credential we have was offered and refused (or there was none)."""


def _key_options(username: str | None, configured: Iterable[str] = ()) -> list[Any]:
    """ssh keys to offer, in order: the ssh agent if SSH_AUTH_SOCK is set, then
    the key file named by GITCLAIM_SSH_KEY, or else the IdentityFile lines of
    ~/.ssh/config for this host, or else ~/.ssh/id_ed25519 and ~/.ssh/id_rsa
    (as ssh does: the default keys only when the config names none)."""
    out: list[Any] = []
    user = username or "git"
    if os.environ.get("SSH_AUTH_SOCK"):
        out.append(pygit2.KeypairFromAgent(user))
    named = os.environ.get("GITCLAIM_SSH_KEY")
    ssh_dir = Path(os.path.expanduser("~")) / ".ssh"
    from_config = [Path(k) for k in configured]
    if named:
        keys = [Path(named).expanduser()]
    elif from_config:
        keys = from_config
    else:
        keys = [ssh_dir / "id_ed25519", ssh_dir / "id_rsa"]
    for key in keys:
        if key.is_file():
            pub = Path(f"{key}.pub")
            out.append(pygit2.Keypair(user, str(pub) if pub.is_file() else None, str(key), ""))
    return out


def _local_user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "")


def _io_timeout() -> float:
    return _env_ms("GITCLAIM_IO_TIMEOUT_MS", IO_TIMEOUT_MS) / 1000


class _NetCallbacks(pygit2.RemoteCallbacks):
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
        self, config: Callable[[], list[tuple[str, str]]] | None = None, ssh_keys: tuple[str, ...] = ()
    ) -> None:
        super().__init__()
        self.ssh_keys = ssh_keys
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
            raise _NoMoreCredentials()
        if self._options is None:
            if allowed_types & CredentialType.SSH_KEY:
                self._options = _key_options(username_from_url, self.ssh_keys)
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
        raise _NoMoreCredentials()

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
        self._session = gitcred.Session(helpers, request, _io_timeout(), self.problems)
        return self._session.fill()

    def succeeded(self) -> None:
        """The operation went through: a helper's credential was good, so let the helpers keep it."""
        if self._pending is not None and self._session is not None:
            self._session.tell(self._pending, "store")
            self._pending = None


_AUTH_PHRASES = ("failed to authenticate ssh session", "status code: 401", "authentication replays",
                 "authentication required")  # fmt: skip


def _network_error(cb: _NetCallbacks, e: BaseException, what: str, remote: str, url: str) -> RemoteUnreachable:
    """One of five distinct failures: the ssh host key, the TLS certificate,
    the credentials, access refused to known credentials, or the host itself."""
    text = _git_error_text(e)
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
        or isinstance(e, _NoMoreCredentials)
        # libgit2's own words for a refused login (not bare numbers or words a host name may hold)
        or any(w in lowered for w in _AUTH_PHRASES)
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


class _PushCallbacks(_NetCallbacks):
    def __init__(
        self,
        dst_ref: str,
        expected: str | None,
        *,
        check_old: bool = True,
        config: Callable[[], list[tuple[str, str]]] | None = None,
        ssh_keys: tuple[str, ...] = (),
    ) -> None:
        super().__init__(config, ssh_keys)
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


_TRUSTED: set[str] = set()


def _trust_ca_bundle(url: str, config: list[tuple[str, str]]) -> None:
    """Trust private CAs for https, in addition to the system's: every file named
    by GITCLAIM_CA_BUNDLE, GIT_SSL_CAINFO or git's ``http.sslCAInfo``
    (``http.<url>.sslCAInfo`` first), and every folder of hashed certificates
    named by GIT_SSL_CAPATH or ``http.sslCAPath``.

    git lets the environment override the config; gitclaim adds them all up,
    since trusting one more CA someone configured on purpose cannot break a
    connection that would otherwise work. Raises BadInput if a named bundle
    does not exist or holds no certificate, rather than failing later with a
    vaguer certificate error.
    """
    from . import credentials as gitcred

    named = [
        (os.environ.get("GITCLAIM_CA_BUNDLE"), False),
        (os.environ.get("GIT_SSL_CAINFO"), False),
        (gitcred.http_setting(url, config, "sslCAInfo"), False),
        (os.environ.get("GIT_SSL_CAPATH"), True),
        (gitcred.http_setting(url, config, "sslCAPath"), True),
    ]
    for raw, is_dir in named:
        if not raw:
            continue
        path = os.path.expanduser(raw)
        if path in _TRUSTED:
            continue
        if not (os.path.isdir(path) if is_dir else os.path.isfile(path)):
            raise BadInput(
                f"the CA {'folder' if is_dir else 'bundle'} {path} does not exist",
                hint="point GITCLAIM_CA_BUNDLE (or git's http.sslCAInfo) at a PEM file with the CA's certificate",
                path=path,
            )
        try:
            if is_dir:
                pygit2.settings.set_ssl_cert_locations(None, path)
            else:
                pygit2.settings.set_ssl_cert_locations(path, None)
        except pygit2.GitError as e:
            raise BadInput(
                f"cannot load the CA certificates in {path}: {_git_error_text(e)}",
                hint="the file must hold PEM certificates (-----BEGIN CERTIFICATE-----)",
                path=path,
            ) from None
        _TRUSTED.add(path)


class NetworkTransport(Transport):
    """git://, ssh:// or http(s):// remotes: the server's receive-pack does the swap."""

    def __init__(self, repo: Repo, remote: str, branch: str, url: str) -> None:
        super().__init__(repo, remote, branch)
        self.url = url
        pygit2.option(Option.SET_SERVER_CONNECT_TIMEOUT, _env_ms("GITCLAIM_CONNECT_TIMEOUT_MS", CONNECT_TIMEOUT_MS))
        pygit2.option(Option.SET_SERVER_TIMEOUT, _env_ms("GITCLAIM_IO_TIMEOUT_MS", IO_TIMEOUT_MS))
        # Where to connect: the URL, unless ~/.ssh/config says an ssh host alias is elsewhere.
        self.connect_url = url
        self.ssh_keys: tuple[str, ...] = ()
        from . import sshconfig  # network remotes only: keeps local commands' start-up short

        entries = sshconfig.load() if sshconfig.split_ssh_url(url) is not None else []  # read it for ssh only
        target = sshconfig.resolve(url, entries, home=os.path.expanduser("~"), local_user=_local_user())
        if target is not None:
            self.ssh_keys = target.identity_files
            if target.moved:
                self.connect_url = target.url()
        self._tls_ready = urlparse(url).scheme.lower() != "https"

    def _git_remote(self) -> pygit2.Remote:
        if not self._tls_ready:
            # On first use, not when built: --offline must work whatever the CA settings.
            _trust_ca_bundle(self.url, self.repo.config_entries())
            self._tls_ready = True
        if self.connect_url == self.url:
            return self.repo.repo.remotes[self.remote]
        return self.repo.repo.remotes.create_anonymous(self.connect_url)

    def _ssh_keys(self) -> tuple[str, ...]:
        return self.ssh_keys

    def _shown_url(self) -> str:
        shown = (
            self.url if self.connect_url == self.url else f"{self.url}, which ~/.ssh/config makes {self.connect_url}"
        )
        return scrub(shown)

    def fetch(self) -> str | None:
        self._libgit2_fetch()
        return self.repo.ref(self.tracking_ref)

    def push_alive(self, agent: str, commit: str) -> None:
        tmp = self._push_ref(commit)
        git = self.repo.repo
        cb = _PushCallbacks(
            ALIVE_PREFIX + agent, None, check_old=False, config=self.repo.config_entries, ssh_keys=self.ssh_keys
        )
        try:
            self._git_remote().push([f"+{tmp}:{ALIVE_PREFIX}{agent}"], callbacks=cb)
        except OSError as e:
            raise LocalIOError(f"cannot push the heartbeat of {agent}: {_git_error_text(e)}", path=git.path) from None
        except (pygit2.GitError, _NoMoreCredentials) as e:
            raise _network_error(
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
            raise PushRejected(
                scrub(f"the remote refused the heartbeat of {agent}: {cb.refused}"), reason=scrub(cb.refused)
            )

    def _push_ref(self, commit: str) -> str:
        """libgit2 pushes from a ref, so give the commit a private, unique one."""
        tmp = f"refs/gitclaim/push/{uuid.uuid4().hex}"
        try:
            self.repo.repo.references.create(tmp, commit, force=True)
        except (pygit2.GitError, OSError) as e:
            raise LocalIOError(
                f"cannot write a ref into this clone ({self.repo.repo.path}): {_git_error_text(e)}; nothing was pushed",
                path=self.repo.repo.path,
            ) from None
        return tmp

    def fetch_alive(self) -> dict[str, datetime]:
        local = f"refs/gitclaim/seen/{self.remote}/"
        self._libgit2_fetch(f"+{ALIVE_PREFIX}*:{local}*")
        return {agent: self.repo.commit_time(oid) for agent, oid in self.repo.refs_under(local).items()}

    def push(self, new: str, expected: str | None, paths: Iterable[str] | None = None) -> None:
        tmp = self._push_ref(new)
        git = self.repo.repo
        cb = _PushCallbacks(self.remote_ref, expected, config=self.repo.config_entries, ssh_keys=self.ssh_keys)
        try:
            self._git_remote().push([f"{tmp}:{self.remote_ref}"], callbacks=cb)
        except BranchMoved:
            cb.succeeded()  # the server answered: whatever credential it took was good
            raise
        except (pygit2.GitError, OSError, _NoMoreCredentials) as e:
            text = _git_error_text(e)
            if cb.accepted and cb.refused is None and self.repo.names_own_files(e):
                # The server took the push; only updating this clone's copy of the
                # ref failed (a lock, a full disk). That copy is a cache: the push landed.
                self.repo.set_ref(self.tracking_ref, new, "gitclaim: push")
                return
            if isinstance(e, OSError):
                raise LocalIOError(
                    f"cannot push {self.branch} from this clone: {text}; the remote did not take it",
                    path=self.repo.repo.path,
                ) from None
            if cb.moved or "non-fastforward" in text or "not present locally" in text:
                raise BranchMoved(cb.moved_to) from None
            raise _network_error(
                cb, e, f"cannot push {self.branch} to {self.remote} ({self._shown_url()})", self.remote, self.url
            ) from None
        finally:
            with contextlib.suppress(KeyError, pygit2.GitError, OSError):
                git.references.delete(tmp)
        cb.succeeded()
        if cb.moved:
            raise BranchMoved(cb.moved_to)
        if cb.refused is not None:
            if any(w in cb.refused for w in _RACE_WORDS):
                raise BranchMoved(None)
            said = scrub("".join(cb.sideband).strip())
            raise PushRejected(
                scrub(f"the remote refused the push of {self.branch}: {cb.refused}") + (f"\n{said}" if said else ""),
                remote=self.remote,
                reason=scrub(cb.refused),
                server_output=said,
            )
        self.repo.set_ref(self.tracking_ref, new, "gitclaim: push")


def require(tip: str | None, remote: str, branch: str) -> str:
    if tip is None:
        raise NotInitialized(
            f"the remote {remote!r} has no store branch {branch!r}",
            remote=remote,
            branch=branch,
        )
    return tip
