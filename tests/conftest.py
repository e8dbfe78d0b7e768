"""Shared fixtures: real repositories, real remotes, real servers on loopback.

No mocks of git anywhere. Every test runs with HOME pointed at a temporary
folder, so nothing can read or write the developer's own git config. The
servers themselves, and the helpers to make repositories, are in
tests/servers.py (the benchmarks use them too); these fixtures only start and
stop them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from .servers import (
    GIT,
    GitDaemon,
    GitHttp,
    Gitolite,
    GitSshd,
    MissingTool,
    Remote,
    Server,
    clone,
    git,
    make_remote_path,
)

S = TypeVar("S", bound=Server)


def isolate_home(mp: pytest.MonkeyPatch, home: Path) -> None:
    """HOME, git's global configuration and the agent's name, away from the machine's.
    Also for a module-scoped fixture, which runs before the per-test home exists."""
    mp.setenv("HOME", str(home))
    mp.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
    mp.delenv("GITCLAIM_AGENT", raising=False)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_home(monkeypatch, tmp_path_factory.mktemp("home"))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "test")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "test@example.invalid")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "test")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "test@example.invalid")
    monkeypatch.delenv("GITCLAIM_DEBUG", raising=False)
    for name in ("GITCLAIM_TOKEN", "GITCLAIM_CA_BUNDLE", "GITCLAIM_SSH_KEY", "SSH_AUTH_SOCK"):
        monkeypatch.delenv(name, raising=False)


def _wait_for_the_server(path: Path, limit: float = 15.0) -> None:
    """Until no git process works in the repository at ``path``. A client killed
    after sending its pack leaves the server's receive-pack to finish the push on
    its own (moving the pack in, then the ref); an fsck that reads the ref before
    the pack can report a missing object that is about to arrive."""
    deadline = time.monotonic() + limit
    here = str(path.resolve())
    while time.monotonic() < deadline:
        busy = False
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cwd = os.readlink(proc / "cwd")
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if cwd.startswith(here) and (b"receive-pack" in cmd or b"index-pack" in cmd or b"gc" in cmd):
                busy = True
                break
        if not busy:
            return
        time.sleep(0.05)


def assert_store_sound(remote: Remote, checker: object) -> None:
    """The shared repository passes ``git fsck`` and its whole store history
    passes the validator (``checker``: any Store on a clone of ``remote``)."""
    from datetime import UTC, datetime

    from gitclaim import Store
    from gitclaim.enforce import check_push

    assert isinstance(checker, Store)
    _wait_for_the_server(remote.path)
    git("fsck", "--no-progress", "--no-dangling", cwd=remote.path)
    tip = checker.transport.fetch()
    assert tip is not None
    bad = check_push(checker.repo, None, tip, branch="gitclaim", now=datetime.now(UTC), seen={})
    assert bad == [], bad


def repo_name(tmp_path: Path, prefix: str = "r") -> str:
    """A name for a test's repository on a shared server, unique per test."""
    return f"{prefix}{abs(hash(str(tmp_path))) % 10**12}"


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m gitclaim`` as its own process, as an agent would."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "gitclaim", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


def _serve(start: Callable[[], S]) -> Iterator[S]:
    """A server for the length of a fixture. No test passes by skipping: a
    missing tool fails the tests that need it, saying what to install."""
    try:
        server = start()
    except MissingTool as e:
        raise pytest.fail.Exception(str(e), pytrace=False) from None  # pytest.fail, the message alone
    with server:
        yield server


# --- remotes: a path, git daemon ---------------------------------------------


@pytest.fixture
def path_remote(tmp_path: Path) -> Remote:
    return make_remote_path(tmp_path)


@pytest.fixture(scope="session")
def git_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitDaemon]:
    yield from _serve(lambda: GitDaemon(tmp_path_factory.mktemp("daemon")))


@pytest.fixture
def daemon_remote(git_daemon: GitDaemon, tmp_path: Path) -> Remote:
    return git_daemon.remote(repo_name(tmp_path))


