"""History is read completely, found by the task's file, and tells each task's
own move: no silent cap, whatever the age of the store."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from gitclaim import Store

from .servers import Remote, git

LATER = 2600  # more than any window the history once had (2,000 commits)


def _pile_on(remote: Remote, work: Path, n: int) -> None:
    """``n`` commits by hand on the store branch that touch no task (a notes file)."""
    git("fetch", "-q", remote.url, "gitclaim", cwd=work)
    tip = git("rev-parse", "FETCH_HEAD", cwd=work).strip()
    stream = [f"reset refs/heads/pile\nfrom {tip}\n"]
    for i in range(n):
        body = f"note {i}\n"
        stream.append(
            f"commit refs/heads/pile\ncommitter Human <h@example.invalid> {1767225600 + i} +0000\n"
            f"data 7\nnote {i % 10}\nM 100644 inline notes.txt\ndata {len(body)}\n{body}\n"
        )
    subprocess.run(["git", "fast-import", "--quiet"], input="".join(stream).encode(), cwd=work, check=True)
    git("push", "-q", remote.url, "pile:refs/heads/gitclaim", cwd=work)


def test_an_old_claim_is_in_the_history_and_a_rerun_still_converges(
    path_remote: Remote, store_factory: Callable[..., Store], tmp_path: Path
) -> None:
    s = store_factory(path_remote, "agent-1")
    s.init()
    s.add("Old", task_id="old")
    s.claim("old")
    s.done("old")
    _pile_on(path_remote, Path(str(s.path)), LATER)
    view = s.show("old")
    assert [e.op for e in view.history] == ["done", "claim", "add"]
    assert view.history_cut is False
    again = s.done("old")  # the answer of the first was lost: run it again
    assert again.changed is False and again.commit is None
    log = s.log("old")
    assert [e.op for e in log.entries] == ["done", "claim", "add"] and not log.cut
    few = s.log(limit=2)
    assert len(few.entries) == 2 and few.cut


def test_retry_records_each_cleared_task_with_its_own_move(
    path_remote: Remote, store_factory: Callable[..., Store]
) -> None:
    s = store_factory(path_remote, "agent-1")
    s.init()
    s.add("Base", task_id="base")
    s.add("Down", task_id="down", depends_on=["base"])
    s.claim("base")
    s.done("base")
    s.claim("down")
    s.retry("base")
    (retry_for_down, *_) = s.log("down").entries
    assert retry_for_down.op == "retry"
    assert (retry_for_down.from_state, retry_for_down.to_state) == ("active", "todo")
    (retry_for_base, *_) = s.log("base").entries
    assert (retry_for_base.from_state, retry_for_base.to_state) == ("done", "todo")


def test_a_commit_that_only_says_it_changed_a_task_is_not_in_its_history(
    path_remote: Remote, store_factory: Callable[..., Store]
) -> None:
    s = store_factory(path_remote, "agent-1")
    s.init()
    s.add("One", task_id="one")
    work = Path(str(s.path))
    git("fetch", "-q", "origin", "gitclaim", cwd=work)
    tree = git("rev-parse", "origin/gitclaim^{tree}", cwd=work).strip()
    parent = git("rev-parse", "origin/gitclaim", cwd=work).strip()
    msg = "done one by agent-1\n\nGitclaim-Op: done\nGitclaim-Task: one\nGitclaim-Agent: agent-1\n"
    commit = git("commit-tree", tree, "-p", parent, "-m", msg, cwd=work).strip()
    git("push", "-q", "origin", f"{commit}:refs/heads/gitclaim", cwd=work)
    assert [e.op for e in s.show("one").history] == ["add"]
