"""Claim latency by transport: ``python benchmarks/bench_transports.py [--samples N] [--quick]``.

In-process ``Store.claim`` (the public API, one long-lived Store per clone)
over every real transport gitclaim speaks, all on loopback:

  path          a bare repository reached by its path
  daemon        git daemon (git://)                      <- the baseline
  http          smart HTTP: nginx + fcgiwrap + git http-backend
  https-token   the same over TLS (a private CA) with basic auth, the password in GITCLAIM_TOKEN
  https-helper  the same, the password from a git credential helper (`store --file=...`)
  ssh           sshd with a git-shell user, key login (GITCLAIM_SSH_KEY)

The servers are the test suite's, from tests/servers.py (GitDaemon, GitHttp,
GitSshd), so the benchmark measures exactly what the tests exercise. Per
transport an admin clone seeds a store with one ``Store.add_many``; a
separate agent clone then claims distinct tasks one at a time. After two
untimed warm-ups per transport, the transports take turns round by round (one
claim each, the order rotated every round), so that they all see the same
noise. The headline is each transport's median as a ratio to the git daemon
median of the same run; ``--transports`` picks a subset (daemon always runs).

ssh needs root (GitSshd creates the git-shell user ``gitclaim`` if missing),
openssh-server and git-shell; http(s) need nginx, fcgiwrap and openssl. A
transport whose server cannot start is reported as not run (exit status 1).

HOME and git's configuration point into one temporary folder, removed at the
end, also after an error, Ctrl-C or SIGTERM; every server is stopped.
See benchmarks/README.md for how to read the output.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import Any

import bench_common as bc  # beside this script; it imports no gitclaim, and puts the root on sys.path

from tests import servers  # the test suite's servers; no pygit2, no gitclaim

TRANSPORTS = ("path", "daemon", "http", "https-token", "https-helper", "ssh")
BASELINE = "daemon"
WARMUPS = 2
SPARE = 2  # tasks seeded beyond what the samples use


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/bench_transports.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="a fast smoke run (under 30 s): 10 claims per transport")
    p.add_argument("--samples", type=int, default=0, help="timed claims per transport (default 40; quick 10)")
    p.add_argument(
        "--transports",
        default=",".join(TRANSPORTS),
        help=f"comma-separated subset of {', '.join(TRANSPORTS)} (default: all; {BASELINE} always runs)",
    )
    a = p.parse_args(argv)
    a.samples = a.samples or (10 if a.quick else 40)
    if a.samples < 1:
        p.error("--samples must be at least 1")
    chosen = {x.strip() for x in a.transports.split(",") if x.strip()}
    unknown = chosen - set(TRANSPORTS)
    if unknown:
        p.error(f"unknown transport(s) {', '.join(sorted(unknown))}; choose from {', '.join(TRANSPORTS)}")
    a.transports = [t for t in TRANSPORTS if t in chosen | {BASELINE}]
    a.tasks = max(50, a.samples + WARMUPS + SPARE)
    return a


# --- signals -------------------------------------------------------------------
# Most of a claim runs inside libgit2, which calls back into Python (pygit2's
# cffi callbacks). An exception raised there by a signal handler is printed and
# dropped ("Exception ignored from cffi callback") and the run would go on. So
# Ctrl-C and SIGTERM only set a flag, checked between claims and between set-up
# steps (each bounded); a second signal raises at once. The handler restarts
# interrupted system calls (siginterrupt False): libgit2 takes EINTR for an
# error, and would abandon a push half-way while the server still writes.


class _Interrupt:
    requested = False


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _Interrupt.requested:
        raise KeyboardInterrupt
    _Interrupt.requested = True


def catch_signals() -> dict[int, Any]:
    old: dict[int, Any] = {}
    for s in (signal.SIGINT, signal.SIGTERM):
        old[s] = signal.signal(s, _on_signal)
        signal.siginterrupt(s, False)
    return old


def checkpoint() -> None:
    if _Interrupt.requested:
        raise KeyboardInterrupt


# --- one transport: a seeded remote and the agent's Store on its own clone ---------


@dataclass
class Lane:
    name: str
    remote: servers.Remote
    store: Any  # gitclaim.Store
    token: str | None  # GITCLAIM_TOKEN while this lane runs (None: unset)
    ids: list[str]
    times: list[float] = field(default_factory=list)
    retries: list[int] = field(default_factory=list)
    last_commit: str | None = None

    def claim(self, agent: str) -> float:
        checkpoint()
        if self.token is None:
            os.environ.pop("GITCLAIM_TOKEN", None)
        else:
            os.environ["GITCLAIM_TOKEN"] = self.token
        task = self.ids.pop(0)
        t = time.perf_counter()
        got = self.store.claim(task)
        took = time.perf_counter() - t
        if not (got.changed and got.task.holder == agent and got.commit):
            raise RuntimeError(f"{self.name}: the claim of {task} did not take: {got.to_json()}")
        self.retries.append(got.retries)
        self.last_commit = got.commit
        return took


class Servers:
    """The servers we started, each stopped exactly once at the end."""

    def __init__(self) -> None:
        self.running: list[Any] = []

    def start(self, make: Callable[[], Any]) -> Any:
        checkpoint()
        server = make()
        self.running.append(server)  # before anything can raise: it will be stopped
        checkpoint()
        return server

    def stop_all(self) -> None:
        while self.running:
            server = self.running.pop()
            with contextlib.suppress(Exception):  # cleanup must go on
                server.stop()


def seed(remote: servers.Remote, root: Path, n: int, token: str | None) -> list[str]:
    from gitclaim import Store

    if token is None:
        os.environ.pop("GITCLAIM_TOKEN", None)
    else:
        os.environ["GITCLAIM_TOKEN"] = token
    admin = Store(servers.clone(remote, root / "admin"), agent="admin")
    admin.init()
    ids = [f"t{i:03d}" for i in range(n)]
    admin.add_many([{"title": f"bench task {i}", "id": i} for i in ids])
    return ids


def build_lanes(args: argparse.Namespace, env: Any, running: Servers, agent: str) -> tuple[list[Lane], list[str]]:
    """Start the servers, seed one store per transport, clone for the agent.
    Returns the lanes and the transports that could not be set up."""
    import pygit2
    from pygit2.enums import Option

    from gitclaim import Store

    home = Path(os.environ["HOME"])
    token = servers.HTTPS_USERS["x-access-token"]
    lanes: list[Lane] = []
    not_run: list[str] = []
    https: Any = None
    for name in args.transports:
        bc.progress(f"{name}: starting the server and seeding {args.tasks} tasks")
        root = env.tmp(name)
        try:
            lane_token: str | None = None
            if name == "path":
                remote = servers.make_remote_path(root)
            elif name == "daemon":
                remote = running.start(partial(servers.GitDaemon, root / "repos")).remote("bench")
            elif name == "http":
                remote = running.start(partial(servers.GitHttp, root)).remote("bench")
            elif name in ("https-token", "https-helper"):
                if https is None:
                    https = running.start(partial(servers.GitHttp, root, tls=True))
                    os.environ["GITCLAIM_CA_BUNDLE"] = str(https.ca)
                remote = https.remote(name)
                lane_token = token if name == "https-token" else None
            elif name == "ssh":
                sshd = running.start(partial(servers.GitSshd, root))
                ssh_dir = home / ".ssh"
                ssh_dir.mkdir(mode=0o700, exist_ok=True)
                (ssh_dir / "known_hosts").write_text(sshd.known_hosts_line)
                os.environ["GITCLAIM_SSH_KEY"] = str(sshd.client_key)
                pygit2.option(Option.SET_HOMEDIR, str(home))  # libgit2 reads known_hosts there
                remote = sshd.remote("bench")
            else:
                raise ValueError(name)
            # the admin seeds https with the token, whichever way the agent logs in
            ids = seed(remote, root, args.tasks, token if name.startswith("https") else None)
            agent_clone = servers.clone(remote, root / "agent")
            if name == "https-helper":
                creds = root / "git-credentials"
                creds.write_text(f"https://agent:{servers.HTTPS_USERS['agent']}@127.0.0.1:{https.port}\n")
                creds.chmod(0o600)
                servers.git("config", "credential.helper", f"store --file={creds}", cwd=agent_clone)
            lanes.append(Lane(name, remote, Store(agent_clone, agent=agent), lane_token, ids))
            checkpoint()
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:
            checkpoint()  # a server that Ctrl-C (sent to our whole process group) already stopped
            if name == BASELINE:
                raise RuntimeError(f"the baseline ({BASELINE}) could not be set up: {e}") from e
            if not isinstance(e, servers.MissingTool):  # unexpected: show where (MissingTool says what to install)
                traceback.print_exc()
            not_run.append(f"{name}: {type(e).__name__}: {e}")
    return lanes, not_run


def measure(lanes: list[Lane], samples: int, agent: str) -> dict[str, list[float]]:
    """Warm-ups, then ``samples`` rounds of one claim per lane, order rotated.
    Returns, per lane, the ratio to the baseline's claim of the same round."""
    for lane in lanes:
        for _ in range(WARMUPS):  # first fetch, opening the repository, TLS/credential set-up
            lane.claim(agent)
    base = next(lane for lane in lanes if lane.name == BASELINE)
    pair: dict[str, list[float]] = {lane.name: [] for lane in lanes}
    for r in range(samples):
        if r % 10 == 0:
            bc.progress(f"round {r + 1}/{samples}")
        k = r % len(lanes)
        got: dict[str, float] = {}
        for lane in lanes[k:] + lanes[:k]:
            got[lane.name] = lane.claim(agent)
            lane.times.append(got[lane.name])
        for name, t in got.items():
            pair[name].append(bc.ratio(t, got[base.name]))
    return pair


