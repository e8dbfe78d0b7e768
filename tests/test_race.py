"""Separate processes, separate clones, one remote: exactly one winner.

The workers are real processes (tests/race_worker.py), each with its own
clone, released at once over their stdin. Run over a local-path remote and
over git daemon on loopback, through libgit2 and through the system's git.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from gitclaim import Store

from .conftest import repo_name, run_cli
from .servers import GitDaemon, Remote, clone, git, make_remote_path

WORKER = str(Path(__file__).with_name("race_worker.py"))


class Workers:
    """``n`` worker processes named agent-00, agent-01, ..., or one per name of ``names``;
    ``env(name)``: a worker's environment (default: this process's)."""

    def __init__(
        self,
        remote: Remote,
        root: Path,
        n: int = 0,
        *,
        names: Sequence[str] = (),
        env: Callable[[str], Mapping[str, str]] | None = None,
    ) -> None:
        self.names = list(names) or [f"agent-{i:02d}" for i in range(n)]
        self.procs = []
        for name in self.names:
            path = clone(remote, root / name)
            p = subprocess.Popen(
                [sys.executable, WORKER, str(path), name],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=None if env is None else dict(env(name)),
            )
            self.procs.append(p)
        for p in self.procs:
            assert json.loads(self._readline(p)) == {"ready": True}

    @staticmethod
    def _readline(p: subprocess.Popen[str]) -> str:
        assert p.stdout is not None
        line = p.stdout.readline()
        if not line:
            assert p.stderr is not None
            raise AssertionError(f"worker died: {p.stderr.read()}")
        return line

    def all(self, cmd: dict[str, object]) -> dict[str, dict[str, object]]:
        line = json.dumps(cmd) + "\n"
        for p in self.procs:  # release everyone first, then collect
            assert p.stdin is not None
            p.stdin.write(line)
            p.stdin.flush()
        return {name: json.loads(self._readline(p)) for name, p in zip(self.names, self.procs, strict=True)}

    def close(self) -> None:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.close()
        for p in self.procs:
            p.wait(30)


def claims_in_history(remote: Remote) -> list[tuple[str, str, str]]:
    """(commit, task, agent) of every claim commit on the remote branch, from the trailers."""
    out = git(
        "log", "--format=%H%x00%(trailers:key=Gitclaim-Op,valueonly,separator=)%x00"
        "%(trailers:key=Gitclaim-Task,valueonly,separator=)%x00%(trailers:key=Gitclaim-Agent,valueonly,separator=)",
        "gitclaim", cwd=remote.path,
    )  # fmt: skip
    rows = []
    for line in out.splitlines():
        commit, op, task, agent = line.split("\x00")
        if op == "claim":
            rows.append((commit, task, agent))
    return rows


def assert_one_winner(results: Mapping[str, Mapping[str, object]], what: str = "") -> str:
    """One claim race's answers, worker by worker: exactly one won (and changed the
    task), every other lost the race naming the winner and its commit. The winner."""
    winners = [name for name, res in results.items() if res["ok"]]
    assert len(winners) == 1, f"{what}: winners {winners}: {results}"
    (winner,) = winners
    assert results[winner]["changed"] is True
    for name, res in results.items():
        if name == winner:
            continue
        assert res["code"] == "lost_race", res
        assert res["exit"] == 4
        details = res["details"]
        assert isinstance(details, dict)
        assert details["holder"] == winner
        assert details["commit"] == results[winner]["commit"]
        assert winner in str(res["message"])
    return winner


def assert_one_winner_per_round(remote: Remote, tmp_path: Path, rounds: int, agents: int = 16) -> None:
    """``agents`` processes with separate clones claim the same task at once,
    ``rounds`` times: exactly one winner a round, every loser names the
    winner and its commit, one claim a task in the remote's history, and the
    remote repository is sound (losers leave only unreferenced commits)."""
    admin = Store(clone(remote, tmp_path / "admin"), agent="admin")
    admin.init()
    admin.add_many([{"id": f"task-{r:02d}", "title": f"round {r}"} for r in range(rounds)])
    workers = Workers(remote, tmp_path / "agents", agents)
    try:
        for r in range(rounds):
            assert_one_winner(workers.all({"op": "claim", "task": f"task-{r:02d}"}), f"round {r}")
    finally:
        workers.close()
    history = claims_in_history(remote)
    per_task = Counter(task for _, task, _ in history)
    assert per_task == {f"task-{r:02d}": 1 for r in range(rounds)}
    git("fsck", "--no-progress", "--no-dangling", cwd=remote.path)


@pytest.fixture(params=["path", "daemon", "daemon-git"])
def race_remote(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Remote:
    """A local path, git daemon through libgit2, and git daemon through the system's git."""
    if request.param == "path":
        return make_remote_path(tmp_path)
    if request.param == "daemon-git":
        monkeypatch.setenv("GITCLAIM_TRANSPORT", "git")  # the workers inherit it
    daemon: GitDaemon = request.getfixturevalue("git_daemon")
    return daemon.remote(repo_name(tmp_path))