@pytest.fixture(params=["path", "daemon"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Remote:
    """The same test over a local-path remote and over git daemon on loopback."""
    if request.param == "path":
        return make_remote_path(tmp_path)
    daemon: GitDaemon = request.getfixturevalue("git_daemon")
    return daemon.remote(repo_name(tmp_path))


@pytest.fixture
def make_clone(tmp_path: Path) -> Callable[[Remote, str], Path]:
    def make(remote: Remote, name: str) -> Path:
        return clone(remote, tmp_path / "clones" / name)

    return make


@pytest.fixture
def store_factory(make_clone: Callable[[Remote, str], Path]) -> Callable[..., object]:
    """Store objects on separate clones of one remote: store_factory(remote, "agent-1")."""
    from gitclaim import Store

    def make(remote: Remote, agent: str, **kw: object) -> Store:
        path = make_clone(remote, agent)
        return Store(path, agent=agent, **kw)  # type: ignore[arg-type]

    return make


@pytest.fixture
def initialized(remote: Remote, store_factory: Callable[..., object]) -> tuple[Remote, object]:
    """A remote with an initialised store, and the store of the agent that made it."""
    s = store_factory(remote, "admin")
    s.init()  # type: ignore[attr-defined]
    return remote, s


# --- ssh: sshd with a git-shell user ------------------------------------------


@pytest.fixture(scope="session")
def git_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitSshd]:
    yield from _serve(lambda: GitSshd(tmp_path_factory.mktemp("sshd")))


@pytest.fixture
def ssh_client(git_sshd: GitSshd, monkeypatch: pytest.MonkeyPatch) -> Iterator[GitSshd]:
    """This test's HOME trusts the server's host key and logs in with the authorised key.

    libgit2 reads ~/.ssh/known_hosts of the home folder it cached when it was
    loaded, so point it at this test's HOME too (and back afterwards).
    """
    import pygit2
    from pygit2.enums import Option

    home = Path(os.environ["HOME"])
    (home / ".ssh").mkdir(mode=0o700, exist_ok=True)
    (home / ".ssh" / "known_hosts").write_text(git_sshd.known_hosts_line)
    monkeypatch.setenv("GITCLAIM_SSH_KEY", str(git_sshd.client_key))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    # The bare repositories belong to the git-shell user; let this process's git read them.
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "safe.directory")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "*")
    old = pygit2.option(Option.GET_HOMEDIR)
    pygit2.option(Option.SET_HOMEDIR, str(home))
    try:
        yield git_sshd
    finally:
        pygit2.option(Option.SET_HOMEDIR, old)


@pytest.fixture
def ssh_remote(ssh_client: GitSshd, tmp_path: Path) -> Remote:
    return ssh_client.remote(repo_name(tmp_path))


# --- smart HTTP and https: nginx + fcgiwrap + git http-backend ------------------


@pytest.fixture(scope="session")
def git_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHttp]:
    yield from _serve(lambda: GitHttp(tmp_path_factory.mktemp("http")))


@pytest.fixture
def http_remote(git_http: GitHttp, tmp_path: Path) -> Remote:
    return git_http.remote(repo_name(tmp_path))


@pytest.fixture(scope="session")
def git_https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHttp]:
    yield from _serve(lambda: GitHttp(tmp_path_factory.mktemp("https"), tls=True))


@pytest.fixture
def https_remote(git_https: GitHttp, tmp_path: Path) -> Remote:
    return git_https.remote(repo_name(tmp_path))


#: The gitolite users with a key of their own besides admin: agent-a and agent-b, and
#: fourteen more so that a race can have one user (and one agent name) per process.
GITOLITE_AGENTS = tuple(f"agent-{c}" for c in "abcdefghijklmnop")


@pytest.fixture(scope="session")
def gitolite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gitolite]:
    """gitolite3 behind its own sshd, with keys for admin and GITOLITE_AGENTS."""
    yield from _serve(lambda: Gitolite(tmp_path_factory.mktemp("gitolite"), agents=GITOLITE_AGENTS))


