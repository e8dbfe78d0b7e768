"""Installing the hooks, and running the ones gitclaim's own hooks stand in for.

``gitclaim hooks install`` writes a thin shell stub (:func:`script`) that
calls :mod:`gitclaim.hook`: the client ``pre-push`` hook into a clone, the
server ``pre-receive`` hook into the shared bare repository. A hook that was
there before is kept beside it as ``<kind>.chained`` and runs after the check.
A repository gitolite manages is the exception: its hooks are gitolite's, and
:mod:`gitclaim.gitolite` installs the check where gitolite runs site code.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import BadInput, PushRejected
from .git import ZERO, Repo

if TYPE_CHECKING:
    from .gitolite import GitoliteSetup

MARKER = "gitclaim.hook"


def hooks_dir(repo: Repo) -> Path:
    """Where git looks for this repository's hooks (``core.hooksPath`` respected)."""
    configured = repo.config_get("core.hooksPath")
    if configured:
        p = Path(os.path.expanduser(configured))
        if not p.is_absolute():
            p = repo.top / p
        return p
    return repo.common_dir / "hooks"


def script(kind: str, python: str = "python3") -> str:
    """The hook script: a thin shell stub that calls :mod:`gitclaim.hook`."""
    return (
        "#!/bin/sh\n"
        f"# gitclaim {kind} hook: checks every push of the store branch against its rules.\n"
        f"# Installed by `gitclaim hooks install`; a {kind} hook that was here before is kept\n"
        f"# beside it as {kind}.chained and runs after the check. Set GITCLAIM_PYTHON to change\n"
        "# the interpreter.\n"
        f'exec "${{GITCLAIM_PYTHON:-{python}}}" -m {MARKER} {kind} "$@"\n'
    )


@dataclass(frozen=True)
class Installed:
    path: str
    chained: str | None  # the user's own hook, kept and run after ours
    updated: bool  # an older gitclaim hook was replaced
    gitolite: GitoliteSetup | None = None  # the repository is gitolite's: what the admin adds

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "chained": self.chained,
            "updated": self.updated,
            "gitolite": self.gitolite.to_json() if self.gitolite else None,
        }


def install(directory: Path, kind: str, python: str = sys.executable) -> Installed:
    """Install the ``kind`` hook into ``directory``, chaining to an existing one.

    Raises :class:`BadInput` rather than overwrite anything it did not write.
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / kind
    chained = directory / f"{kind}.chained"
    updated = False
    if target.exists() or target.is_symlink():
        text = target.read_text(errors="replace") if target.is_file() else ""
        if MARKER in text:
            updated = True
        else:
            if chained.exists():
                raise BadInput(
                    f"{target} exists and so does {chained}; gitclaim will not overwrite either",
                    hint="merge them by hand, then run the install again",
                    path=str(target),
                )
            target.rename(chained)
    target.write_text(script(kind, python))
    target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return Installed(str(target), str(chained) if chained.exists() else None, updated)


def install_client(path: str | os.PathLike[str]) -> Installed:
    """The pre-push hook, in the hooks folder git uses for the clone at ``path``."""
    repo = Repo(path)
    return install(hooks_dir(repo), "pre-push")


def install_server(path: str | os.PathLike[str], branch: str | None = None, *, vref: bool = False) -> Installed:
    """The pre-receive hook, in the shared bare repository at ``path``.

    In a repository gitolite manages, gitolite's hooks stay as they are: the
    check goes in as a repo-specific hook (or with ``vref`` as a VREF) and the
    result names the rc and conf lines that switch it on. Raises :class:`BadInput`.
    """
    from . import gitolite

    repo = Repo(path)
    if repo.git_dir.resolve() != Path(path).resolve() or not repo.is_bare:
        raise BadInput(f"{path} is not a bare repository", hint="give the path of the shared remote", path=str(path))
    site = gitolite.detect(repo.git_dir)
    if vref and site is None:
        raise BadInput(f"--vref is for a repository gitolite manages, and {path} is not one", path=str(path))
    if branch:
        from .refnames import validate_branch

        config = repo.git_dir / "config"
        owner = config.stat()
        repo.config_set("gitclaim.branch", validate_branch(branch))
        if os.geteuid() == 0 and config.stat().st_uid != owner.st_uid:  # git rewrote it: keep it the host's
            os.chown(config, owner.st_uid, owner.st_gid)
    if site is not None:
        return gitolite.install(site, repo.git_dir, "vref" if vref else "hook")
    return install(hooks_dir(repo), "pre-receive")


def run_chained(kind: str, directory: Path, args: list[str], stdin: bytes) -> int:
    """Run the user's own hook that ours replaced, if any, with the same input."""
    chained = directory / f"{kind}.chained"
    if not chained.exists() or not os.access(chained, os.X_OK):
        return 0
    return subprocess.run([str(chained), *args], input=stdin).returncode


def run_client_pre_push(repo: Repo, remote: str, url: str, branch: str, new: str, expected: str | None) -> None:
    """Run the clone's ``pre-push`` hook for a push gitclaim makes (libgit2 never does).

    Our own hook is not started again (its check already ran in-process); a
    hook it chains to, or any other hook, is. Raises :class:`PushRejected`.
    """
    directory = hooks_dir(repo)
    hook = directory / "pre-push"
    if not hook.is_file() or not os.access(hook, os.X_OK):
        return
    ours = MARKER in hook.read_text(errors="replace")
    run = directory / "pre-push.chained" if ours else hook
    if not run.is_file() or not os.access(run, os.X_OK):
        return
    line = f"refs/heads/{branch} {new} refs/heads/{branch} {expected or ZERO}\n"
    r = subprocess.run(
        [str(run), remote, url],
        input=line.encode(),
        capture_output=True,
        cwd=repo.top,
    )
    if r.returncode != 0:
        said = (r.stdout + r.stderr).decode(errors="replace").strip()
        raise PushRejected(
            f"the pre-push hook {run} refused the push (exit {r.returncode})" + (f":\n{said}" if said else ""),
            hook=str(run),
            output=said,
        )
