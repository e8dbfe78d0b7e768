"""Repo.changed_blobs walks only into folders whose ids differ; it must say exactly
what libgit2's whole-tree diff says (which costs what the whole store holds)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pygit2

from gitclaim.git.repo import Repo

ZERO = b"\0" * 20


def libgit2_diff(a: pygit2.Tree, b: pygit2.Tree) -> dict[str, tuple[str | None, str | None]]:
    out: dict[str, list[str | None]] = {}
    for d in a.diff_to_tree(b).deltas:
        seen = out.setdefault(d.new_file.path or d.old_file.path, [None, None])
        seen[0] = seen[0] or (None if d.old_file.id.raw == ZERO else str(d.old_file.id))
        seen[1] = seen[1] or (None if d.new_file.id.raw == ZERO else str(d.new_file.id))
    return {k: (v[0], v[1]) for k, v in out.items()}


def test_changed_blobs_says_what_libgit2_says_on_random_stores(tmp_path: Path) -> None:
    pygit2.init_repository(str(tmp_path / "r.git"), bare=True)
    repo = Repo(tmp_path / "r.git")
    rng = random.Random(12)
    for _ in range(300):
        files = {
            f"tasks/{rng.randrange(20):02x}/t{rng.randrange(60)}.toml": os.urandom(4)
            for _ in range(rng.randrange(1, 40))
        }
        files["gitclaim.toml"] = b"store"
        after = dict(files)
        for path in rng.sample(sorted(files), k=min(len(files), rng.randrange(0, 5))):
            if rng.random() < 0.5:
                del after[path]
            else:
                after[path] = os.urandom(4)
        after |= {
            f"tasks/{rng.randrange(24):02x}/n{rng.randrange(60)}.toml": b"new" for _ in range(rng.randrange(0, 4))
        }
        if rng.random() < 0.1:  # a file becomes a folder
            after.pop("gitclaim.toml", None)
            after["gitclaim.toml/inside"] = b"now a folder"
        a, b = (repo.repo[repo._write_tree(None, f)] for f in (files, after))
        assert isinstance(a, pygit2.Tree) and isinstance(b, pygit2.Tree)
        assert repo.changed_blobs(a, b) == libgit2_diff(a, b)
        assert repo.changed_blobs(None, b) == {
            p: (None, ids[1]) for p, ids in libgit2_diff(repo.repo[repo._write_tree(None, {})], b).items()
        }  # type: ignore[arg-type]
