"""The store as it is at one commit: the store file and the tasks.

Reads one task by its path without touching the rest of the tree; reads all
tasks through the folder cache, parsing only folders whose tree changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property

from .cache import FolderCache
from .errors import NotFound, SchemaTooNew, StoreCorrupt
from .git import Repo, Tree
from .ids import STORE_FILE, TASKS_DIR, fanout, task_path
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

    def require(self, task_id: str) -> Task:
        t = self.task(task_id)
        if t is None:
            raise NotFound(f"no task {task_id!r} in the store", task=task_id)
        return t

    def tasks_by_id(self, ids: Iterable[str]) -> dict[str, Task | None]:
        return {i: self.task(i) for i in ids}

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