def report(lanes: list[Lane], pair: dict[str, list[float]], args: argparse.Namespace) -> list[str]:
    problems: list[str] = []
    base_med = bc.median(next(lane for lane in lanes if lane.name == BASELINE).times)
    rows = []
    for lane in lanes:
        med = bc.median(lane.times)
        lo, hi = bc.iqr(pair[lane.name])
        rows.append(
            [
                lane.name + (" (baseline)" if lane.name == BASELINE else ""),
                len(lane.times),
                bc.ms(med),
                bc.ms(bc.quantile(lane.times, 0.9)),
                bc.rx(bc.ratio(med, base_med)),
                "-" if lane.name == BASELINE else f"{lo:.2f}-{hi:.2f}",
                max(lane.retries, default=0),
            ]
        )
        if any(lane.retries):
            problems.append(f"{lane.name}: {sum(1 for x in lane.retries if x)} claim(s) needed retries")
        tip = lane.remote.ref()
        if tip != lane.last_commit:
            problems.append(f"{lane.name}: the remote's store branch is {tip}, not the last claim {lane.last_commit}")
    bc.heading(f"claim latency by transport ({args.samples} claims each, {args.tasks}-task stores)")
    print(
        bc.table(
            ["transport", "samples", "median ms", "p90 ms", f"ratio vs {BASELINE}", "pair-ratio IQR", "max retries"],
            rows,
        )
    )
    by = {lane.name: lane for lane in lanes}
    if "https-token" in by and "https-helper" in by:
        tok, hel = by["https-token"], by["https-helper"]
        per_round = [bc.ratio(h, t) for h, t in zip(hel.times, tok.times, strict=True)]
        lo, hi = bc.iqr(per_round)
        bc.note(
            f"https-helper vs https-token: {bc.rx(bc.ratio(bc.median(hel.times), bc.median(tok.times)))}"
            f" (pair-ratio IQR {lo:.2f}-{hi:.2f}); the helper is asked once per process, then remembered"
        )
    bc.note(f"ratio = median / median of {BASELINE}, same run, interleaved round by round; compare ratios")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env, cleanup = bc.make_env(keep=False, quick=args.quick)
    running = Servers()
    handlers = catch_signals()
    started = time.monotonic()
    problems: list[str] = []
    not_run: list[str] = []
    try:
        bc.isolate_env(env.root / "home")  # before anything imports pygit2
        for var in ("GITCLAIM_TOKEN", "GITCLAIM_CA_BUNDLE", "GITCLAIM_SSH_KEY", "SSH_AUTH_SOCK"):
            os.environ.pop(var, None)
        # ssh's bare repositories belong to the git-shell user: let our git read them (as the tests do)
        os.environ.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*"})
        import pygit2
        from pygit2.enums import Option

        pygit2.option(Option.SET_HOMEDIR, os.environ["HOME"])
        print(f"gitclaim claim latency by transport{' (quick)' if args.quick else ''}: {', '.join(args.transports)}")
        print(
            f"python {platform.python_version()}, pygit2 {version('pygit2')} (libgit2 {pygit2.LIBGIT2_VERSION}),"
            f" {bc.git('--version').strip()}, {os.cpu_count()} CPUs, {platform.platform()}"
        )
        print("every figure is a median over repeated samples; compare ratios, not absolute times")
        agent = "agent-bench"
        lanes, not_run = build_lanes(args, env, running, agent)
        pair = measure(lanes, args.samples, agent)
        checkpoint()
        problems = report(lanes, pair, args)
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    except Exception as e:
        if _Interrupt.requested:  # e.g. a server that Ctrl-C had already stopped
            print("\ninterrupted; cleaning up", file=sys.stderr)
            return 130
        traceback.print_exc()
        problems.append(f"{type(e).__name__}: {e}")
    finally:
        for s in handlers:  # the clean-up itself is not to be interrupted (it takes a few seconds at most)
            signal.signal(s, signal.SIG_IGN)
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            running.stop_all()
        cleanup()  # removes the temporary folder, HOME included
        for _ in range(20):  # a server's last child (receive-pack, gc --auto) may still be writing there
            if not env.root.exists():
                break
            time.sleep(0.1)
            shutil.rmtree(env.root, ignore_errors=True)
        for s, h in handlers.items():
            signal.signal(s, h)
    for n in not_run:
        print(f"  NOT RUN {n}")
    for p in problems:
        print(f"  PROBLEM {p}")
    print(f"  total time {time.monotonic() - started:.0f} s")
    return 1 if problems or not_run else 0


if __name__ == "__main__":
    sys.exit(main())
