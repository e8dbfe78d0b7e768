"""Names that become parts of refs obey every rule of git's check-ref-format,
checked against git itself; a name git refuses is bad input before anything
is written, on every surface."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitclaim.errors import BadInput
from gitclaim.ids import slugify_agent, validate_agent
from gitclaim.refnames import refname_problem, validate_branch, validate_remote
from tests.conftest import run_cli
from tests.servers import Remote

EDGES = [
    "a..b", "a.lock", "x/.hidden", "x/y.lock", "a b", "a~b", "a^b", "a:b", "a?b", "a*b", "a[b", "a\\b",
    "a@{b", "@", "a.", "a/", "/a", "a//b", "-a", "a\x01b", "a\x7fb", "ok", "ok-1.2_3+x", "a/b/c", ".a", "a@b",
    "HEAD", "a.lock/b", "é", "a{b", "a}b",
]  # fmt: skip


def git_accepts(ref: str) -> bool:
    return subprocess.run(["git", "check-ref-format", ref], capture_output=True).returncode == 0


@pytest.mark.parametrize("name", EDGES)
def test_the_rules_are_gits_own(name: str) -> None:
    ref = f"refs/heads/{name}"
    assert (refname_problem(ref) is None) is git_accepts(ref), name


@given(st.lists(st.sampled_from([*"ab./-@{}~^:?*[\\ \x01l", "lock", ".lock", ".."]), max_size=8).map("".join))
@settings(max_examples=300, deadline=None, database=None)
def test_random_names_are_judged_as_git_judges_them(name: str) -> None:
    ref = f"refs/heads/{name}"
    assert (refname_problem(ref) is None) is git_accepts(ref), repr(name)


@pytest.mark.parametrize("name", ["a..b", "x.lock", "x@{y"])
def test_agent_names_git_refuses_in_a_ref_are_bad_input(name: str) -> None:
    with pytest.raises(BadInput, match="illegal agent name"):
        validate_agent(name)


@pytest.mark.parametrize("raw", ["a..b-host", "user.lock", "x...y", "..lock"])
def test_a_fallback_name_made_from_a_user_and_host_is_always_legal(raw: str) -> None:
    assert validate_agent(slugify_agent(raw))


@pytest.mark.parametrize("name", ["a..b", "x.lock", "-x", "HEAD", "a b", "", "a/", "x@{1}"])
def test_bad_branch_names_are_bad_input(name: str) -> None:
    with pytest.raises(BadInput, match="illegal branch name"):
        validate_branch(name)


@pytest.mark.parametrize("name", ["a..b", "x.lock", "-x", "a b", ""])
def test_bad_remote_names_are_bad_input(name: str) -> None:
    with pytest.raises(BadInput, match="illegal remote name"):
        validate_remote(name)


def test_good_names_pass() -> None:
    assert validate_branch("tasks/gitclaim") == "tasks/gitclaim"
    assert validate_remote("origin") == "origin"
    assert validate_agent("agent-7") == "agent-7"


# --- end to end: nothing is written, on a local path and over git daemon ---------------


def _refs(bare: Path) -> str:
    return subprocess.run(["git", "for-each-ref"], cwd=bare, capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--branch", "a..b", "init", "--agent", "ok"],
        ["--branch", "x.lock", "init", "--agent", "ok"],
        ["--remote", "or..igin", "init", "--agent", "ok"],
        ["heartbeat", "--agent", "a..b"],
        ["claim", "t", "--agent", "w.lock"],
    ],
)
def test_a_name_git_refuses_is_bad_input_and_nothing_is_written(
    remote: Remote, make_clone: Callable[[Remote, str], Path], args: list[str]
) -> None:
    where = make_clone(remote, "one")
    assert run_cli("init", "--agent", "admin", cwd=where).returncode == 0
    before = _refs(remote.path)
    r = run_cli(*args, "--json", cwd=where)
    assert r.returncode == 2, r.stdout + r.stderr
    assert '"code": "bad_input"' in r.stdout
    assert _refs(remote.path) == before
    subprocess.run(["git", "fsck", "--no-progress"], cwd=remote.path, check=True, capture_output=True)
    other = make_clone(remote, "two")
    assert run_cli("ready", "--json", cwd=other).returncode == 0  # every other clone still fetches
