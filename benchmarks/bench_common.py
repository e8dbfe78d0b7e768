"""Shared parts of the benchmarks: an isolated environment, temporary folders,
git daemon on loopback, bare remotes and clones, statistics and tables.

The servers and the git helpers are the test suite's (``tests/servers.py``):
importing this module puts the repository root on sys.path, so every
benchmark can ``import tests.servers`` (run as ``python benchmarks/x.py``,
sys.path[0] is benchmarks/).

Nothing here imports gitclaim at module level: ``run.py`` first points HOME
and git's configuration at a temporary folder, then imports the benchmarks,
so libgit2 never reads the developer's own git config.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for tests.servers

from tests.servers import GitDaemon, Remote, clone, git, make_remote_path, stop_group  # noqa: E402

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
        stop_group(p, grace)  # the group: also the leader's children (e.g. an agent's git)
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self) -> None:
        for p in list(self.procs):
            with contextlib.suppress(Exception):  # cleanup must go on
                self.stop(p, grace=2.0)


# --- git --------------------------------------------------------------------


def make_clone(url: str, dest: Path, *, code: bool = False) -> Path:
    """A clone acting as one agent's machine: ``git init`` + ``remote add``.

    With ``code``, also a commit on ``main`` and an uncommitted file, so that a
    benchmark can check it left the agent's checkout alone.
    """
    clone(url, dest)
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
            self._daemon = GitDaemon(self.root / "daemon")
        return self._daemon

    def remote(self, transport: str, name: str) -> Remote:
        """A new empty bare remote reached by path or through git daemon."""
        if transport == "path":
            return make_remote_path(self.tmp(name))
        if transport == "daemon":
            self._n += 1
            return self.daemon.remote(f"{name}-{self._n:03d}")
        raise ValueError(transport)

    def close(self) -> None:
        if self._daemon is not None:
            with contextlib.suppress(Exception):  # cleanup must go on
                self._daemon.stop()
            self._daemon = None
        self.procs.stop_all()


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
