"""Errors named for what they are: every number and duration an option takes is
checked, durations are read as people write them, and input too large for a
task file is bad input, never "a bug"."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from gitclaim import Store
from gitclaim.cli import main

from .servers import Remote


@pytest.fixture
def where(path_remote: Remote, store_factory: Callable[..., Store]) -> Path:
    s = store_factory(path_remote, "planner")
    s.init()
    s.add("One", task_id="one")
    s.add("Two", task_id="two")
    return Path(str(s.path))


def run(where: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    capsys.readouterr()
    code = main(["-C", str(where), *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("0", None)]
)
def test_a_lease_is_a_duration_as_people_write_it(
    where: Path, capsys: pytest.CaptureFixture[str], text: str, seconds: int | None
) -> None:
    code, out = run(where, capsys, "claim", "one", "--agent", "a1", "--ttl", text)
    assert code == 0, out
    claim = out["result"]["task"]["claim"]
    assert claim["lease_seconds"] == seconds


@pytest.mark.parametrize(
    "args",
    [
        ["claim", "one", "--agent", "a1", "--ttl", "-5"],
        ["claim", "one", "--agent", "a1", "--ttl", "soon"],
        ["claim", "one", "--agent", "a1", "--ttl", "400d"],
        ["next", "--agent", "a1", "--ttl", "2x"],
        ["log", "-n", "0"],
        ["log", "-n", "-1"],
        ["stale", "--silent-after", "-5"],
        ["reap", "--agent", "op", "--silent-after", "-5"],
        ["reap", "--agent", "op", "--silent-after", "0"],
        ["add", "x", "--agent", "a1", "--priority", "12"],
        ["add", "x", "--agent", "a1", "--priority", "-1"],
        ["demo", "--agents", "0"],
        ["demo", "--tasks", "-3"],
    ],
    ids=" ".join,
)
def test_a_bad_number_is_bad_input_and_changes_nothing(
    where: Path, capsys: pytest.CaptureFixture[str], path_remote: Remote, args: list[str]
) -> None:
    before = path_remote.ref()
    code, out = run(where, capsys, *args)
    assert code == 2, out
    assert out["error"]["code"] == "bad_input"
    assert path_remote.ref() == before


def test_reap_refuses_a_negative_silence_instead_of_reaping_a_live_claim(
    path_remote: Remote, store_factory: Callable[..., Store], capsys: pytest.CaptureFixture[str]
) -> None:
    s = store_factory(path_remote, "worker")
    s.init()
    s.add("One", task_id="one")
    s.claim("one")
    s.heartbeat()
    code, out = run(Path(str(s.path)), capsys, "reap", "--agent", "op", "--silent-after", "-5")
    assert code == 2 and out["error"]["code"] == "bad_input"
    assert s.show("one").task.holder == "worker"


def test_mcp_takes_a_lease_as_seconds_or_as_text(where: Path) -> None:
    import anyio

    from gitclaim.mcp_server import build_server

    server = build_server(str(where), agent="a1")

    async def go() -> tuple[object, object]:
        a = await server.call_tool("claim", {"task_id": "one", "ttl": 120})
        b = await server.call_tool("claim", {"task_id": "two", "ttl": "2m"})
        return a, b

    a, b = anyio.run(go)
    for res in (a, b):
        env = res.structured_content  # type: ignore[attr-defined]
        assert env["ok"], env
        assert env["result"]["task"]["claim"]["lease_seconds"] == 120


def test_a_task_too_large_for_a_file_is_bad_input(
    where: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], path_remote: Remote
) -> None:
    before = path_remote.ref()
    batch = tmp_path / "big.toml"
    batch.write_text('[[task]]\nid = "big"\ntitle = "Big"\ndescription = """' + "x" * (1 << 20) + '"""\n')
    code, out = run(where, capsys, "add", "--file", str(batch), "--agent", "a1")
    assert code == 2, out
    assert out["error"]["code"] == "bad_input" and "MiB" in out["error"]["message"]
    code, out = run(where, capsys, "edit", "one", "--set", "description=" + "y" * (1 << 20), "--agent", "a1")
    assert code == 2, out
    assert out["error"]["code"] == "bad_input"
    assert path_remote.ref() == before
