"""The clone: finding it, its config, reading objects and trees, writing one commit."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pygit2
from pygit2.enums import FileMode, RepositoryOpenFlag, SortMode

from ..errors import BadInput, LocalIOError, StoreCorrupt
from .failures import error_text
from .transport import local_path

if TYPE_CHECKING:
    from .transport import Transport


# How network remotes are reached (docs/remotes.md, "Transports", has the measurements).
TRANSPORTS = ("git", "libgit2")
DEFAULT_TRANSPORT = "libgit2"

Tree = pygit2.Tree  # what the layers above hold between calls into Repo, and never open


def init_repository(path: Path, *, bare: bool = False, origin: str | None = None) -> Path:
    """A new repository at ``path`` (a clone-to-be with ``origin`` as its remote)."""
    repo = pygit2.init_repository(str(path), bare=bare, initial_head="main")
    if origin is not None:
        repo.remotes.create("origin", origin)
    return path


@dataclass(frozen=True, slots=True)
class CommitInfo:
    id: str
    parents: tuple[str, ...]
    author: str
    author_email: str
    time: datetime
    message: str


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
        self.common_dir = Path(common_dir(self.repo.path))
        return self

    def __init__(self, path: str | os.PathLike[str] = ".") -> None:
        found = pygit2.discover_repository(str(path))
        if found is None:
            raise BadInput(
                f"{os.path.abspath(path)} is not inside a git repository",
                hint="run gitclaim inside a clone of the shared repository, or pass -C PATH",
                path=str(path),
            )
        try:
            self.repo = pygit2.Repository(found)
        except pygit2.GitError as e:
            if "not owned by current user" not in str(e):
                raise
            raise BadInput(
                f"{found} belongs to another user, and git opens a repository only for its owner",
                hint="run gitclaim as its owner (behind gitolite: the hosting user), or add it to safe.directory",
                path=str(path),
            ) from None
        # Linked worktrees share refs, objects and config with the main clone.
        self.common_dir = Path(common_dir(found))

    @property
    def git_dir(self) -> Path:
        return Path(self.repo.path)

    @property
    def top(self) -> Path:
        """The folder of the clone's work tree (the git folder of a bare repository)."""
        return Path(self.repo.workdir or self.repo.path)

    @property
    def is_bare(self) -> bool:
        return bool(self.repo.is_bare)

    # --- configuration -------------------------------------------------------

    def config_get(self, key: str) -> str | None:
        try:
            value = self.repo.config[key]
        except KeyError:
            return None
        if value is None:  # `[commit] gpgsign` with no `=`: git reads it as true (str() would say "None")
            return "true"
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
            raise LocalIOError(f"cannot write {key} into this clone's config: {error_text(e)}", key=key) from None

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

    def entries(self, tree: pygit2.Tree) -> list[tuple[str, str, str]]:
        """(name, id, "tree" or "blob" or ...) of each entry of ``tree``, reading nothing below it."""
        return [(str(e.name), str(e.id), str(e.type_str)) for e in tree]

    def tree(self, oid: str) -> pygit2.Tree | None:
        """The tree ``oid``, or None if it is missing or not a tree."""
        try:
            obj = self.repo[oid]
        except (KeyError, ValueError):
            return None
        return obj if isinstance(obj, pygit2.Tree) else None

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

        Walks only into folders whose tree ids differ, so a one-task change in
        a store of 100,000 tasks reads the root, ``tasks/`` and one fan-out
        folder. (libgit2's ``diff_to_tree`` costs what the whole store holds:
        measured 0.3 ms at 256 files, 100 ms at 102,400, for one changed file.)
        """
        out: dict[str, tuple[str | None, str | None]] = {}
        self._diff(old, new, "", out)
        return out

    def _diff(
        self, a: pygit2.Tree | None, b: pygit2.Tree | None, prefix: str, out: dict[str, tuple[str | None, str | None]]
    ) -> None:
        if a is not None and b is not None and a.id == b.id:
            return
        left = {str(e.name): e for e in a} if a is not None else {}
        right = {str(e.name): e for e in b} if b is not None else {}
        for name in sorted(left.keys() | right.keys()):
            x, y = left.get(name), right.get(name)
            if x is not None and y is not None and x.id == y.id:
                continue
            path = prefix + name
            x_sub, y_sub = self._tree(x), self._tree(y)
            x_tree, y_tree = x_sub is not None, y_sub is not None
            if x_tree or y_tree:
                self._diff(x_sub, y_sub, path + "/", out)
            x_blob = str(x.id) if x is not None and not x_tree else None
            y_blob = str(y.id) if y is not None and not y_tree else None
            if x_blob is not None or y_blob is not None:
                out[path] = (x_blob, y_blob)

    def _tree(self, entry: pygit2.Object | None) -> pygit2.Tree | None:
        """The folder a tree entry names, or None for a file (or no entry)."""
        if entry is None or entry.type_str != "tree":
            return None
        found = self.repo[entry.id]
        return found if isinstance(found, pygit2.Tree) else None

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

    def reopen(self) -> None:
        """Open the repository again: libgit2 reads a clone's shallow list once, when opened."""
        self.repo = pygit2.Repository(self.repo.path)

    def shallow_stamp(self) -> tuple[int, int, int] | None:
        """The shallow list's file as it stands (inode, size, mtime), None when there is none:
        another git process that rewrote it changed the stamp, and :meth:`reopen` is due."""
        try:
            st = (self.common_dir / "shallow").stat()
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def is_shallow(self) -> bool:
        """Whether this clone holds only part of some history (a depth-limited fetch)."""
        return bool(self.repo.is_shallow)

    def shallow_edge(self) -> frozenset[str]:
        """The commits whose parents a shallow clone lacks (git's ``shallow`` file):
        libgit2 shows them without parents, but they are no root."""
        try:
            text = (self.common_dir / "shallow").read_text()
        except OSError:
            return frozenset()
        return frozenset(line.strip() for line in text.splitlines() if line.strip())

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
        files: Mapping[str, bytes | None],
        message: str,
        author: str,
        email: str,
        when: datetime,
        sign: Callable[[bytes], str] | None = None,
        tree_of: str | None = None,
    ) -> str:
        """Write a commit on ``parent`` replacing ``files`` (None: removing one); rewrite only their trees.
        ``tree_of``: a parentless commit starts from that commit's tree (a compaction).

        ``sign`` turns the commit's bytes into an armoured signature (gitclaim.signing),
        which goes into a ``gpgsig`` header: the object is byte-identical to what
        ``git commit -S`` writes. Raises :class:`LocalIOError` if the clone cannot be
        written, and what ``sign`` raises.
        """
        repo = self.repo
        base = parent if parent is not None else tree_of
        tree = self._write_tree(self.commit_tree(base) if base is not None else None, files)
        sig = pygit2.Signature(author, email, int(when.timestamp()), 0)
        parents: list[str | pygit2.Oid] = [pygit2.Oid(hex=parent)] if parent is not None else []
        content, signature = "", None
        if sign is not None:  # outside the try: what the signer raises is its own to say
            content = str(repo.create_commit_string(sig, sig, message, tree, parents))  # text (the stub says Oid)
            # git keeps the armour's last newline out of the header; so must we to match git commit -S
            signature = sign(content.encode("utf-8")).rstrip("\n")
        try:
            if signature is None:
                return str(repo.create_commit(None, sig, sig, message, tree, parents))
            return str(repo.create_commit_with_signature(content, signature))
        except (OSError, pygit2.GitError) as e:  # pygit2 raises OSError when a write fails
            raise self._write_failed(e) from None

    def _write_failed(self, e: BaseException) -> LocalIOError:
        return LocalIOError(
            f"cannot write the commit into this clone ({self.repo.path}): {error_text(e)}; nothing was pushed",
            path=self.repo.path,
        )

    def _write_tree(self, base: pygit2.Tree | None, files: Mapping[str, bytes | None]) -> pygit2.Oid:
        """``base`` with ``files`` replaced (None: removed, and a folder left empty
        with it): only the trees on their paths are rewritten."""
        repo = self.repo
        nested: dict[str, Any] = {}
        for path, data in files.items():
            parts = path.split("/")
            node = nested
            for part in parts[:-1]:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise BadInput(f"{path} collides with a file on the store branch", path=path)
            node[parts[-1]] = data

        def build(tree: pygit2.Tree | None, changes: dict[str, Any], where: str) -> pygit2.Oid | None:
            tb = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
            for name, change in changes.items():
                if change is None:
                    if tb.get(name) is not None:
                        tb.remove(name)
                    continue
                if isinstance(change, bytes):
                    tb.insert(name, repo.create_blob(change), FileMode.BLOB)
                    continue
                sub: pygit2.Tree | None = None
                if tree is not None and name in tree:
                    found = repo[tree[name].id]
                    if not isinstance(found, pygit2.Tree):
                        raise StoreCorrupt(f"{where}{name} on the store branch is a file, not a folder")
                    sub = found
                built = build(sub, change, f"{where}{name}/")
                if built is not None:
                    tb.insert(name, built, FileMode.TREE)
                elif tb.get(name) is not None:
                    tb.remove(name)
            return tb.write() if len(tb) or not where else None

        try:
            root = build(base, nested, "")
            assert root is not None  # the root is written even when empty
            return root
        except (OSError, pygit2.GitError) as e:
            raise self._write_failed(e) from None

    def commit_signature(self, oid: str) -> tuple[str, bytes] | None:
        """The armoured signature of a commit and the bytes it signs (the commit without its
        ``gpgsig`` header), or None for an unsigned commit. Raises :class:`StoreCorrupt`."""
        try:
            c = self.repo[oid]
        except (KeyError, ValueError):
            raise StoreCorrupt(f"commit {oid} is missing from the local object store", commit=oid) from None
        if not isinstance(c, pygit2.Commit):
            raise StoreCorrupt(f"{oid} is not a commit", commit=oid)
        signature, payload = c.gpg_signature
        if signature is None or payload is None:
            return None
        return signature.decode("utf-8", "replace"), bytes(payload)

    def commit_info(self, oid: str) -> CommitInfo:
        c = self.repo[oid]
        assert isinstance(c, pygit2.Commit)
        return self._info(c)

    def walk(self, tip: str, limit: int | None = None) -> Iterator[CommitInfo]:
        """Commits reachable from ``tip`` through every parent, newest first
        (a commit before its parents; by time where branches interleave)."""
        walker = self.repo.walk(pygit2.Oid(hex=tip), SortMode.TOPOLOGICAL | SortMode.TIME)
        for n, c in enumerate(walker):
            if limit is not None and n >= limit:
                return
            yield self._info(c)

    def new_commits(self, old: str | None, new: str, limit: int) -> list[CommitInfo] | None:
        """The commits reachable from ``new`` and not from ``old``, parents first;
        None when there are more than ``limit``. Only ``old`` is hidden: hiding
        every ref would walk the whole history on each push."""
        walker = self.repo.walk(pygit2.Oid(hex=new), SortMode.TOPOLOGICAL)
        if old is not None:
            walker.hide(pygit2.Oid(hex=old))
        out: list[CommitInfo] = []
        for c in walker:
            if len(out) >= limit:
                return None
            out.append(self._info(c))
        out.reverse()
        return out

    def merge_base(self, a: str, b: str) -> str | None:
        base = self.repo.merge_base(pygit2.Oid(hex=a), pygit2.Oid(hex=b))
        return None if base is None else str(base)

    def _info(self, c: pygit2.Commit) -> CommitInfo:
        return CommitInfo(
            id=str(c.id),
            parents=tuple(str(p) for p in c.parent_ids),
            author=c.author.name,
            author_email=c.author.email,
            time=datetime.fromtimestamp(c.author.time, UTC),
            message=c.message,
        )

    # --- transports ----------------------------------------------------------

    def transport(self, remote: str, branch: str) -> Transport:
        """The transport for ``remote``: in place on a local path, else over the network."""
        from .local import LocalTransport
        from .network import NetworkTransport

        url = self.remote_url(remote)
        local = local_path(url)
        if local is not None:
            if not local.is_absolute():
                # git resolves a relative remote path from the top of the clone
                base = self.repo.workdir or self.repo.path
                local = (Path(base) / local).resolve()
            return LocalTransport(self, remote, branch, local)
        if self.transport_kind(remote) == "git":
            import shutil

            git = shutil.which("git")
            if git is not None:  # a machine without git keeps the in-process transport
                from .systemgit import SystemGitTransport

                return SystemGitTransport(self, remote, branch, url, git)
        return NetworkTransport(self, remote, branch, url)

    def transport_kind(self, remote: str) -> str:
        """``git`` or ``libgit2``: GITCLAIM_TRANSPORT, else ``remote.<name>.gitclaimTransport``, else
        ``gitclaim.transport`` (the clone's, else the user's global default), else DEFAULT_TRANSPORT.
        Raises BadInput."""
        for key in ("GITCLAIM_TRANSPORT", f"remote.{remote}.gitclaimTransport", "gitclaim.transport"):
            value = os.environ.get(key) if key.isupper() else self.config_get(key)
            if value == "" and key.isupper():
                value = None
            if value is None:
                continue
            if value.strip().lower() not in TRANSPORTS:
                raise BadInput(
                    f"{key} is {value!r}; it must be one of {', '.join(TRANSPORTS)}",
                    hint=f"set {key} to git (the system's git and ssh) or libgit2 (in-process)",
                    key=key,
                )
            return value.strip().lower()
        return DEFAULT_TRANSPORT


def common_dir(gitdir: str) -> str:
    p = Path(gitdir)
    try:
        rel = (p / "commondir").read_text().strip()
    except OSError:
        return str(p)
    return str((p / rel).resolve())
