"""Hook entry points: ``python -m gitclaim.hook pre-push|pre-receive|pre-commit``.

Kept free of the CLI's imports: a hook runs on every push.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

from .enforce import check_liveness, check_push, last_seen, render
from .git import ALIVE_PREFIX, ZERO, Repo
from .install import hooks_dir, run_chained
from .validate import Violation


def _branch(repo: Repo) -> str:
    return repo.config_get("gitclaim.branch") or "gitclaim"


def _sha(s: str) -> str | None:
    return None if s == ZERO else s


def pre_receive(raw: bytes) -> int:
    """Server side: stdin lines ``<old> <new> <ref>``. Nothing a client does can skip this.

    A pre-receive hook the server had before ours runs after the check, with
    the same input, and can still refuse.
    """
    lines = raw.decode(errors="replace").splitlines()
    repo = Repo.from_hook_env()
    branch = _branch(repo)
    now = datetime.now(UTC)
    seen = last_seen(repo)
    bad: list[Violation] = []
    for line in lines:
        parts = line.split()
        if len(parts) != 3:
            continue
        if parts[2].startswith(ALIVE_PREFIX):
            bad += check_liveness(parts[2], _sha(parts[1]))
        elif parts[2] == f"refs/heads/{branch}":
            bad += check_push(repo, _sha(parts[0]), _sha(parts[1]), branch=branch, now=now, seen=seen)
        # other branches pass untouched
    if bad:
        sys.stderr.write(render(bad) + "\n")
        return 1
    return run_chained("pre-receive", hooks_dir(repo), [], raw)


def pre_push(args: list[str], raw: bytes) -> int:
    """Client side: stdin lines ``<local ref> <local sha> <remote ref> <remote sha>``."""
    repo = Repo(".")
    branch = _branch(repo)
    now = datetime.now(UTC)
    seen = last_seen(repo)
    bad: list[Violation] = []
    for line in raw.decode(errors="replace").splitlines():
        parts = line.split()
        if len(parts) != 4 or parts[2] != f"refs/heads/{branch}":
            continue
        bad += check_push(repo, _sha(parts[3]), _sha(parts[1]), branch=branch, now=now, seen=seen)
    if bad:
        sys.stderr.write(render(bad) + "\n")
        return 1
    return run_chained("pre-push", hooks_dir(repo), args, raw)


def pre_commit_framework() -> int:
    """For the pre-commit framework's pre-push stage, which passes refs in the environment."""
    remote_branch = os.environ.get("PRE_COMMIT_REMOTE_BRANCH", "")
    to_ref = os.environ.get("PRE_COMMIT_TO_REF")
    if not to_ref:
        return 0
    repo = Repo(".")
    branch = _branch(repo)
    if remote_branch not in (f"refs/heads/{branch}", branch):
        return 0
    bad = check_push(
        repo,
        _sha(os.environ.get("PRE_COMMIT_FROM_REF", ZERO)),
        repo.resolve(to_ref),
        branch=branch,
        now=datetime.now(UTC),
        seen=last_seen(repo),
    )
    if bad:
        sys.stderr.write(render(bad) + "\n")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    kind = args[0] if args else ""
    try:
        if kind == "pre-receive":
            return pre_receive(sys.stdin.buffer.read())
        if kind == "pre-push":
            return pre_push(args[1:], sys.stdin.buffer.read())
        if kind == "pre-commit":
            return pre_commit_framework()
    except Exception as e:  # a hook must say why it refused, not dump a traceback
        sys.stderr.write(f"gitclaim {kind} hook: cannot check the push: {type(e).__name__}: {e}\n")
        return 1
    sys.stderr.write("usage: python -m gitclaim.hook pre-push REMOTE URL | pre-receive | pre-commit\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
