"""The store over smart HTTP: nginx + fcgiwrap + ``git http-backend`` on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitclaim import Store
from gitclaim.errors import RemoteUnreachable

from .conftest import repo_name
from .servers import GitHttp, Remote, clone, git
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


def test_a_server_that_refuses_pushes_is_forbidden_not_an_auth_failure(git_http: GitHttp, tmp_path: Path) -> None:
    """git http-backend serves fetches to anyone but refuses anonymous pushes
    unless http.receivepack is set: HTTP 403, which no credential would fix."""
    remote = git_http.remote(repo_name(tmp_path))
    admin = Store(clone(remote, tmp_path / "admin"), agent="admin")
    admin.init()
    admin.add("t", task_id="t1")
    git("config", "http.receivepack", "false", cwd=remote.path)
    tip = remote.ref()
    with pytest.raises(RemoteUnreachable) as ei:
        Store(clone(remote, tmp_path / "agent"), agent="agent").claim("t1")
    e = ei.value
    assert e.details["reason"] == "forbidden", e.to_json()
    assert "403" in e.message and "http.receivepack" in e.hint
    assert "unknown" not in e.message  # refused before anything was sent
    assert remote.ref() == tip
