"""The read index: what ``ready``, ``list`` and ``board`` need of every task,
derived from one commit of the store branch.

It lives in the clone's git folder (``gitclaim/index/``), outside the branch,
and is never trusted over it:

* it names the commit it was built from, each fan-out folder the tree id it
  was read from, each task the blob id of its file: a read compares those ids
  with the tip's and uses only what is equal (content hashes: equal ids, equal
  files);
* it is brought up to date by that comparison, the diff of the two trees: a
  folder whose tree id did not change is kept whole, and in one that did only
  the files whose blob id changed are parsed again. A claim costs one folder
  listing and one file, not a re-read of 100,000 tasks;
* it is written atomically (a temporary file renamed over the old one) and
  carries a checksum of its content and its format version: a torn, damaged
  or foreign file fails the check and is rebuilt from the branch. Deleting it
  is always safe.

Each task keeps its JSON text (``Task.to_json`` as the CLI prints it), so a
listing's JSON is spliced, not rebuilt; ``show`` and the Python API still read
the task files.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import sys
import zlib
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING: a warm read imports neither typing nor dataclasses
if TYPE_CHECKING:
    from typing import Final

    from .git import Repo, Tree
    from .model import Task

FORMAT = f"gitclaim-read-index 4 py{sys.version_info.major}{sys.version_info.minor}\n".encode()
NO_TIME = -(1 << 62)  # the sort key of a task without created_at: first, as datetime.min

# One task: id, blob id, state, priority, created (POSIX seconds or NO_TIME),
# holder (or None), tags, depends_on, title, JSON text (UTF-8: loaded and printed without decoding),
# parent (or None).
Row = tuple[str, str, str, int, int, "str | None", tuple[str, ...], tuple[str, ...], str, bytes, "str | None"]
# One file that could not be read: name, blob id, path, message, code.
Bad = tuple[str, str, str, str, str]
ID: Final = 0
BLOB: Final = 1
STATE: Final = 2
HOLDER: Final = 5
DEPENDS: Final = 7
TITLE: Final = 8
JSON: Final = 9


class Index:
    __slots__ = ("archive_tree", "archived", "commit", "config_blob", "folders")

    def __init__(
        self,
        commit: str,
        config_blob: str,
        folders: dict[str, tuple[str, list[Row], list[Bad]]] | None = None,
        archive_tree: str = "",
        archived: dict[str, str] | None = None,
    ) -> None:
        self.commit = commit
        self.config_blob = config_blob
        # folder name -> (its tree id, its tasks, its unreadable files), in tree order
        self.folders = {} if folders is None else folders
        self.archive_tree = archive_tree  # the tree id of archive/ ("" when there is none)
        # the ids live tasks depend on that are not live: their state in archive/ ("" when not there either)
        self.archived = {} if archived is None else archived

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Index) and self._key() == other._key()

    def _key(self) -> tuple[object, ...]:
        return (self.commit, self.config_blob, self.folders, self.archive_tree, self.archived)

    def archived_done(self) -> frozenset[str]:
        """The archived done tasks that live tasks depend on: those dependencies are met."""
        return frozenset(d for d, state in self.archived.items() if state == "done")

    def __repr__(self) -> str:
        return f"Index({self.commit[:10]}, {sum(len(f[1]) for f in self.folders.values())} tasks)"

    def rows(self) -> list[Row]:
        return [r for _, rows, _ in self.folders.values() for r in rows]

    def problems(self) -> list[tuple[str, str, str]]:
        """(path, message, code) of every file skipped, in tree order."""
        return [(b[2], b[3], b[4]) for _, _, bad in self.folders.values() for b in bad]


def index_path(common_dir: Path, remote: str, branch: str) -> Path:
    name = f"{remote}\0{branch}".encode().hex()  # one file per remote and branch, no two alike
    return common_dir / "gitclaim" / "index" / name


def _read(path: Path) -> object | None:
    """What :func:`_write` stored at ``path``, or None when it is missing, torn, damaged or of another format."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head = len(FORMAT)
    check, payload = data[head : head + 16], data[head + 16 :]
    if data[:head] != FORMAT or _check(payload) != check:
        return None
    try:
        value: object = marshal.loads(payload)
    except Exception:  # a checksum that matches a payload we cannot read: a foreign writer
        return None
    return value


