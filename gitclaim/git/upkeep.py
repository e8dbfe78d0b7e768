"""Keeping a bare repository on this machine packed, as git's own auto-gc would.

Every change is one commit of a few new objects, and a push through the
local-path transport writes them loose: after 2,000 claim/done cycles the
embedded remote held 29,427 loose objects (130 MiB) against 3 MiB packed.
git itself runs ``gc --auto`` after a receive-pack; this is the same, for a
push that bypasses receive-pack. It never blocks a change (git detaches,
and gitclaim does not wait) and never races a writer into a lost update:
``git gc`` takes its own lock (``gc.pid``), moves refs only under their
locks, and prunes only loose objects older than ``gc.pruneExpire`` (two
weeks), never the fresh ones a concurrent push is about to name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

GC_AUTO = 6700  # git's default for gc.auto


def pack_when_due(path: Path, config_get: Callable[[str], object]) -> bool:
    """Start ``git gc --auto`` in the bare repository at ``path``, detached, once
    its loose objects pass git's own threshold (``gc.auto``, estimated as git
    does from the one folder ``objects/17``). Returns whether it started one."""
    try:
        limit = int(str(config_get("gc.auto") or GC_AUTO))
    except ValueError:
        limit = GC_AUTO
    if limit <= 0:
        return False  # the operator turned auto-gc off
    try:
        loose = len(os.listdir(path / "objects" / "17"))
    except OSError:
        return False
    if loose <= (limit + 255) // 256:
        return False
    if (path / "gc.pid").exists() or (path / "gc.log").exists():
        return False  # one is running, or the last one left a warning git wants read first
    git = shutil.which("git")
    if git is None:
        return False  # a machine without git: packing waits for an operator's git gc
    try:
        subprocess.Popen(
            [git, "-C", str(path), "gc", "--auto", "--quiet"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except OSError:
        return False
    return True
