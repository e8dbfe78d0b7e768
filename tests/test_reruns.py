"""A command run again after it landed says what happened, changes nothing, and
writes nothing: the audit trail records each change once."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from gitclaim import Store
from gitclaim.cli import main

from .servers import Remote


@pytest.fixture
def store(path_remote: Remote, store_factory: Callable[..., Store]) -> Store:
    s = store_factory(path_remote, "agent-1")
    s.init()
    s.add_many([{"id": i, "title": i} for i in ("a", "b", "c", "d", "e")])
    return s


def cli(s: Store, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["-C", str(s.path), *args, "--agent", "agent-1"])
    return code, capsys.readouterr().out


# (set-up calls on the Store, the command run twice, what the second run says)
CASES = [
    ([], ["claim", "a"], "you already hold a since"),
    ([("claim", "a")], ["done", "a"], "your done of a had already landed (done)"),
    ([("claim", "a")], ["release", "a"], "your release of a had already landed (todo)"),
    ([("claim", "a")], ["handoff", "a", "--to", "agent-2"], "your handoff of a had already landed (active)"),
    ([("claim", "a")], ["wait", "a", "--for", "CI"], "your wait of a had already landed (waiting)"),
    ([("claim", "a")], ["fail", "a", "--reason", "no"], "your fail of a had already landed (failed)"),
    ([], ["edit", "a", "--set", "priority=5"], "a already has those values"),
    ([], ["edit", "a", "--set", "title=New", "--set", "tags=x,y"], "a already has those values"),
]


@pytest.mark.parametrize(("setup", "args", "said"), CASES, ids=[" ".join(c[1]) for c in CASES])
def test_a_rerun_says_what_happened_and_writes_nothing(
    store: Store, path_remote: Remote, capsys: pytest.CaptureFixture[str], setup: list, args: list[str], said: str
) -> None:
    for verb, task in setup:
        getattr(store, verb)(task)
    code, _ = cli(store, capsys, *args)
    assert code == 0
    tip = path_remote.ref()
    code, out = cli(store, capsys, *args)
    assert code == 0, out
    assert said in out, out
    if args[0] != "claim":
        assert "you already hold" not in out
    assert path_remote.ref() == tip  # nothing written twice
    code, out = cli(store, capsys, *args, "--json")
    result = json.loads(out)["result"]
    assert result["changed"] is False and result["commit"] is None
    assert path_remote.ref() == tip


def test_an_edit_that_changes_nothing_writes_nothing(store: Store, path_remote: Remote) -> None:
    tip = path_remote.ref()
    r = store.edit("b", {"title": "b"})
    assert r.changed is False and r.commit is None
    assert path_remote.ref() == tip
    r = store.edit("b", {"title": "B"})
    assert r.changed is True and path_remote.ref() != tip
