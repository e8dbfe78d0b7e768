"""Data cannot break output: every string from the store prints literally, a
closed pipe is not a bug, and no view cuts the value it exists to show."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gitclaim import Store
from gitclaim.cli import main

from .servers import Remote, git

# rich markup, an unclosed and a stray closing tag, a trailing backslash, an emoji code
NASTY = ["[bold red]loud[/]", "[/nope]", "back\\", "[link=http://x]y", ":smile: [", "a [b] c"]


@pytest.fixture
def nasty(path_remote: Remote, store_factory: Callable[..., Store]) -> Path:
    s = store_factory(path_remote, "planner")
    s.init()
    s.add_many(
        [
            {
                "id": f"t{i}",
                "title": text,
                "description": text,
                "tags": [text.replace(" ", "")],
                "acceptance": [text],
                "mine": text,
            }
            for i, text in enumerate(NASTY)
        ]
    )
    s.claim("t0", ttl=600)
    s.wait("t0", NASTY[1])
    s.claim("t2")
    s.fail("t2", NASTY[2])
    return Path(str(s.path))


@pytest.mark.parametrize(
    "args",
    [["list"], ["ready"], ["board"], ["who"], ["blocked"], ["stale"], ["log"], ["log", "t0"]]
    + [["show", f"t{i}"] for i in range(len(NASTY))],
    ids=" ".join,
)
def test_markup_in_the_store_prints_literally(nasty: Path, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code = main(["-C", str(nasty), *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    if args[0] == "show":
        i = int(args[1][1:])
        for shown in {NASTY[i], NASTY[i].replace(" ", "")}:
            assert shown in out, (shown, out)
    if args[0] in ("list", "ready"):
        for i, text in enumerate(NASTY):
            if args[0] == "list" or i not in (0, 2):
                assert text in out, (text, out)


def test_a_hand_made_commit_with_markup_in_its_trailers_prints_literally(
    nasty: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git("fetch", "-q", "origin", "gitclaim", cwd=nasty)
    tree = git("rev-parse", "origin/gitclaim^{tree}", cwd=nasty).strip()
    parent = git("rev-parse", "origin/gitclaim", cwd=nasty).strip()
    msg = "by hand\n\nGitclaim-Op: [/x]\nGitclaim-Agent: [bold]me\nGitclaim-Task: t1\n"
    msg += "Gitclaim-From: [/y]\nGitclaim-To: [red]\n"
    commit = git("commit-tree", tree, "-p", parent, "-m", msg, cwd=nasty).strip()
    git("push", "-q", "origin", f"{commit}:refs/heads/gitclaim", cwd=nasty)
    assert main(["-C", str(nasty), "log"]) == 0
    out = capsys.readouterr().out
    # The trailers are not believed (the diff changes nothing they say), and what
    # the log says about them prints them literally, markup and all.
    assert "[/x]" in out and "[bold]me" in out


def test_a_closed_pipe_is_not_a_bug(nasty: Path) -> None:
    for args in (["log"], ["list"], ["show", "t0"], ["log", "--json"]):
        p = subprocess.run(
            f"{sys.executable} -m gitclaim -C {nasty} {' '.join(args)} | head -c 1 >/dev/null; exit ${{PIPESTATUS[0]}}",
            shell=True,
            executable="/bin/bash",
            capture_output=True,
            text=True,
            env={"PYTHONUNBUFFERED": "1", **os.environ},
        )
        assert p.returncode in (0, 141), (args, p.returncode, p.stderr)
        assert "Traceback" not in p.stderr and "error" not in p.stderr.lower(), p.stderr


def test_no_view_cuts_what_it_shows_when_piped(path_remote: Remote, store_factory: Callable[..., Store]) -> None:
    t = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    s = store_factory(path_remote, "an-agent-with-a-rather-long-name-indeed", clock=lambda: t)
    s.init()
    title = "A title long enough to pass the width of any terminal " * 3
    s.add(title, task_id="a-task-id-that-is-itself-quite-long-too")
    s.claim("a-task-id-that-is-itself-quite-long-too", ttl=3600)
    s.heartbeat()
    where = Path(str(s.path))
    for args, wanted in (
        (["who"], ["2026-03-01T09:00:00Z", "2026-03-01T10:00:00Z", "an-agent-with-a-rather-long-name-indeed"]),
        (["list"], [title.strip(), "a-task-id-that-is-itself-quite-long-too"]),
    ):
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}  # as a shell exports them
        p = subprocess.run(
            [sys.executable, "-m", "gitclaim", "-C", str(where), *args],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        flat = " ".join(p.stdout.split())
        for w in wanted:
            assert " ".join(w.split()) in flat, (args, w, p.stdout)
