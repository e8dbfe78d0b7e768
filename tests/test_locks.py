"""A stale lock is not a busy store: a lock file left on the shared repository by a
killed writer is named at once, with what to do, instead of minutes of retries."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from .conftest import run_cli
from .servers import Remote


def _store(remote: Remote, make_clone: Callable[[Remote, str], Path]) -> Path:
    c = make_clone(remote, "a1")
    assert run_cli("init", "--agent", "a1", cwd=c).returncode == 0
    assert run_cli("add", "One", "--id", "one", "--agent", "a1", cwd=c).returncode == 0
    return c


def _leave_lock(remote: Remote, age: float) -> Path:
    lock = remote.path / "refs" / "heads" / "gitclaim.lock"
    lock.write_text("")
    then = time.time() - age
    os.utime(lock, (then, then))
    return lock


def test_a_lock_left_by_a_killed_writer_is_named_and_the_command_ends(
    remote: Remote, make_clone: Callable[[Remote, str], Path]
) -> None:
    c = _store(remote, make_clone)
    tip = remote.ref()
    lock = _leave_lock(remote, age=3600)
    r = run_cli("claim", "one", "--agent", "a1", "--json", cwd=c)
    assert r.returncode == 19, r.stdout + r.stderr
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "store_locked"
    assert "gitclaim.lock" in err["details"]["lock"] and "gitclaim.lock" in err["message"]
    assert "delete the lock file" in err["hint"]
    assert err["details"]["retries"] < 100  # two seconds of tries, not the 228 of a 60 s deadline it took before
    assert remote.ref() == tip
    human = run_cli("claim", "one", "--agent", "a1", cwd=c)
    assert human.returncode == 19 and "gitclaim.lock" in human.stderr and "Traceback" not in human.stderr
    lock.unlink()
    assert run_cli("claim", "one", "--agent", "a1", cwd=c).returncode == 0


def test_a_fresh_lock_is_waited_for_a_moment_before_it_is_called_stale(
    path_remote: Remote, make_clone: Callable[[Remote, str], Path]
) -> None:
    c = _store(path_remote, make_clone)
    _leave_lock(path_remote, age=0)
    r = run_cli("claim", "one", "--agent", "a1", "--json", cwd=c)
    err = json.loads(r.stdout)["error"]
    assert r.returncode == 19 and err["code"] == "store_locked"
    assert err["details"]["retries"] >= 8  # retried like a busy store first
