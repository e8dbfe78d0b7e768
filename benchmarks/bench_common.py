"""Shared parts of the benchmarks: an isolated environment, temporary folders,
git daemon on loopback, bare remotes and clones, statistics and tables.

Nothing here imports gitclaim at module level: ``run.py`` first points HOME
and git's configuration at a temporary folder, then imports the benchmarks,
so libgit2 never reads the developer's own git config.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GIT = shutil.which("git") or "git"
HERE = Path(__file__).resolve().parent

# --- environment ------------------------------------------------------------


def isolate_env(home: Path) -> None:
    """Point HOME and git's identity/config at ``home`` for us and every child."""
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "bench",
            "GIT_AUTHOR_EMAIL": "bench@example.invalid",
            "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@example.invalid",
        }
    )
    for var in ("GITCLAIM_AGENT", "GITCLAIM_DEBUG", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        os.environ.pop(var, None)


def gitclaim_command() -> tuple[list[str], str]:
    """How to start gitclaim as its own process: the console script beside
    this interpreter if there is one, else ``python -m gitclaim``."""
    script = Path(sys.executable).parent / "gitclaim"
    if script.exists() and os.access(script, os.X_OK):
        return [str(script)], str(script)
    return [sys.executable, "-m", "gitclaim"], f"{sys.executable} -m gitclaim"


# --- processes we start, so that we can always stop them ----------------------


class Processes:
    """Every long-lived child we start, in its own process group, killed at cleanup."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[Any]] = []

    def popen(self, args: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        p = subprocess.Popen(list(args), start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen[Any], grace: float = 5.0) -> None:
        if p.poll() is None:
            _signal_group(p, signal.SIGTERM)
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                _signal_group(p, signal.SIGKILL)
                p.wait(grace)
        else:
            # the leader is gone; its children (e.g. git daemon's forks) may not be
            _signal_group(p, signal.SIGKILL)
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self) -> None:
        for p in list(self.procs):
            with contextlib.suppress(Exception):  # cleanup must go on
                self.stop(p, grace=2.0)


def _signal_group(p: subprocess.Popen[Any], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, sig)  # start_new_session: the group id is the child's pid


# --- git --------------------------------------------------------------------


def git(*args: str, cwd: Path | str | None = None, check: bool = True, timeout: float = 600) -> str:
    r = subprocess.run([GIT, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def make_bare(path: Path) -> Path:
    git("init", "-q", "--bare", str(path))
    return path


def make_clone(url: str, dest: Path, *, code: bool = False) -> Path:
    """A clone acting as one agent's machine: ``git init`` + ``remote add``.

    With ``code``, also a commit on ``main`` and an uncommitted file, so that a
    benchmark can check it left the agent's checkout alone.
    """
    dest.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=dest)
    git("remote", "add", "origin", url, cwd=dest)
    if code:
        (dest / "README.md").write_text("the agent's code\n")
        git("add", "README.md", cwd=dest)
        git("commit", "-q", "-m", "code", cwd=dest)
        (dest / "work-in-progress.txt").write_text("uncommitted\n")
    return dest


def checkout_state(clone: Path) -> tuple[str, str, str]:
    """HEAD, the index's tree and ``git status``: what "undisturbed" means."""
    return (
        git("rev-parse", "HEAD", cwd=clone).strip(),
        git("write-tree", cwd=clone).strip(),
        git("status", "--porcelain", "--untracked-files=all", cwd=clone),
    )


class GitDaemon:
    """``git daemon`` on 127.0.0.1 serving every repository under ``base``."""

    def __init__(self, base: Path, procs: Processes) -> None:
        self.base = base
        self.procs = procs
        self.port = _free_port()
        self.proc = procs.popen(
            [
                GIT,
                "daemon",
                "--reuseaddr",
                "--listen=127.0.0.1",
                f"--port={self.port}",
                f"--base-path={base}",
                "--export-all",
                "--enable=receive-pack",
                str(base),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("git daemon exited at start") from None
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("git daemon did not start listening within 10 s")

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self.procs.stop(self.proc)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Remote:
    """A bare repository and the URL clones use to reach it."""

    transport: str  # "path" or "daemon"
    path: Path
    url: str


@dataclass
class Env:
    """What every benchmark gets: a temporary root, the daemon, the children."""

    root: Path
    procs: Processes
    quick: bool
    _daemon: GitDaemon | None = None
    _n: int = 0

    def tmp(self, name: str) -> Path:
        self._n += 1
        p = self.root / f"{self._n:03d}-{name}"
        p.mkdir(parents=True)
        return p

    @property
    def daemon(self) -> GitDaemon:
        if self._daemon is None:
            base = self.root / "daemon"
            base.mkdir(exist_ok=True)
            self._daemon = GitDaemon(base, self.procs)
        return self._daemon

    def remote(self, transport: str, name: str) -> Remote:
        """A new empty bare remote reached by path or through git daemon."""
        if transport == "path":
            bare = make_bare(self.tmp(name) / "remote.git")
            return Remote("path", bare, str(bare))
        if transport == "daemon":
            bare = make_bare(self.daemon.base / f"{name}-{self._n:03d}.git")
            self._n += 1
            return Remote("daemon", bare, self.daemon.url(bare.name))
        raise ValueError(transport)

    def close(self) -> None:
        self.procs.stop_all()
        self._daemon = None


def make_env(keep: bool, quick: bool) -> tuple[Env, Callable[[], None]]:
    root = Path(tempfile.mkdtemp(prefix="gitclaim-bench-"))
    env = Env(root=root, procs=Processes(), quick=quick)

    def cleanup() -> None:
        env.close()
        if keep:
            print(f"\nkept the temporary folder: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    return env, cleanup


# --- statistics ---------------------------------------------------------------


def median(xs: Iterable[float]) -> float:
    xs = list(xs)
    return statistics.median(xs) if xs else float("nan")


def quantile(xs: Iterable[float], q: float) -> float:
    s = sorted(xs)
    if not s:
        return float("nan")
    i = min(len(s) - 1, max(0, round(q * (len(s) - 1))))
    return s[i]


def iqr(xs: Iterable[float]) -> tuple[float, float]:
    s = list(xs)
    return quantile(s, 0.25), quantile(s, 0.75)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


@dataclass
class Timer:
    samples: list[float] = field(default_factory=list)

    def time(self, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        out = fn()
        self.samples.append(time.perf_counter() - t)
        return out


def ms(x: float) -> str:
    if x != x:  # nan
        return "-"
    return f"{x * 1000:.1f}" if x < 10 else f"{x * 1000:.0f}"


def secs(x: float) -> str:
    return "-" if x != x else f"{x:.2f}"


def rx(x: float) -> str:
    return "-" if x != x else f"{x:.2f}x"


# --- output -------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, indent: str = "  ") -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def fmt(r: Sequence[str]) -> str:
        # first column left-aligned (labels), the rest right-aligned (numbers)
        parts = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        return indent + "  ".join(parts).rstrip()

    lines = [fmt(cells[0]), indent + "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in cells[1:]]
    return "\n".join(lines)


def heading(text: str) -> None:
    print()
    print(text)
    print("=" * len(text), flush=True)


def note(text: str) -> None:
    print(f"  {text}", flush=True)


SHOW_PROGRESS = sys.stderr.isatty()


def progress(text: str) -> None:
    """A line on stderr while a benchmark works, if stderr is a terminal (not part of the report)."""
    if SHOW_PROGRESS:
        print(f"  .. {text}", file=sys.stderr, flush=True)
