"""Agents killed with SIGKILL at any point of an operation lose nothing.

An agent process can die anywhere: while it reads, after it wrote its
commit, in the middle of a push. Whatever the point, the shared store stays
valid (git fsck, and the validator over its whole history), no task is
claimed twice, and the same command run again converges.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gitclaim import Store
from gitclaim.errors import LocalIOError, NothingReady, StoreLocked

from .conftest import assert_store_sound
from .servers import Remote, clone
from .test_race import claims_in_history

pytestmark = pytest.mark.slow


def _spawn(clone_path: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gitclaim", "-C", str(clone_path), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own group: the kill reaches a hook it started too
    )


def _kill(p: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGKILL)
    p.wait(10)


def test_killed_after_writing_its_commit_before_pushing(remote: Remote, tmp_path: Path) -> None:
    """The clone's pre-push hook is a point between the commit and the push."""
    admin = Store(clone(remote, tmp_path / "admin"), agent="admin")
    admin.init()
    admin.add("t", task_id="t1")
    tip = remote.ref()
    agent = clone(remote, tmp_path / "agent")
    hooks = agent / ".git" / "hooks"
    hooks.mkdir(parents=True, exist_ok=True)
    reached = tmp_path / "reached"
    hook = hooks / "pre-push"
    hook.write_text(f"#!/bin/sh\ntouch {reached}\nsleep 60\n")
    hook.chmod(0o755)
    p = _spawn(agent, "claim", "t1", "--agent", "crashy")
    deadline = time.monotonic() + 60
    while not reached.exists():
        assert time.monotonic() < deadline, "the hook was never reached"
        assert p.poll() is None, "gitclaim exited before pushing"
        time.sleep(0.02)
    _kill(p)
    assert remote.ref() == tip  # nothing half-done on the remote
    hook.unlink()
    again = Store(agent, agent="crashy").claim("t1")  # the same command again
    assert again.changed and again.task.holder == "crashy"
    assert Counter(t for _, t, _ in claims_in_history(remote)) == {"t1": 1}
    assert_store_sound(remote, admin)


def test_agents_killed_at_random_points_lose_nothing(remote: Remote, tmp_path: Path) -> None:
    admin = Store(clone(remote, tmp_path / "admin"), agent="admin")
    admin.init()
    ids = [f"job-{i:02d}" for i in range(12)]
    admin.add_many([{"id": i, "title": i} for i in ids])
    clones = [clone(remote, tmp_path / f"a{i}") for i in range(3)]
    rng = random.Random(7)
    for round_ in range(8):
        procs = [_spawn(c, "next", "--agent", f"agent-{i}") for i, c in enumerate(clones)]
        time.sleep(rng.uniform(0.05, 0.6))  # anywhere: start-up, fetch, commit, push
        for p in procs:
            _kill(p)
        assert_store_sound(remote, admin)
        claims = Counter(t for _, t, _ in claims_in_history(remote))
        assert all(n == 1 for n in claims.values()), (round_, claims)
    # survivors finish the queue; nothing is claimed twice, everything once
    for i, c in enumerate(clones):
        s = Store(c, agent=f"agent-{i}")
        with contextlib.suppress(NothingReady):
            while True:
                try:
                    s.next()
                except (StoreLocked, LocalIOError) as e:
                    # A kill inside a lock (the shared repository's ref, or the agent's own
                    # clone's) leaves the lock behind, as it would for git: gitclaim names it,
                    # and an operator who knows no writer is running deletes it (docs/remotes.md).
                    lock = Path(e.details["lock"])
                    assert lock.exists() and lock.name.endswith(".lock"), e.details
                    lock.unlink()
    claims = Counter(t for _, t, _ in claims_in_history(remote))
    assert claims == dict.fromkeys(ids, 1)
    final = {t.id: t for t in admin.list().tasks}
    assert all(final[i].state.value == "active" and final[i].holder for i in ids)
    assert_store_sound(remote, admin)


def test_a_damaged_local_copy_is_repaired_from_the_remote(remote: Remote, tmp_path: Path) -> None:
    """The clone's copy is a cache of the remote: a tracking ref naming an
    object that is not there, and a garbled parsed-task cache or read index, cost nothing."""
    admin = Store(clone(remote, tmp_path / "admin"), agent="admin")
    admin.init()
    admin.add_many([{"id": "t1", "title": "a"}, {"id": "t2", "title": "b"}])
    path = clone(remote, tmp_path / "agent")
    a = Store(path, agent="agent-a")
    assert [t.id for t in a.ready().tasks] == ["t1", "t2"]  # fills the cache
    # git itself refuses to point a ref at a missing object, so write the file
    (path / ".git" / "refs" / "remotes" / "origin").mkdir(parents=True, exist_ok=True)
    (path / ".git" / "refs" / "remotes" / "origin" / "gitclaim").write_text("1" * 40 + "\n")
    derived = [path / ".git" / "gitclaim" / where for where in ("cache", "index")]  # parsed tasks, the read index
    cache_files = [f for d in derived for f in d.rglob("*") if f.is_file()]
    assert cache_files
    for f in cache_files:
        f.write_bytes(b"\x80garbage")
    fresh = Store(path, agent="agent-a")
    assert fresh.claim("t1").task.holder == "agent-a"
    assert [t.id for t in fresh.ready().tasks] == ["t2"]
    assert_store_sound(remote, admin)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB file system of our own (tmpfs), for a clone that fills it."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    assert r.returncode == 0, f"the disk-full test mounts a tmpfs and needs root: {r.stderr}"
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with contextlib.suppress(OSError), open(filler, "wb") as f:
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    return filler


