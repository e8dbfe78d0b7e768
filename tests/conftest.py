"""Shared fixtures: real repositories, real remotes, a real git daemon.

No mocks of git anywhere. Every test runs with HOME pointed at a temporary
folder, so nothing can read or write the developer's own git config.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

GIT = shutil.which("git") or "git"


def git(*args: str, cwd: Path | str | None = None, check: bool = True) -> str:
    r = subprocess.run([GIT, *args], cwd=cwd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r.stdout


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "test")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "test@example.invalid")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "test")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "test@example.invalid")
    monkeypatch.delenv("GITCLAIM_AGENT", raising=False)
    monkeypatch.delenv("GITCLAIM_DEBUG", raising=False)


@dataclass
class Remote:
    """A shared bare repository and the URL clones use to reach it."""

    path: Path
    url: str

    def ref(self, branch: str = "gitclaim") -> str | None:
        out = git("for-each-ref", "--format=%(objectname)", f"refs/heads/{branch}", cwd=self.path).strip()
        return out or None


def make_bare(path: Path) -> Path:
    git("init", "-q", "--bare", str(path))
    return path


@pytest.fixture
def path_remote(tmp_path: Path) -> Remote:
    bare = make_bare(tmp_path / "remote.git")
    return Remote(bare, str(bare))


class GitDaemon:
    def __init__(self, base: Path, port: int | None = None) -> None:
        """Start serving ``base`` (on ``port``, e.g. to bring a stopped server back)."""
        base.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.port = port or _free_port()
        self.proc = subprocess.Popen(
            [
                GIT, "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={self.port}",
                f"--base-path={base}", "--export-all", "--enable=receive-pack", "--informative-errors",
                str(base),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("git daemon exited at start") from None
                time.sleep(0.02)
        raise RuntimeError("git daemon did not start listening")

    def remote(self, name: str) -> Remote:
        bare = make_bare(self.base / f"{name}.git")
        return Remote(bare, f"git://127.0.0.1:{self.port}/{name}.git")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def git_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitDaemon]:
    d = GitDaemon(tmp_path_factory.mktemp("daemon"))
    yield d
    d.stop()


@pytest.fixture
def daemon_remote(git_daemon: GitDaemon, tmp_path: Path) -> Remote:
    return git_daemon.remote(f"r{abs(hash(str(tmp_path))) % 10**12}")


@pytest.fixture(params=["path", "daemon"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Remote:
    """The same test over a local-path remote and over git daemon on loopback."""
    if request.param == "path":
        return make_remote_path(tmp_path)
    daemon: GitDaemon = request.getfixturevalue("git_daemon")
    return daemon.remote(f"r{abs(hash(str(tmp_path))) % 10**12}")


def make_remote_path(tmp_path: Path) -> Remote:
    bare = make_bare(tmp_path / "remote.git")
    return Remote(bare, str(bare))


def clone(remote: Remote, dest: Path) -> Path:
    """A clone acting as one agent's machine. The shared repo may still be empty."""
    dest.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=dest)
    git("remote", "add", "origin", remote.url, cwd=dest)
    return dest


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