def _check(payload: bytes) -> bytes:
    """Length and CRC-32 of the payload: a torn or damaged file fails it (the index
    guards against accidents; whoever can write the git folder can move refs anyway)."""
    return len(payload).to_bytes(8, "big") + zlib.crc32(payload).to_bytes(8, "big")


def _write(path: Path, value: tuple[object, ...]) -> bool:
    """Store ``value`` atomically; False (and nothing changed) when the disk refuses."""
    import tempfile

    payload = marshal.dumps(value)  # type: ignore[arg-type]  # tuples of str, int, bytes, lists, dicts
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(FORMAT + _check(payload) + payload)
        os.replace(tmp, path)
        return True
    except OSError:  # a read-only or full disk must not fail a read: the index is optional
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return False


def load(path: Path) -> Index | None:
    """The index stored at ``path``, or None when it is missing or damaged."""
    value = _read(path)
    if not (isinstance(value, tuple) and len(value) == 5):
        return None
    commit, config_blob, folders, archive_tree, archived = value
    if not (isinstance(commit, str) and isinstance(config_blob, str) and isinstance(folders, dict)):
        return None
    if not (isinstance(archive_tree, str) and isinstance(archived, dict)):
        return None
    return Index(commit, config_blob, folders, archive_tree, archived)


def save(path: Path, index: Index) -> bool:
    return _write(path, (index.commit, index.config_blob, index.folders, index.archive_tree, index.archived))


# Answers derived from the index at one commit, kept beside it under the same
# key: `ready`'s rows (what agents ask most), and the exact output of the
# commonest listings. A warm read of one then loads what it prints, not every row.


def load_answer(path: Path, key: str, commit: str) -> object | None:
    """What :func:`save_answer` stored under ``key`` for ``commit``, or None."""
    value = _read(path.with_name(f"{path.name}.{key}"))
    if not (isinstance(value, tuple) and len(value) == 2 and value[0] == commit):
        return None
    answer: object = value[1]
    return answer


def save_answer(path: Path, key: str, commit: str, answer: object) -> bool:
    return _write(path.with_name(f"{path.name}.{key}"), (commit, answer))


def current(repo: Repo, remote: str, branch: str, commit: str, previous: Index | None = None) -> Index:
    """The index of ``commit``: ``previous`` or the stored one if it is of that
    commit, else brought up to date from it (or built) and stored."""
    path = index_path(repo.common_dir, remote, branch)
    if previous is None or previous.commit != commit:
        stored = load(path)
        previous = stored if stored is not None else previous
    if previous is not None and previous.commit == commit:
        return previous
    index, _ = refresh(repo, commit, previous)
    save(path, index)
    return index


# --- building it from the branch --------------------------------------------------------


def row(task: Task, blob: str) -> Row:
    import json

    created = NO_TIME if task.created_at is None else int(task.created_at.timestamp())
    text = json.dumps(task.to_json(), ensure_ascii=False).encode()
    return (task.id, blob, task.state.value, task.priority, created, task.holder, task.tags, task.depends_on,
            task.title, text, task.parent)  # fmt: skip


def refresh(repo: Repo, commit: str, previous: Index | None) -> tuple[Index, int]:
    """The index of ``commit``, reusing from ``previous`` every folder and file
    whose id did not change; and how many task files it parsed.

    Raises what reading the store raises (:class:`StoreCorrupt` for a branch
    that is not a store, :class:`SchemaTooNew`).
    """
    from .errors import StoreCorrupt
    from .ids import STORE_FILE, TASKS_DIR

    tree = repo.commit_tree(commit)
    top = {name: (oid, kind) for name, oid, kind in repo.entries(tree)}
    config = top.get(STORE_FILE)
    if config is None or config[1] != "blob":
        raise StoreCorrupt(
            f"the store branch has no {STORE_FILE} at {commit[:10]}: it is not a gitclaim store", commit=commit
        )
    if previous is None or previous.config_blob != config[0]:
        from .model import parse_store_config

        parse_store_config(repo.blob(config[0]), STORE_FILE)  # refuses a newer schema
    out = Index(commit, config[0])
    tasks = top.get(TASKS_DIR)
    tasks_tree = repo.tree(tasks[0]) if tasks is not None and tasks[1] == "tree" else None
    if tasks_tree is None:
        return out, 0
    parsed = _folders(repo, tasks_tree, out, previous)
    _archived(repo, top, out, previous)
    return out, parsed