def test_a_full_disk_in_the_clone_is_a_clear_error_and_changes_nothing(
    remote: Remote, tmp_path: Path, small_disk: Path
) -> None:
    admin = Store(clone(remote, tmp_path / "admin"), agent="admin")
    admin.init()
    admin.add_many([{"id": "t1", "title": "a"}, {"id": "t2", "title": "b"}])
    path = clone(remote, small_disk / "agent")
    agent = Store(path, agent="agent-a")
    agent.ready()  # the store is fetched; then the disk fills up
    tip = remote.ref()
    filler = _fill(small_disk)
    r = subprocess.run(
        [sys.executable, "-m", "gitclaim", "-C", str(path), "claim", "t1", "--agent", "agent-a", "--json"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 16, r.stdout + r.stderr
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "local_io" and "nothing was pushed" in err["message"]
    assert "Traceback" not in r.stderr
    assert remote.ref() == tip
    filler.unlink()  # space again: the same command converges
    assert Store(path, agent="agent-a").claim("t1").task.holder == "agent-a"
    assert_store_sound(remote, admin)


def test_a_read_only_clone_is_a_clear_error_and_changes_nothing(
    remote: Remote, tmp_path: Path, small_disk: Path
) -> None:
    """A clone on a file system mounted read-only: every writing command is
    local_io (exit 16) and pushes nothing; reading commands work --offline
    from the copy fetched last; once writable again, the same command converges."""
    admin = Store(clone(remote, tmp_path / "admin"), agent="admin")
    admin.init()
    admin.add_many([{"id": "t1", "title": "a"}, {"id": "t2", "title": "b"}])
    path = clone(remote, small_disk / "agent")
    Store(path, agent="agent-a").ready()
    admin.add("added after the clone went read-only", task_id="t3")
    tip = remote.ref()
    r = subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

    def cli(*args: str) -> tuple[int, dict[str, Any]]:
        r = subprocess.run([sys.executable, "-m", "gitclaim", "-C", str(path), *args, "--json"],
                           capture_output=True, text=True)  # fmt: skip
        assert "Traceback" not in r.stderr, r.stderr
        return r.returncode, json.loads(r.stdout)

    try:
        for args in (["claim", "t1", "--agent", "agent-a"], ["next", "--agent", "agent-a"], ["list"]):
            code, out = cli(*args)
            assert code == 16, (args, out)
            assert out["error"]["code"] == "local_io" and "Read-only file system" in out["error"]["message"]
        assert "--offline" in out["error"]["hint"]
        code, out = cli("list", "--offline")
        assert code == 0 and [t["id"] for t in out["result"]["tasks"]] == ["t1", "t2"], out
        code, out = cli("show", "t1", "--offline")
        assert code == 0 and out["result"]["task"]["state"] == "todo", out
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert remote.ref() == tip
    assert Store(path, agent="agent-a").claim("t1").task.holder == "agent-a"
    assert_store_sound(remote, admin)


def test_a_lock_left_by_a_killed_process_is_named_and_changes_nothing(remote: Remote, tmp_path: Path) -> None:
    """A process killed while writing the clone's copy of the branch leaves a
    .lock file: the next fetch says which file and what to do (local_io),
    pushes nothing, and works once the lock is gone."""
    admin = Store(clone(remote, tmp_path / "admin"), agent="admin")
    admin.init()
    admin.add("t", task_id="t1")
    path = clone(remote, tmp_path / "agent")
    Store(path, agent="a").ready()
    admin.add("another", task_id="t2")  # the agent's copy is stale: the next command must fetch
    lock = path / ".git" / "refs" / "remotes" / "origin" / "gitclaim.lock"
    lock.write_text("")
    tip = remote.ref()
    r = subprocess.run([sys.executable, "-m", "gitclaim", "-C", str(path), "next", "--agent", "a", "--json"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 16, r.stdout + r.stderr
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "local_io" and "gitclaim.lock" in err["message"] and ".lock" in err["hint"]
    assert remote.ref() == tip
    lock.unlink()
    assert Store(path, agent="a").next().task.id == "t1"


def test_a_lock_met_after_the_server_took_the_push_is_still_a_won_claim(remote: Remote, tmp_path: Path) -> None:
    """The push landed; only updating the clone's own copy of the branch met a
    stale lock. That copy is a cache: the claim is reported as won (exit 0),
    never as local_io with 'nothing was pushed'."""
    admin = Store(clone(remote, tmp_path / "admin"), agent="admin")
    admin.init()
    admin.add("t", task_id="t1")
    path = clone(remote, tmp_path / "agent")
    Store(path, agent="a").ready()  # fresh copy: the claim builds on it and pushes straight away
    lock = path / ".git" / "refs" / "remotes" / "origin" / "gitclaim.lock"
    lock.write_text("")
    r = subprocess.run([sys.executable, "-m", "gitclaim", "-C", str(path), "claim", "t1", "--agent", "a", "--json"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)["result"]
    assert out["changed"] and remote.ref() == out["commit"]
    lock.unlink()
    assert admin.show("t1").task.holder == "a"
    assert_store_sound(remote, admin)
