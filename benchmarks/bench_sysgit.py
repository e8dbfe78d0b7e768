"""libgit2 vs the system's git, daemon vs ssh, 100 vs 100,000 tasks:
``python benchmarks/bench_sysgit.py [--samples N] [--quick]``.

Whole-process ``gitclaim claim ID --json`` (what an agent runs), one fresh task
per sample, from a clone that is up to date (one push a claim). Lanes:

  daemon/libgit2         git daemon, the in-process transport       <- the baseline
  daemon/git             git daemon, the system's git
  ssh/libgit2            sshd with a git-shell user, libssh2 (GITCLAIM_SSH_KEY)
  ssh/git                sshd, OpenSSH through git, every push its own session (gitclaim.sshShare false)
  ssh/git+mux            sshd, OpenSSH with gitclaim's ControlMaster/ControlPersist: one shared session

each at 100 tasks and (``--big``, default 100,000; quick 10,000) tasks. The
lanes take turns sample by sample, the order rotated every round, after two
untimed warm-ups each. Reported: medians, IQR, and ratios measured in this run:
ssh over daemon per transport, and the big store over the small one per lane.

Needs root (GitSshd creates the git-shell user ``gitclaim``), openssh-server,
git-shell and git daemon. Everything is on loopback in one temporary folder,
removed at the end; HOME points into it. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import bench_common as bc  # beside this script: puts the repository root on sys.path
from bench_scale import _seed_pygit2

from tests import servers

KINDS = ("daemon/libgit2", "daemon/git", "ssh/libgit2", "ssh/git", "ssh/git+mux")
BASELINE = "daemon/libgit2"


@dataclass
class Lane:
    kind: str
    n: int
    clone: Path
    env: dict[str, str]
    pool: list[str]
    samples: list[float] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.kind} @{self.n:,}"

    def claim(self) -> float:
        task = self.pool.pop()
        cmd, _ = bc.gitclaim_command()
        t = time.perf_counter()
        r = subprocess.run([*cmd, "-C", str(self.clone), "claim", task, "--agent", "bench", "--json"],
                           capture_output=True, text=True, env=self.env, timeout=120)  # fmt: skip
        took = time.perf_counter() - t
        if r.returncode != 0:
            raise RuntimeError(f"{self.name}: claim {task} failed ({r.returncode}): {r.stdout}{r.stderr}")
        return took


def seed(root: Path, n: int) -> Path:
    """A bare repository holding an initialised store of ``n`` tasks, repacked as a server's gc would."""
    from gitclaim import Store

    bare = servers.make_bare(root / f"seed-{n}.git")
    admin = Store(bc.make_clone(str(bare), root / f"seed-admin-{n}"), agent="admin")
    init = admin.init()
    _seed_pygit2(bare, init.commit, [f"s{i:06d}" for i in range(n)])
    servers.git("repack", "-adq", cwd=bare)
    return bare


def serve(bare: Path, kind: str, daemon: servers.GitDaemon, sshd: servers.GitSshd, tag: str) -> str:
    """A copy of ``bare`` behind the lane's server; its URL."""
    if kind.startswith("daemon"):
        dest = daemon.base / f"{tag}.git"
        shutil.copytree(bare, dest, symlinks=True)
        return daemon.url(dest.name)
    dest = sshd.repos / f"{tag}.git"
    shutil.copytree(bare, dest, symlinks=True)
    for d, _, files in os.walk(dest):
        os.chown(d, sshd.uid, sshd.gid)
        for f in files:
            os.chown(os.path.join(d, f), sshd.uid, sshd.gid)
    return f"ssh://{servers.SSH_USER}@127.0.0.1:{sshd.port}{dest}"


