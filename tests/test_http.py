"""The store over smart HTTP: nginx + fcgiwrap + ``git http-backend`` on loopback."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from gitclaim import Store
from gitclaim.errors import RemoteUnreachable

from .conftest import GitHttp, Remote, clone, git
from .test_race import Workers, claims_in_history

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
    """The claim race of test_race.py, through nginx and git http-backend's receive-pack."""
    admin = Store(clone(http_remote, tmp_path / "admin"), agent="admin")
    admin.init()
    rounds = 10
    admin.add_many([{"id": f"task-{r:02d}", "title": f"round {r}"} for r in range(rounds)])
    workers = Workers(http_remote, tmp_path / "agents", 16)
    try:
        for r in range(rounds):
            results = workers.all({"op": "claim", "task": f"task-{r:02d}"})
            winners = [name for name, res in results.items() if res["ok"]]
            assert len(winners) == 1, f"round {r}: winners {winners}: {results}"
            (winner,) = winners
            for name, res in results.items():
                if name != winner:
                    assert res["code"] == "lost_race", res
                    assert res["details"]["holder"] == winner  # type: ignore[index]
    finally:
        workers.close()
    assert Counter(task for _, task, _ in claims_in_history(http_remote)) == {f"task-{r:02d}": 1 for r in range(rounds)}
    git("fsck", "--no-progress", "--no-dangling", cwd=http_remote.path)