@pytest.mark.slow
def test_sixteen_processes_one_task_twenty_rounds(race_remote: Remote, tmp_path: Path) -> None:
    # Through the system's git each try is a few processes: fewer rounds keep the suite's time.
    through_git = os.environ.get("GITCLAIM_TRANSPORT") == "git"
    assert_one_winner_per_round(race_remote, tmp_path, rounds=8 if through_git else 20)


@pytest.mark.slow
def test_eight_processes_drain_two_hundred_tasks(remote: Remote, tmp_path: Path) -> None:
    admin = Store(clone(remote, tmp_path / "admin"), agent="admin")
    admin.init()
    ids = [f"job-{i:03d}" for i in range(200)]
    admin.add_many([{"id": i, "title": i, "priority": n % 3} for n, i in enumerate(ids)])
    workers = Workers(remote, tmp_path / "agents", 8)
    try:
        results = workers.all({"op": "drain"})
    finally:
        workers.close()
    reported = []
    retries: list[int] = []
    for name, res in results.items():
        assert res["ok"], res
        won = res["won"]
        assert isinstance(won, list)
        for w in won:
            assert "error" not in w, f"{name}: {w}"
            reported.append((w["commit"], w["task"], name))
            retries.append(w["retries"])
    claimed = Counter(task for _, task, _ in reported)
    print(
        f"retries per claim: max {max(retries)}, mean {sum(retries) / len(retries):.1f}",
        {n: len(r["won"]) for n, r in results.items()},
    )
    assert sorted(claimed) == ids
    assert set(claimed.values()) == {1}, [t for t, n in claimed.items() if n > 1]
    # No lost update: every claim reported as won is a claim commit on the remote.
    history = set(claims_in_history(remote))
    missing = [r for r in reported if r not in history]
    assert not missing, missing
    assert len(history) == 200
    # And the store agrees: every task active, held by the agent that won it.
    final = {t.id: t for t in admin.list().tasks}
    for _, task, agent in reported:
        assert final[task].holder == agent and final[task].state.value == "active"


@pytest.mark.slow
def test_cli_processes_race_for_one_task(race_remote: Remote, tmp_path: Path) -> None:
    """Whole `gitclaim claim` processes, started together: exit 0 once, exit 4 for the rest."""
    remote = race_remote
    admin = Store(clone(remote, tmp_path / "admin"), agent="admin")
    admin.init()
    admin.add("contested", task_id="contested")
    clones = [clone(remote, tmp_path / f"c{i}") for i in range(8)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "gitclaim", "-C", str(c), "claim", "contested", "--agent", f"cli-{i}", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, c in enumerate(clones)
    ]
    outs = [(p.wait(60), json.loads(p.communicate()[0])) for p in procs]
    codes = Counter(code for code, _ in outs)
    assert codes[0] == 1 and codes[4] == 7, outs
    winner = next(o["result"]["task"]["claim"]["holder"] for code, o in outs if code == 0)
    for code, o in outs:
        if code == 4:
            assert o["error"]["details"]["holder"] == winner
    shown = run_cli("show", "contested", "--json", cwd=tmp_path / "admin")
    assert json.loads(shown.stdout)["result"]["task"]["claim"]["holder"] == winner
