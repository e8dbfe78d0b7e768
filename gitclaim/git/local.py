"""Compare-and-swap on a remote that is a bare repository on this machine."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pygit2
from pygit2.enums import ObjectType, RepositoryOpenFlag

from ..errors import (
    PushRejected,
    RemoteUnreachable,
    StoreLocked,
)
from .failures import error_text
from .transport import ALIVE_PREFIX, STALE_LOCK_SECONDS, BranchMoved, Transport
from .upkeep import pack_when_due

if TYPE_CHECKING:
    from .repo import Repo


def _config(repo: pygit2.Repository, key: str) -> str | None:
    try:
        return str(repo.config[key])
    except (KeyError, pygit2.GitError):
        return None


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

    def _peek(self) -> str | None:
        try:
            return self._remote_tip()
        except pygit2.GitError as e:
            raise RemoteUnreachable(
                f"cannot read {self.remote_ref} in {self.path}: {error_text(e)}", remote=self.remote
            ) from None

    def _fetch_tip(self) -> str | None:
        tip = self._remote_tip()
        if tip is None:
            self.repo.set_ref(self.tracking_ref, None, "gitclaim: branch absent")
            return None
        if not self.repo.has(tip):
            fetched = self._fetch_branch()
            if not self.repo.has(tip):  # moved again meanwhile; objects of the newer tip are here
                tip = fetched or tip
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
            raise RemoteUnreachable(f"cannot write {ref} in {self.path}: {error_text(e)}", remote=self.remote) from None

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

    def replace(self, new: str, expected: str, archive: str) -> None:
        remote = self._open()
        try:
            self._copy_objects(new)
            with remote.transaction() as txn:
                txn.lock_ref(self.remote_ref)
                txn.lock_ref(archive)
                ref = remote.references.get(self.remote_ref)
                current = None if ref is None else str(ref.target)
                if current != expected:
                    raise BranchMoved(current)
                if remote.references.get(archive) is not None:
                    raise PushRejected(f"{archive} exists on {self.remote} already; archive refs are never moved")
                txn.set_target(archive, pygit2.Oid(hex=expected), message="gitclaim: archive")
                txn.set_target(self.remote_ref, pygit2.Oid(hex=new), message="gitclaim: compact")
        except pygit2.GitError as e:
            if "lock" in str(e):
                raise BranchMoved(None) from None
            raise RemoteUnreachable(
                f"cannot update {self.remote_ref} in {self.path}: {error_text(e)}", remote=self.remote
            ) from None
        except OSError as e:
            raise RemoteUnreachable(
                f"cannot write objects into {self.path}: {error_text(e)}", remote=self.remote
            ) from None
        self._pushed(new)

    def push(self, new: str, expected: str | None, paths: Iterable[str] | None = None) -> None:
        remote = self._open()
        try:
            self._copy_objects(new, paths)
        except (pygit2.GitError, OSError) as e:
            raise RemoteUnreachable(
                f"cannot write objects into {self.path}: {error_text(e)}", remote=self.remote
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
                # Another writer holds the ref's lock right now (the branch is moving),
                # or a killed one left it behind: its age tells which.
                lock = Path(self.path) / f"{self.remote_ref}.lock"
                try:
                    age = time.time() - lock.stat().st_mtime
                except OSError:
                    raise BranchMoved(None) from None  # another lock, or this one already gone: contention
                if age > STALE_LOCK_SECONDS:
                    raise StoreLocked.naming(str(lock), self.branch) from None
                raise BranchMoved(None, lock=str(lock)) from None
            raise RemoteUnreachable(
                f"cannot update {self.remote_ref} in {self.path}: {error_text(e)}", remote=self.remote
            ) from None
        self._pushed(new)
        pack_when_due(self.path, lambda key: _config(remote, key))  # as receive-pack's auto-gc would
