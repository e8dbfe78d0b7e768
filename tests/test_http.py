"""The store over smart HTTP: nginx + fcgiwrap + ``git http-backend`` on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitclaim import Store
from gitclaim.errors import RemoteUnreachable

from .conftest import GitHttp, Remote, clone
from .test_race import assert_one_winner_per_round

pytestmark = pytest.mark.slow


def test_a_store_works_over_http(http_remote: Remote, tmp_path: Path) -> None:
    admin = Store(clone(http_remote, tmp_path / "admin"), agent="admin")
    admin.init()
    admin.add("over http", task_id="t1")
    worker = Store(clone(http_remote, tmp_path / "worker"), agent="worker")
    r = worker.claim("t1")
    assert r.changed and http_remote.ref() == r.commit
    assert admin.show("t1").task.holder == "worker"


def test_a_missing_repository_over_http_is_unreachable(git_http: GitHttp, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{git_http.port}/nothing-here.git"
    with pytest.raises(RemoteUnreachable) as ei:
        Store(clone(Remote(tmp_path / "x.git", url), tmp_path / "c"), agent="a").init()
    assert ei.value.details["reason"] == "unreachable", ei.value.to_json()


def test_sixteen_processes_one_task_over_http(http_remote: Remote, tmp_path: Path) -> None:
    """The claim race of test_race.py, through nginx and git http-backend."""
    assert_one_winner_per_round(http_remote, tmp_path, rounds=10)