def lane(kind: str, n: int, bare: Path, root: Path, daemon: servers.GitDaemon, sshd: servers.GitSshd,
         ssh_cfg: Path) -> Lane:  # fmt: skip
    tag = f"{kind.replace('/', '-').replace('+', '-')}-{n}"
    url = serve(bare, kind, daemon, sshd, tag)
    path = bc.make_clone(url, root / f"clone-{tag}")
    servers.git("-c", f"core.sshCommand=ssh -F {ssh_cfg}", "fetch", "-q", "origin",
                "+refs/heads/gitclaim:refs/remotes/origin/gitclaim", cwd=path)  # fmt: skip
    transport = "git" if "/git" in kind else "libgit2"
    servers.git("config", "gitclaim.transport", transport, cwd=path)
    servers.git("config", "core.sshCommand", f"ssh -F {ssh_cfg}", cwd=path)
    if kind == "ssh/git":
        servers.git("config", "gitclaim.sshShare", "false", cwd=path)
    env = dict(os.environ, GITCLAIM_SSH_KEY=str(sshd.client_key)) if kind == "ssh/libgit2" else dict(os.environ)
    env.pop("GITCLAIM_TRANSPORT", None)
    pool = [f"s{i:06d}" for i in range(n)]
    pool = pool[:: max(1, n // 200)][:200]  # spread over the fan-out folders
    return Lane(kind, n, path, env, pool)


def run(samples: int, big: int, root: Path) -> list[Lane]:
    daemon = servers.GitDaemon(root / "daemon")
    (root / "sshd-root").mkdir()
    sshd = servers.GitSshd(root / "sshd-root")
    try:
        home = Path(os.environ["HOME"])
        (home / ".ssh").mkdir(mode=0o700, exist_ok=True)
        (home / ".ssh" / "known_hosts").write_text(sshd.known_hosts_line)  # for libssh2 (reads $HOME)
        ssh_cfg = root / "ssh_config"  # for OpenSSH (reads the passwd home): its own config
        ssh_cfg.write_text(f"Host *\n  UserKnownHostsFile {home / '.ssh' / 'known_hosts'}\n"
                           f"  IdentityFile {sshd.client_key}\n  IdentitiesOnly yes\n")  # fmt: skip
        os.environ["GITCLAIM_SSH_CONTROL_DIR"] = str(Path(servers.tempfile.mkdtemp(prefix="gcb-", dir="/tmp")))
        lanes: list[Lane] = []
        for n in (100, big):
            bc.progress(f"seeding {n:,} tasks")
            bare = seed(root, n)
            lanes += [lane(k, n, bare, root, daemon, sshd, ssh_cfg) for k in KINDS]
        for ln in lanes:
            for _ in range(2):
                ln.claim()  # warm-ups: page cache, the first ssh master
        for r in range(samples):
            bc.progress(f"round {r + 1}/{samples}")
            order = lanes[r % len(lanes) :] + lanes[: r % len(lanes)]
            for ln in order:
                ln.samples.append(ln.claim())
        return lanes
    finally:
        for sock in Path(os.environ.get("GITCLAIM_SSH_CONTROL_DIR", "/nonexistent")).glob("*"):
            subprocess.run(["ssh", "-O", "exit", "-o", f"ControlPath={sock}", "x"], capture_output=True, timeout=10)
        sshd.stop()
        daemon.stop()


def report(lanes: list[Lane], big: int) -> None:
    by = {(ln.kind, ln.n): bc.median(ln.samples) for ln in lanes}
    base = by[(BASELINE, 100)]
    bc.heading("whole-process claim, medians")
    rows = [[ln.name, bc.ms(bc.median(ln.samples)), "-".join(bc.ms(x) for x in bc.iqr(ln.samples)),
             bc.rx(bc.ratio(bc.median(ln.samples), base))] for ln in lanes]  # fmt: skip
    print(bc.table(["lane", "median ms", "IQR ms", f"vs {BASELINE} @100"], rows))
    bc.heading("ratios (target: ssh <= 1.3x daemon; big <= 1.5x 100)")
    rows = []
    for kind in KINDS:
        ssh_vs = (
            "-"
            if not kind.startswith("ssh")
            else " / ".join(bc.rx(bc.ratio(by[(kind, 100)], by[(d, 100)])) for d in ("daemon/libgit2", "daemon/git"))
        )
        rows.append([kind, ssh_vs, bc.rx(bc.ratio(by[(kind, big)], by[(kind, 100)]))])
    print(bc.table(["lane", "@100 vs daemon/libgit2 / daemon/git", f"{big:,} vs 100 tasks"], rows))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/bench_sysgit.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--quick", action="store_true", help="a smoke run: 4 samples, 10,000 tasks as the big store")
    p.add_argument("--samples", type=int, default=0, help="claims per lane (default 15; quick 4)")
    p.add_argument("--big", type=int, default=0, help="tasks in the big store (default 100,000; quick 10,000)")
    a = p.parse_args(argv)
    samples = a.samples or (4 if a.quick else 15)
    big = a.big or (10_000 if a.quick else 100_000)
    root = Path(servers.tempfile.mkdtemp(prefix="gitclaim-bench-"))
    bc.isolate_env(root / "home")
    try:
        lanes = run(samples, big, root)
    except servers.MissingTool as e:
        print(f"not run: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"git {servers.git('--version').split()[-1]}, {samples} samples a lane, commit "
          f"{servers.git('rev-parse', '--short', 'HEAD', cwd=bc.ROOT).strip()}")  # fmt: skip
    report(lanes, big)
    return 0


if __name__ == "__main__":
    sys.exit(main())
