"""The store as it is at one commit: the store file and the tasks.

Reads one task by its path without touching the rest of the tree; reads all
tasks through the folder cache, parsing only folders whose tree changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property

from .cache import FolderCache
from .errors import NotClaimable, NotFound, SchemaTooNew, StoreCorrupt
from .git import Repo, Tree
from .ids import STORE_FILE, TASKS_DIR, archive_path, fanout, task_path
from .model import Problem, StoreConfig, Task, parse_store_config, parse_task


class Snapshot:
    def __init__(self, repo: Repo, commit: str, cache: FolderCache | None = None) -> None:
        self.repo = repo
        self.commit = commit
        self.cache = cache

    @cached_property
    def tree(self) -> Tree:
        return self.repo.commit_tree(self.commit)

    @cached_property
    def config(self) -> StoreConfig:
        data = self.repo.read_path(self.tree, STORE_FILE)
        if data is None:
            raise StoreCorrupt(
                f"the store branch has no {STORE_FILE} at {self.commit[:10]}: it is not a gitclaim store",
                commit=self.commit,
            )
        return parse_store_config(data, STORE_FILE)

    def task(self, task_id: str) -> Task | None:
        """The task, or None if there is no such file. Raises :class:`StoreCorrupt`."""
        path = task_path(task_id)
        data = self.repo.read_path(self.tree, path)
        if data is None:
            return None
        return parse_task(data, expected_id=task_id, path=path)

    def archived(self, task_id: str) -> Task | None:
        """The task ``gitclaim archive`` moved out of the live folder, or None."""
        path = archive_path(task_id)
        data = self.repo.read_path(self.tree, path)
        if data is None:
            return None
        return parse_task(data, expected_id=task_id, path=path)

    def find(self, task_id: str) -> Task | None:
        """The task, live or archived (``show``, dependencies, a new task's id)."""
        t = self.task(task_id)
        return t if t is not None else self.archived(task_id)

    def require(self, task_id: str) -> Task:
        """The live task; raises :class:`NotFound`, or :class:`NotClaimable` for an archived one."""
        t = self.task(task_id)
        if t is None:
            gone = self.archived(task_id)
            if gone is not None:
                raise NotClaimable(
                    f"{task_id} is archived ({gone.state.value}): it was finished and moved out of the live"
                    " store, and is neither claimed nor changed again; `gitclaim show` and `gitclaim log` still"
                    " read it, and a new task (another id) carries on its work",
                    task=task_id,
                    state=gone.state.value,
                    archived=True,
                )
            raise NotFound(f"no task {task_id!r} in the store", task=task_id)
        return t

    def tasks_by_id(self, ids: Iterable[str]) -> dict[str, Task | None]:
        """Tasks by id, live or archived: a dependency on an archived task reads it where it is."""
        return {i: self.find(i) for i in ids}

    def archived_deps(self, tasks: Sequence[Task]) -> dict[str, Task]:
        """The archived tasks that ``tasks`` depend on (those not among them), by id."""
        live = {t.id for t in tasks}
        out: dict[str, Task] = {}
        for dep in {d for t in tasks for d in t.depends_on} - live:
            try:
                found = self.archived(dep)
            except (StoreCorrupt, SchemaTooNew):
                found = None
            if found is not None:
                out[dep] = found
        return out

    def scan(self) -> tuple[list[Task], list[Problem]]:
        """Every task on the branch, and the files that could not be read."""
        self.config  # noqa: B018 - refuse a missing or newer store file first
        tasks_tree = self.repo.subtree(self.tree, TASKS_DIR)
        if tasks_tree is None:
            return [], []
        tasks: list[Task] = []
        problems: list[Problem] = []
        keep: set[str] = set()
        for folder, tree_id, sub in self.repo.folders(tasks_tree):
            if sub is None:
                continue  # a README or other file beside the fan-out folders
            keep.add(tree_id)
            cached = self.cache.get(tree_id) if self.cache is not None else None
            if cached is None:
                cached = self._parse_folder(folder, sub)
                if self.cache is not None:
                    self.cache.put(tree_id, cached)
            tasks.extend(cached[0])
            problems.extend(cached[1])
        if self.cache is not None:
            self.cache.prune(keep)
        return tasks, problems

    def _parse_folder(self, folder: str, sub: Tree) -> tuple[list[Task], list[Problem]]:
        tasks: list[Task] = []
        problems: list[Problem] = []
        for name, data in self.repo.blobs(sub):
            path = f"{TASKS_DIR}/{folder}/{name}"
            if not name.endswith(".toml"):
                continue
            tid = name[: -len(".toml")]
            if fanout(tid) != folder:
                problems.append(
                    Problem(path, f"{path}: misplaced; task {tid!r} belongs in {task_path(tid)}", "store_corrupt")
                )
                continue
            try:
                tasks.append(parse_task(data, expected_id=tid, path=path))
            except (StoreCorrupt, SchemaTooNew) as e:
                problems.append(Problem(path, e.message, e.code))
        return tasks, problems
