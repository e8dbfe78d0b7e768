"""The embedded remote stays healthy: a bare repository on a local path is kept
packed as git's own auto-gc keeps one, without blocking a change or losing one."""

from __future__ import annotations

import hashlib
import subprocess
import time
from collections.abc import Callable

from gitclaim import Store

from .servers import Remote, git


def _loose_in_17(remote: Remote, n: int) -> None:
    """``n`` loose objects in objects/17, the folder git's auto-gc counts."""
    made, i = 0, 0
    while made < n:
        data = f"filler {i}\n".encode()
        i += 1
        if hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest().startswith("17"):
            subprocess.run(["git", "hash-object", "-w", "--stdin"], input=data, cwd=remote.path, check=True,
                           capture_output=True)  # fmt: skip
            made += 1


def _count(remote: Remote) -> dict[str, int]:
    out = git("count-objects", "-v", cwd=remote.path)
    return {k: int(v) for k, v in (line.split(": ") for line in out.splitlines()) if v.isdigit()}


def test_a_local_remote_past_gits_threshold_is_packed_while_agents_keep_working(
    path_remote: Remote, store_factory: Callable[..., Store]
) -> None:
    a = store_factory(path_remote, "agent-a")
    b = store_factory(path_remote, "agent-b")
    a.init()
    a.add_many([{"id": f"t{i}", "title": f"Task {i}"} for i in range(40)])
    for i in range(20):
        a.claim(f"t{i}")
    before = _count(path_remote)
    assert before["packs"] == 0 and before["count"] > 50
    _loose_in_17(path_remote, 30)  # past gc.auto's 6,700 as git estimates it (27 in objects/17)

    # the next changes start git gc --auto in the background; agents go on meanwhile
    done = [b.claim(f"t{i}") for i in range(20, 30)]
    assert all(r.changed for r in done)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (_count(path_remote)["packs"] == 0 or (path_remote.path / "gc.pid").exists()):
        b.heartbeat()
        time.sleep(0.2)
    after = _count(path_remote)
    assert after["packs"] >= 1, after
    assert after["count"] < before["count"], (before, after)  # the store's objects are in the pack now
    git("fsck", "--no-progress", cwd=path_remote.path)
    # nothing lost: every claim made before, during and after the gc is there
    held = {t.id: t.holder for t in a.list().tasks}
    assert all(held[f"t{i}"] == "agent-a" for i in range(20))
    assert all(held[f"t{i}"] == "agent-b" for i in range(20, 30))
    assert b.claim("t30").changed


def test_below_the_threshold_nothing_is_started(path_remote: Remote, store_factory: Callable[..., Store]) -> None:
    a = store_factory(path_remote, "agent-a")
    a.init()
    for i in range(10):
        a.add(f"T{i}", task_id=f"t{i}")
    assert _count(path_remote)["packs"] == 0 and not (path_remote.path / "gc.pid").exists()
