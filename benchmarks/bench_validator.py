"""Validator cost vs push cost on a 10,000-task store.

Run: python benchmarks/bench_validator.py [N_TASKS] [RUNS]
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import bench_common  # noqa: F401  (it puts the repository root on sys.path, for tests.servers)

from gitclaim.enforce import check_new_commit, check_push
from gitclaim.git import Repo
from gitclaim.ids import STORE_FILE, task_path
from gitclaim.install import install
from gitclaim.model import Claim, State, StoreConfig, Task, dump_store_config, dump_task
from tests.servers import GitDaemon, git, make_bare

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-enforce-"))
    os.environ.update(HOME=str(root), GIT_CONFIG_NOSYSTEM="1")
    served = root / "srv"
    served.mkdir()
    for name in ("plain", "hooked"):
        make_bare(served / f"{name}.git")
    wc = root / "wc"
    git("init", "-q", "-b", "main", str(wc))
    repo = Repo(wc)

    t = time.perf_counter()
    files = {STORE_FILE: dump_store_config(StoreConfig(created_at=T0, created_by="admin"))}
    tasks = [Task(id=f"task-{i:05d}", title=f"task {i}", created_at=T0, created_by="admin") for i in range(N)]
    files.update({task_path(x.id): dump_task(x) for x in tasks})
    base = repo.write_commit(None, files, "init + tasks", "admin", "admin@x", T0)
    repo.set_ref("refs/heads/gitclaim", base, "bench")
    build_s = time.perf_counter() - t

    # one-task commits: each claims another task (distinct objects per push)
    commits = []
    for i in range(RUNS):
        x = tasks[i]
        claimed = x.evolve(state=State.ACTIVE, claim=Claim("bob", datetime.now(UTC).replace(microsecond=0)))
        commits.append(repo.write_commit(base, {task_path(x.id): dump_task(claimed)}, "claim", "bob", "bob@x", T0))

    now = datetime.now(UTC)
    assert check_new_commit(repo, base, commits[0], now=now, seen={}) == []
    validator = []
    for c in commits:
        t = time.perf_counter()
        bad = check_new_commit(repo, base, c, now=now, seen={})
        validator.append(time.perf_counter() - t)
        assert bad == []
    whole = []
    for c in commits:
        t = time.perf_counter()
        bad = check_push(repo, base, c, branch="gitclaim", now=now, seen={})
        whole.append(time.perf_counter() - t)
        assert bad == []

    install(served / "hooked.git" / "hooks", "pre-receive")
    daemon = GitDaemon(served)
    try:
        results: dict[str, list[float]] = {}
        for name in ("plain", "hooked"):
            url = daemon.url(f"{name}.git")
            git("push", "-q", url, f"{base}:refs/heads/gitclaim", cwd=wc)
            times = []
            for c in commits:
                t = time.perf_counter()
                r = subprocess.run(["git", "push", "-q", url, f"{c}:refs/heads/gitclaim"], cwd=wc, capture_output=True)
                times.append(time.perf_counter() - t)
                assert r.returncode == 0, r.stderr
                git("update-ref", "refs/heads/gitclaim", base, cwd=served / f"{name}.git")
            results[name] = times
        # the client hook: same pushes from the clone with `pre-push` installed, to the plain remote
        install(wc / ".git" / "hooks", "pre-push")
        git("config", "gitclaim.branch", "gitclaim", cwd=wc)
        url = daemon.url("plain.git")
        times = []
        for c in commits:
            t = time.perf_counter()
            r = subprocess.run(["git", "push", "-q", url, f"{c}:refs/heads/gitclaim"], cwd=wc, capture_output=True)
            times.append(time.perf_counter() - t)
            assert r.returncode == 0, r.stderr
            git("update-ref", "refs/heads/gitclaim", base, cwd=served / "plain.git")
        results["client-hook"] = times
        hook_alone = []
        for _ in range(RUNS):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import gitclaim.hook"], check=True)
            hook_alone.append(time.perf_counter() - t)
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)

    def ms(xs: list[float]) -> str:
        return f"median {statistics.median(xs) * 1000:8.2f} ms  (min {min(xs) * 1000:.2f}, max {max(xs) * 1000:.2f})"

    print(f"store: {N} tasks, built in {build_s:.1f}s; {RUNS} runs each; load {os.getloadavg()[0]:.1f}")
    print(f"check_new_commit (in-process, one-task commit): {ms(validator)}")
    print(f"check_push (in-process, same, incl. ancestry):  {ms(whole)}")
    print(f"git push to git daemon, no hook:                {ms(results['plain'])}")
    print(f"git push to git daemon, server pre-receive:     {ms(results['hooked'])}")
    print(f"git push, client pre-push hook, no server hook: {ms(results['client-hook'])}")
    print(f"python startup + import gitclaim.hook:          {ms(hook_alone)}")


if __name__ == "__main__":
    main()
