"""A vanished store branch is never a new empty store: a clone that saw the store
refuses to start one over it, says what happened, and puts the last tip it
knows back, history intact. The server hook refuses the deletions outright."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from .conftest import run_cli
from .servers import Remote, git


def _team(remote: Remote, make_clone: Callable[[Remote, str], Path]) -> tuple[Path, Path]:
    a = make_clone(remote, "agent-a")
    for args in (["init"], ["add", "Keep me", "--id", "keep"], ["claim", "keep", "--ttl", "1h"], ["heartbeat"]):
        assert run_cli(*args, "--agent", "agent-a", cwd=a).returncode == 0, args
    b = make_clone(remote, "agent-b")
    assert run_cli("ready", cwd=b, env={"GITCLAIM_AGENT": "agent-b"}).returncode == 0
    return a, b


def _mirror_push_from_a_code_clone(remote: Remote, tmp_path: Path) -> Path:
    """A developer's ordinary clone of the code only, pushed with --mirror."""
    dev = tmp_path / "dev"
    git("init", "-q", "-b", "main", str(dev))
    (dev / "app.py").write_text("print('hi')\n")
    git("add", "app.py", cwd=dev)
    git("commit", "-qm", "code", cwd=dev)
    git("remote", "add", "origin", remote.url, cwd=dev)
    return dev


def test_a_mirror_push_that_deleted_the_store_is_named_and_undone(
    remote: Remote, make_clone: Callable[[Remote, str], Path], tmp_path: Path
) -> None:
    a, b = _team(remote, make_clone)
    tip = remote.ref()
    dev = _mirror_push_from_a_code_clone(remote, tmp_path)
    git("push", "-q", "--mirror", "origin", cwd=dev)
    assert remote.ref() is None  # gone, with the heartbeats

    for args in (["ready", "--json"], ["claim", "keep", "--json", "--agent", "agent-b"], ["init", "--json"]):
        r = run_cli(*args, cwd=a, env={"GITCLAIM_AGENT": "agent-a"})
        assert r.returncode == 20, (args, r.stdout, r.stderr)
        err = json.loads(r.stdout)["error"]
        assert err["code"] == "store_vanished" and err["details"]["last_tip"] == tip
        assert "gitclaim restore" in err["hint"]
    assert remote.ref() is None  # init did not start an empty store over it

    r = run_cli("restore", "--json", cwd=a, env={"GITCLAIM_AGENT": "agent-a"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["result"] == {
        "remote": "origin", "branch": "gitclaim", "commit": tip, "restored": True
    }  # fmt: skip
    assert remote.ref() == tip
    shown = json.loads(run_cli("show", "keep", "--json", cwd=b).stdout)["result"]
    assert [e["op"] for e in shown["history"]] == ["claim", "add"]
    assert shown["task"]["claim"]["holder"] == "agent-a"
    again = run_cli("restore", "--json", cwd=b, env={"GITCLAIM_AGENT": "agent-b"})
    assert again.returncode == 0 and json.loads(again.stdout)["result"]["restored"] is False


def test_a_clone_that_never_saw_the_store_can_start_one_and_has_nothing_to_restore(
    path_remote: Remote, make_clone: Callable[[Remote, str], Path]
) -> None:
    c = make_clone(path_remote, "new")
    r = run_cli("restore", "--json", "--agent", "x", cwd=c)
    assert r.returncode == 2 and "never seen" in json.loads(r.stdout)["error"]["message"]
    assert run_cli("init", "--agent", "x", cwd=c).returncode == 0


def test_the_server_hook_refuses_deleting_the_store_or_a_heartbeat(
    path_remote: Remote, make_clone: Callable[[Remote, str], Path], tmp_path: Path
) -> None:
    subprocess_ok = run_cli("hooks", "install", "--server", str(path_remote.path), cwd=tmp_path)
    assert subprocess_ok.returncode == 0, subprocess_ok.stderr
    a, _ = _team(path_remote, make_clone)
    tip = path_remote.ref()
    dev = _mirror_push_from_a_code_clone(path_remote, tmp_path)
    pushed = git("push", "--mirror", "origin", cwd=dev, check=False)
    assert path_remote.ref() == tip
    alive = git("for-each-ref", "refs/gitclaim/alive/", cwd=path_remote.path)
    assert "agent-a" in alive, pushed
    r = git("push", "origin", ":refs/gitclaim/alive/agent-a", cwd=a, check=False)
    assert "agent-a" in git("for-each-ref", "refs/gitclaim/alive/", cwd=path_remote.path), r
