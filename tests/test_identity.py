"""One winner means one agent: with no name given anywhere, each clone makes one
of its own, once, and keeps it; separate clones are never merged into one agent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .conftest import run_cli
from .servers import Remote, git


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("GITCLAIM_AGENT", None)
    return env


def test_four_clones_racing_without_names_have_exactly_one_winner(
    remote: Remote, make_clone: Callable[[Remote, str], Path]
) -> None:
    admin = make_clone(remote, "admin")
    assert run_cli("init", "--agent", "admin", cwd=admin).returncode == 0
    assert run_cli("add", "The one task", "--id", "t", "--agent", "admin", cwd=admin).returncode == 0
    clones = [make_clone(remote, f"c{i}") for i in range(4)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "gitclaim", "claim", "t", "--json"],
            cwd=c,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in clones
    ]
    outs = [(p.wait(timeout=120), json.loads(p.communicate()[0])) for p in procs]
    codes = sorted(code for code, _ in outs)
    assert codes == [0, 4, 4, 4], outs
    (won,) = [o for code, o in outs if code == 0]
    assert won["result"]["changed"] is True
    names = {git("config", "gitclaim.agent", cwd=c).strip() for c in clones}
    assert len(names) == 4  # four clones, four agents
    holder = won["result"]["task"]["claim"]["holder"]
    for code, o in outs:
        if code == 4:
            assert o["error"]["details"]["holder"] == holder


def test_a_clone_keeps_the_name_it_made_and_tells_a_rerun_from_a_win(
    path_remote: Remote, make_clone: Callable[[Remote, str], Path]
) -> None:
    c = make_clone(path_remote, "solo")
    assert run_cli("init", cwd=c, env={}).returncode == 0
    name = git("config", "gitclaim.agent", cwd=c).strip()
    assert name and name.count("-") >= 2
    assert run_cli("add", "x", "--id", "x", cwd=c).returncode == 0
    first = subprocess.run(
        [sys.executable, "-m", "gitclaim", "claim", "x", "--json"], cwd=c, env=_env(), capture_output=True, text=True
    )
    again = subprocess.run(
        [sys.executable, "-m", "gitclaim", "claim", "x"], cwd=c, env=_env(), capture_output=True, text=True
    )
    r = json.loads(first.stdout)["result"]
    assert r["changed"] is True and r["task"]["claim"]["holder"] == name
    assert again.returncode == 0 and "you already hold x" in again.stdout
    assert git("config", "gitclaim.agent", cwd=c).strip() == name