def _folders(repo: Repo, tasks_tree: Tree, out: Index, previous: Index | None) -> int:
    old = previous.folders if previous is not None else {}
    parsed = 0
    for name, oid, kind in repo.entries(tasks_tree):
        if kind != "tree":
            continue  # a README or other file beside the fan-out folders
        kept = old.get(name)
        if kept is not None and kept[0] == oid:
            out.folders[name] = kept
            continue
        sub = repo.tree(oid)
        if sub is None:
            continue
        rows, bad, n = _folder(repo, name, sub, kept)
        out.folders[name] = (oid, rows, bad)
        parsed += n
    return parsed


def _archived(repo: Repo, top: dict[str, tuple[str, str]], out: Index, previous: Index | None) -> None:
    """The state in ``archive/`` of each dependency that is not a live task. A
    store without archive/ pays nothing; one with it, a pass over the live
    rows' dependencies and a lookup per archived dependency not known from
    ``previous`` (an archived file never changes: the hooks refuse it)."""
    from .ids import ARCHIVE_DIR, fanout

    found = top.get(ARCHIVE_DIR)
    if found is None or found[1] != "tree":
        return
    out.archive_tree = found[0]
    rows = out.rows()
    live = {r[ID] for r in rows}
    wanted = {d for r in rows if r[DEPENDS] for d in r[DEPENDS]} - live
    if not wanted:
        return
    known = previous.archived if previous is not None and previous.archive_tree == found[0] else {}
    tree = repo.tree(found[0])
    for dep in sorted(wanted):
        state = known.get(dep)
        if state is None:
            state = "" if tree is None else _archived_state(repo, tree, f"{fanout(dep)}/{dep}.toml", dep)
        out.archived[dep] = state


def _archived_state(repo: Repo, tree: Tree, path: str, dep: str) -> str:
    from .errors import SchemaTooNew, StoreCorrupt
    from .model import parse_task

    try:
        data = repo.read_path(tree, path)
        return "" if data is None else parse_task(data, expected_id=dep, path=path).state.value
    except (StoreCorrupt, SchemaTooNew):
        return ""


def _folder(
    repo: Repo, folder: str, sub: Tree, kept: tuple[str, list[Row], list[Bad]] | None
) -> tuple[list[Row], list[Bad], int]:
    """One fan-out folder: rows and bad files reused by blob id, the rest parsed."""
    from .errors import SchemaTooNew, StoreCorrupt
    from .ids import TASKS_DIR, fanout, task_path
    from .model import parse_task

    good: dict[tuple[str, str], Row] = {}
    known_bad: dict[tuple[str, str], Bad] = {}
    if kept is not None:
        good = {(r[BLOB], r[ID] + ".toml"): r for r in kept[1]}
        known_bad = {(b[1], b[0]): b for b in kept[2]}
    rows: list[Row] = []
    bad: list[Bad] = []
    parsed = 0
    for name, oid, kind in repo.entries(sub):
        if kind != "blob" or not name.endswith(".toml"):
            continue
        tid = name[: -len(".toml")]
        if (oid, name) in good:
            rows.append(good[oid, name])
            continue
        if (oid, name) in known_bad:
            bad.append(known_bad[oid, name])
            continue
        path = f"{TASKS_DIR}/{folder}/{name}"
        if fanout(tid) != folder:
            bad.append(
                (name, oid, path, f"{path}: misplaced; task {tid!r} belongs in {task_path(tid)}", "store_corrupt")
            )
            continue
        parsed += 1
        try:
            rows.append(row(parse_task(repo.blob(oid), expected_id=tid, path=path), oid))
        except (StoreCorrupt, SchemaTooNew) as e:
            bad.append((name, oid, path, e.message, e.code))
    return rows, bad, parsed
