"""A cache of parsed tasks, keyed by the id of a fan-out folder's tree.

Parsing TOML is what makes reading many tasks slow; a folder whose tree id
did not change holds exactly the same tasks, so its parsed form can be reused.
The cache lives in the clone's git folder (``gitclaim/cache``), outside the
store branch. It is never trusted over the branch: a key is a content hash,
a missing or unreadable entry is rebuilt, and deleting the folder is always
safe.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Any

# The pickle format depends on our classes and Python; a change of either must miss.
_VERSION = f"v1-py{sys.version_info.major}{sys.version_info.minor}"
_PRUNE_ABOVE = 4096


class FolderCache:
    def __init__(self, git_dir: Path) -> None:
        self.root = git_dir / "gitclaim" / "cache" / _VERSION
        self._writable = True
        # A long-lived Store (an agent's loop, the MCP server) keeps what it
        # read: the next scan after a claim re-reads one folder, not 256.
        self._memory: dict[str, Any] = {}

    def get(self, tree_id: str) -> Any | None:
        hit = self._memory.get(tree_id)
        if hit is not None:
            return hit
        try:
            with open(self.root / tree_id, "rb") as f:
                value = pickle.load(f)
                self._memory[tree_id] = value
                return value
        except FileNotFoundError:
            return None
        except Exception:  # a torn or foreign file: rebuild it
            return None

    def put(self, tree_id: str, value: Any) -> None:
        self._memory[tree_id] = value
        if not self._writable:
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self.root / tree_id)
        except OSError:
            # A read-only or full disk must not fail a read: the cache is optional.
            self._writable = False

    def prune(self, keep: set[str]) -> None:
        """Drop entries not in ``keep`` once the folder grows large."""
        if len(self._memory) > 2 * len(keep) + 64:
            self._memory = {k: v for k, v in self._memory.items() if k in keep}
        try:
            names = os.listdir(self.root)
        except OSError:
            return
        if len(names) <= _PRUNE_ABOVE:
            return
        for name in names:
            if name not in keep:
                with contextlib.suppress(OSError):
                    os.unlink(self.root / name)