@dataclass
class Site:
    """One gitolite repository holding a store with one task, ``one``, and the agents' clones of it."""

    server: Gitolite
    remote: Remote
    home: Path  # the agents' HOME: known_hosts
    root: Path

    def env(self, who: str) -> dict[str, str]:
        """The environment of ``who``'s gitclaim: its key, its agent name, the server's host key."""
        env = dict(os.environ, HOME=str(self.home), GITCLAIM_SSH_KEY=str(self.server.keys[who]), GITCLAIM_AGENT=who)
        env.pop("SSH_AUTH_SOCK", None)
        return env

    def gitclaim(self, who: str, *args: str) -> tuple[int, dict[str, Any]]:
        clone = self.root / f"clone-{who}"
        if not clone.exists():
            git("init", "-q", "-b", "main", str(clone))
            git("remote", "add", "origin", self.remote.url, cwd=clone)
        p = subprocess.run([sys.executable, "-m", "gitclaim", "-C", str(clone), *args, "--json"],
                           capture_output=True, text=True, env=self.env(who), timeout=120)  # fmt: skip
        return p.returncode, json.loads(p.stdout)

    def git(self, who: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Plain git over ssh with ``who``'s key, committing as ``who``."""
        ssh = (f"ssh -F /dev/null -i {self.server.keys[who]} -o IdentitiesOnly=yes"
               f" -o UserKnownHostsFile={self.home / '.ssh' / 'known_hosts'}")  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_"))}
        env["GIT_SSH_COMMAND"] = ssh
        who_is = ("-c", f"user.name={who}", "-c", f"user.email={who}@agents.invalid")
        return subprocess.run([GIT, *who_is, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)

    def tip(self, ref: str = "refs/heads/gitclaim") -> str | None:
        """Where ``ref`` points in the repository on the server (read as the hosting user, who owns it)."""
        out = self.server.run_as("git", "-C", str(self.remote.path), "for-each-ref", "--format=%(objectname)", ref)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip() or None

    def work_copy(self, who: str) -> Path:
        """``who``'s plain git checkout of the store branch, at the server's tip."""
        wc = self.root / f"wc-{who}"
        if not wc.exists():
            assert self.git(who, "clone", "-q", "-b", "gitclaim", self.remote.url, str(wc)).returncode == 0
        assert self.git(who, "fetch", "-q", "origin", cwd=wc).returncode == 0
        git("reset", "-q", "--hard", "origin/gitclaim", cwd=wc)
        return wc

    def commit(self, who: str, edit: Callable[[Path], None], message: str, *, author: str | None = None) -> Path:
        """Plain git in ``who``'s working copy: the store's tip, ``edit`` on the checkout,
        one commit (authored as ``author``, default ``who``). The working copy, to push from."""
        wc = self.work_copy(who)
        edit(wc)
        as_author = ("--author", f"{author} <{author}@agents.invalid>") if author else ()
        done = self.git(who, "commit", "-qam", message, *as_author, cwd=wc)
        assert done.returncode == 0, done.stderr
        return wc

    def delete_task(self, who: str) -> subprocess.CompletedProcess[str]:
        """Plain git: fetch the store, delete task one's file, commit and push."""
        from gitclaim.ids import task_path

        wc = self.commit(who, lambda wc: (wc / task_path("one")).unlink(), "rm one")
        return self.git(who, "push", "origin", "gitclaim", cwd=wc)

    def install(self, *args: str) -> dict[str, Any]:
        """``gitclaim hooks install --server`` as the hosting user; its JSON result."""
        python = str(self.server.hosting_python())
        p = self.server.run_as(python, "-m", "gitclaim", "hooks", "install", "--server", str(self.remote.path),
                               *args, "--json")  # fmt: skip
        assert p.returncode == 0, p.stdout + p.stderr
        result: dict[str, Any] = json.loads(p.stdout)["result"]
        return result


def make_site(gitolite: Gitolite, tmp_path: Path, rules: dict[str, str]) -> Site:
    """A new gitolite repository under ``rules`` with a store that agent-a made, holding task ``one``."""
    remote = gitolite.allow(repo_name(tmp_path, "gl"), rules)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text(gitolite.known_hosts_line)
    s = Site(gitolite, remote, home, tmp_path)
    assert s.gitclaim("agent-a", "init")[0] == 0
    assert s.gitclaim("agent-a", "add", "One", "--id", "one")[0] == 0
    return s


@pytest.fixture
def site(gitolite: Gitolite, tmp_path: Path) -> Site:
    """A gitolite repository where agent-a and agent-b may push anything (no gitclaim hook yet)."""
    return make_site(gitolite, tmp_path, {"agent-a": "RW+", "agent-b": "RW+"})
