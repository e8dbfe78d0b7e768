"""The user's git state stays the user's: gitclaim changes only its own refs and
its own config keys, never FETCH_HEAD, HEAD, the index, the work tree, other
refs or other config."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from .conftest import run_cli
from .servers import Remote, git


def _state(clone: Path) -> dict[str, object]:
    refs = [
        line
        for line in git("for-each-ref", "--format=%(refname) %(objectname)", cwd=clone).splitlines()
        if not line.startswith(("refs/remotes/origin/gitclaim ", "refs/gitclaim/"))
    ]
    config = [
        line for line in git("config", "--local", "--list", cwd=clone).splitlines() if not line.startswith("gitclaim.")
    ]
    gitdir = clone / ".git"
    return {
        "refs": refs,
        "config": config,
        "FETCH_HEAD": (gitdir / "FETCH_HEAD").read_bytes() if (gitdir / "FETCH_HEAD").exists() else None,
        "HEAD": (gitdir / "HEAD").read_text(),
        "index": hashlib.sha1((gitdir / "index").read_bytes()).hexdigest(),
        "tree": sorted((p.name, p.read_bytes()) for p in clone.iterdir() if p.name != ".git"),
        "status": git("status", "--porcelain=v1", cwd=clone),
    }


def test_every_command_leaves_the_users_git_state_alone(
    remote: Remote, make_clone: Callable[[Remote, str], Path], tmp_path: Path
) -> None:
    # the shared repository also has the team's code branch
    seed = make_clone(remote, "seed")
    (seed / "app.py").write_text("print('hi')\n")
    git("add", "app.py", cwd=seed)
    git("commit", "-qm", "code", cwd=seed)
    git("push", "-q", "origin", "main", cwd=seed)

    git("push", "-q", "origin", "main:feature", cwd=seed)
    clone = make_clone(remote, "user")
    git("fetch", "-q", "origin", cwd=clone)
    # gone from the remote: the user's refs/remotes/origin/feature is stale, and theirs to prune
    git("push", "-q", "origin", ":feature", cwd=seed)
    git("fetch", "-q", "origin", "main", cwd=clone)
    git("reset", "-q", "--hard", "FETCH_HEAD", cwd=clone)
    git("config", "user.name", "Ann", cwd=clone)
    (clone / "work.txt").write_text("uncommitted work\n")
    git("add", "work.txt", cwd=clone)
    (clone / "scratch.txt").write_text("untracked\n")
    git("fetch", "-q", "origin", "main", cwd=clone)  # FETCH_HEAD names the user's own fetch
    before = _state(clone)

    steps = [
        ["init"], ["add", "One", "--id", "one"], ["add", "Two", "--id", "two"], ["ready"], ["list"],
        ["claim", "one", "--ttl", "1h"], ["heartbeat"], ["who"], ["stale"], ["show", "one"], ["log"],
        ["done", "one"], ["next"], ["release", "two"], ["board"], ["blocked"], ["graph"],
    ]  # fmt: skip
    for args in steps:
        r = run_cli(*args, cwd=clone, env={"GITCLAIM_AGENT": "ann"})
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        after = _state(clone)
        assert after == before, (args, {k: (before[k], after[k]) for k in before if before[k] != after[k]})

    # and the user's own fetch-and-merge still merges what the user fetched
    git("fetch", "-q", "origin", "main", cwd=clone)
    assert git("rev-parse", "FETCH_HEAD", cwd=clone) == git("rev-parse", "origin/main", cwd=clone)
