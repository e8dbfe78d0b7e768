"""Hook entry points: ``python -m gitclaim.hook pre-push|pre-receive|vref|pre-commit``.

Kept free of the CLI's imports: a hook runs on every push.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime

from .compaction import archive_update
from .enforce import check_liveness, check_push, last_seen, render
from .git import ALIVE_PREFIX, ZERO, Repo
from .ids import ARCHIVE_PREFIX
from .install import hooks_dir, run_chained
from .judge import Judge
from .validate import Violation


def _branch(repo: Repo) -> str:
    return repo.config_get("gitclaim.branch") or "gitclaim"


def _sha(s: str) -> str | None:
    return None if s == ZERO else s


#: Where each host names the authenticated pusher to a hook, in the order :func:`pusher` reads them.
PUSHER_VARIABLES = (
    "GL_USER",  # gitolite
    "GL_USERNAME",  # GitLab's server hooks
    "GITEA_PUSHER_NAME",  # Gitea and Forgejo
    "REMOTE_USER",  # HTTP authentication in front of git http-backend
)


def pusher(env: Mapping[str, str] | None = None) -> str | None:
    """The user the git host authenticated for this push, or None where the host names nobody.

    Reads ``GL_USER`` (gitolite), ``GL_USERNAME`` (GitLab), ``GITEA_PUSHER_NAME``
    (Gitea, Forgejo) and ``REMOTE_USER`` (HTTP auth), in that order, from ``env``
    (default: this process's environment); the first that is set and not empty
    wins. Raises nothing. It is the host's account name, not an agent name:
    mapping one to the other is the identity checks' business.
    """
    source = os.environ if env is None else env
    for name in PUSHER_VARIABLES:
        value = source.get(name)
        if value:
            return value
    return None


def anchors(repo: Repo) -> str | None:
    """The keys the server trusts from outside the branch to set a store's
    first policy: each ``gitclaim.admin`` value is an allowed_signers line
    (``NAME KEYTYPE BASE64``). None when none is configured (docs/identity.md)."""
    lines = [v for k, v in repo.config_entries() if k == "gitclaim.admin"]
    return "\n".join(lines) + "\n" if lines else None


def server_judge(repo: Repo) -> Judge:
    """The identity checks of a server hook: the pusher the host names, and the
    first-policy anchors (``gitclaim.admin`` keys, ``gitclaim.adminPusher`` users)."""
    admins = tuple(v for k, v in repo.config_entries() if k == "gitclaim.adminpusher")
    return Judge(repo, pusher=pusher(), anchors=anchors(repo), need_anchor=True, anchor_pushers=admins)


def _check_update(
    repo: Repo,
    old: str | None,
    new: str | None,
    ref: str,
    *,
    branch: str,
    now: datetime,
    seen: Mapping[str, datetime],
    judge: Judge,
    pushed: Mapping[str, str | None] | None = None,
) -> list[Violation]:
    """Violations of one ref update of a push; other branches pass untouched.
    ``pushed``: every ref the push sets (a compaction's archive ref comes with it)."""
    if ref.startswith(ALIVE_PREFIX):
        return check_liveness(ref, new, judge, repo.ref(f"refs/heads/{branch}"))
    if ref.startswith(ARCHIVE_PREFIX):
        return archive_update(repo, ref, old, new, branch)
    if ref == f"refs/heads/{branch}":
        return check_push(repo, old, new, branch=branch, now=now, seen=seen, judge=judge, pushed=pushed)
    return []


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
    judge = server_judge(repo)
    bad: list[Violation] = []
    updates = [(_sha(p[0]), _sha(p[1]), p[2]) for p in (line.split() for line in lines) if len(p) == 3]
    pushed = {ref: new for _, new, ref in updates}
    for old, new, ref in updates:
        bad += _check_update(repo, old, new, ref, branch=branch, now=now, seen=seen, judge=judge, pushed=pushed)
    if bad:
        sys.stderr.write(render(bad) + "\n")
        return 1
    return run_chained("pre-receive", hooks_dir(repo), [], raw)


def vref(args: list[str]) -> int:
    """gitolite's VREF contract, one ref per call, from its update hook: ``ref oldsha
    newsha oldtree newtree access refex [refex parts]``. The same checks as
    :func:`pre_receive` on that one ref.

    A refusal prints the violations on stderr and the refex it was called for
    (``VREF/GITCLAIM``) on stdout: gitolite then denies the push by the
    ``- VREF/GITCLAIM = @all`` rule that made it call us, and a rule before that
    one (``RW+ VREF/GITCLAIM = admin``) can still let someone through. Exit 0
    either way; any other exit (a crash) makes gitolite refuse the push outright.
    """
    if len(args) < 3:
        sys.stderr.write("usage: python -m gitclaim.hook vref REF OLDSHA NEWSHA [OLDTREE NEWTREE ACCESS REFEX ...]\n")
        return 2
    ref, old, new = args[:3]
    refex = args[6] if len(args) > 6 else "VREF/GITCLAIM"
    repo = Repo.from_hook_env()
    branch = _branch(repo)
    judge = server_judge(repo)
    now, seen = datetime.now(UTC), last_seen(repo)
    bad = _check_update(repo, _sha(old), _sha(new), ref, branch=branch, now=now, seen=seen, judge=judge)
    if bad:
        sys.stderr.write(render(bad) + "\n")
        sys.stdout.write(f"{refex} gitclaim refused the push of {ref} (the reasons are above)\n")
    return 0


def pre_push(args: list[str], raw: bytes) -> int:
    """Client side: stdin lines ``<local ref> <local sha> <remote ref> <remote sha>``."""
    repo = Repo(".")
    branch = _branch(repo)
    now = datetime.now(UTC)
    seen = last_seen(repo)
    bad: list[Violation] = []
    lines = [p for p in (line.split() for line in raw.decode(errors="replace").splitlines()) if len(p) == 4]
    pushed = {p[2]: _sha(p[1]) for p in lines}
    for parts in lines:
        if parts[2] != f"refs/heads/{branch}":
            continue
        judge = Judge(repo)  # a client cannot know its pusher: the server checks that
        bad += check_push(
            repo, _sha(parts[3]), _sha(parts[1]), branch=branch, now=now, seen=seen, judge=judge, pushed=pushed
        )
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
        if kind == "vref":
            return vref(args[1:])
        if kind == "pre-commit":
            return pre_commit_framework()
    except Exception as e:  # a hook must say why it refused, not dump a traceback
        sys.stderr.write(f"gitclaim {kind} hook: cannot check the push: {type(e).__name__}: {e}\n")
        return 1
    sys.stderr.write(
        "usage: python -m gitclaim.hook pre-push REMOTE URL | pre-receive | vref REF OLD NEW ... | pre-commit\n"
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
