"""The MCP server, driven as agents drive it: `gitclaim mcp` started as its
own process and spoken to with the `mcp` SDK's own stdio client.

Real clones of a real bare repository (by path and through git daemon);
nothing of git is mocked.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import CallToolResult, TextContent

from gitclaim.errors import BadInput
from gitclaim.operations import Effect, Surface, carried
from tests.servers import Remote, git

pytestmark = pytest.mark.anyio

READS = {op.name for op in carried(Surface.MCP) if op.effect is Effect.READ}
CHANGES = {op.name for op in carried(Surface.MCP) if op.effect is not Effect.READ}
assert {"list", "ready", "show", "log", "stale", "board", "who", "blocked", "graph"} <= READS
assert {"claim", "next", "done", "add_many", "edit", "heartbeat", "reap"} <= CHANGES


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def server_command(clone: Path, agent: str) -> list[str]:
    return [sys.executable, "-m", "gitclaim", "-C", str(clone), "mcp", "--agent", agent]


@asynccontextmanager
async def connect(clone: Path, agent: str) -> AsyncIterator[ClientSession]:
    """A session with `gitclaim mcp` running in ``clone`` as ``agent``."""
    cmd = server_command(clone, agent)
    params = StdioServerParameters(command=cmd[0], args=cmd[1:], env=dict(os.environ), cwd=str(clone))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool; check the envelope is the CLI's --json object, in both forms."""
    res = await session.call_tool(tool, arguments)
    assert isinstance(res, CallToolResult), res
    env = res.structured_content
    assert isinstance(env, dict), res
    [text] = res.content
    assert isinstance(text, TextContent) and json.loads(text.text) == env
    assert env["command"] == tool
    assert res.is_error is (not env["ok"])
    if env["ok"]:
        assert set(env) == {"ok", "command", "result"}
    else:
        assert set(env) == {"ok", "command", "error"}
        assert set(env["error"]) == {"code", "exit", "message", "hint", "details"}
    return env


async def ok(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    env = await call(session, tool, **arguments)
    assert env["ok"] is True, env
    return env["result"]  # type: ignore[no-any-return]


async def refused(session: ClientSession, code: str, tool: str, **arguments: Any) -> dict[str, Any]:
    env = await call(session, tool, **arguments)
    assert env["ok"] is False, env
    assert env["error"]["code"] == code, env
    return env["error"]  # type: ignore[no-any-return]


def ids(listing: dict[str, Any]) -> list[str]:
    return [t["id"] for t in listing["tasks"]]


# --- tools and bad arguments ---------------------------------------------------------


async def test_tools_are_listed_with_descriptions(
    path_remote: Remote, make_clone: Callable[[Remote, str], Path]
) -> None:
    async with connect(make_clone(path_remote, "a1"), "a1") as s:
        tools = {t.name: t for t in (await s.list_tools()).tools}
        assert set(tools) == READS | CHANGES
        for name, t in tools.items():
            assert t.description and "bad_input" in t.description, name
            assert t.output_schema is not None and t.output_schema["required"] == ["ok", "command"], name
            props = t.input_schema["properties"]
            assert ("agent" in props) is (name in CHANGES), name
            assert t.annotations is not None and t.annotations.read_only_hint is (name in READS), name
        assert "lost_race" in (tools["claim"].description or "")
        assert "nothing_ready" in (tools["next"].description or "")
        assert "not_holder" in (tools["release"].description or "")
        assert tools["claim"].input_schema["required"] == ["task_id"]


async def test_bad_arguments_are_structured_errors_and_the_server_keeps_serving(
    path_remote: Remote, make_clone: Callable[[Remote, str], Path]
) -> None:
    clone = make_clone(path_remote, "a1")
    async with connect(clone, "a1") as s:
        # before init: the store does not exist yet
        await refused(s, "not_initialized", "ready")
        await ok(s, "init")
        await ok(s, "add", title="one", task_id="one")

        err = await refused(s, "bad_input", "add", title=123)  # wrong type
        assert err["exit"] == 2 and err["details"]["errors"][0]["field"] == "title"
        err = await refused(s, "bad_input", "claim", task_id="../x")  # illegal id
        assert "illegal task id" in err["message"]
        err = await refused(s, "bad_input", "claim")  # missing required argument
        assert err["details"]["errors"] == [{"field": "task_id", "message": "Field required"}]
        await refused(s, "bad_input", "claim", task_id="one", ttl="soon")
        await refused(s, "bad_input", "claim", task_id="one", agent="no such agent!")
        await refused(s, "bad_input", "list", state=["nope"])
        await refused(s, "bad_input", "edit", task_id="one", changes={})
        await refused(s, "bad_input", "add_many", tasks=[])
        await refused(s, "bad_input", "add_many", tasks=[{"id": "x"}])  # no title
        await refused(s, "bad_input", "no_such_tool")
        await refused(s, "not_found", "show", task_id="missing")
        await refused(s, "not_found", "claim", task_id="missing")

        # still serving, and nothing was changed by the refusals
        assert ids(await ok(s, "ready")) == ["one"]
        log = await ok(s, "log")
        assert [e["op"] for e in log["entries"]] == ["add", "init"]


async def test_an_unexpected_exception_is_an_internal_error_not_a_crash(
    path_remote: Remote, make_clone: Callable[[Remote, str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # In-process: the only way to make the package raise something it does not expect.
    from gitclaim.api import Store
    from gitclaim.mcp_server import build_server

    server = build_server(str(make_clone(path_remote, "a1")), agent="a1")

    def boom(self: Store, **kw: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(Store, "ready", boom)
    res = await server.call_tool("ready", {})
    assert isinstance(res, CallToolResult) and res.is_error
    assert res.structured_content["error"]["code"] == "internal"
    assert "RuntimeError: boom" in res.structured_content["error"]["message"]
    res = await server.call_tool("list", {})
    assert isinstance(res, CallToolResult)
    assert res.structured_content["error"]["code"] == "not_initialized"


def test_serve_refuses_an_unusable_clone_or_agent_before_serving(
    tmp_path: Path, path_remote: Remote, make_clone: Callable[[Remote, str], Path]
) -> None:
    from gitclaim.mcp_server import build_server

    not_a_repo = tmp_path / "plain"
    not_a_repo.mkdir()
    with pytest.raises(BadInput, match="not inside a git repository"):
        build_server(str(not_a_repo))
    with pytest.raises(BadInput):
        build_server(str(make_clone(path_remote, "a1")), agent="bad agent!")


# --- adding, reading, the lifecycle ----------------------------------------------------


async def test_add_read_and_lifecycle(path_remote: Remote, make_clone: Callable[[Remote, str], Path]) -> None:
    remote = path_remote  # the race below runs over git daemon too
    clone = make_clone(remote, "a1")
    async with connect(clone, "a1") as s:
        assert (await ok(s, "init"))["created"] is True

        added = await ok(s, "add", title="Design", task_id="design", priority=1, tags=["plan"])
        assert [t["id"] for t in added["tasks"]] == ["design"]
        assert added["tasks"][0]["created_by"] == "a1"
        batch = await ok(
            s,
            "add_many",
            tasks=[
                {"id": "build", "title": "Build", "depends_on": ["design"], "acceptance": ["it builds"]},
                {"id": "ship", "title": "Ship", "depends_on": ["build"], "owner_team": "infra"},
                {"title": "Someday maybe", "state": "someday"},
            ],
        )
        assert batch["tasks"][1]["extra"] == {"owner_team": "infra"}
        assert batch["tasks"][2]["state"] == "someday" and batch["tasks"][2]["id"]
        # one commit for the batch; a cycle or a taken id adds nothing
        await refused(s, "bad_input", "add_many", tasks=[{"id": "x", "title": "X", "depends_on": ["x"]}])
        await refused(s, "already_exists", "add", title="again", task_id="design")

        # calls made at once are served one after another, all of them
        many = await _gather([ok(s, "add", title=f"parallel {i}", task_id=f"p{i}", priority=9) for i in range(4)])
        assert sorted(r["tasks"][0]["id"] for r in many) == ["p0", "p1", "p2", "p3"]

        assert ids(await ok(s, "ready")) == ["design", "p0", "p1", "p2", "p3"]
        assert ids(await ok(s, "list", tag="plan")) == ["design"]
        assert set(ids(await ok(s, "list", state=["todo"]))) == {"design", "build", "ship", "p0", "p1", "p2", "p3"}
        view = await ok(s, "show", task_id="build")
        assert view["task"]["acceptance"] == ["it builds"]
        assert view["blockers"] == [{"id": "design", "state": "todo"}]
        await refused(s, "blocked", "claim", task_id="build")

        # claim, a re-claim that changes nothing, then done unblocks the next task
        got = await ok(s, "claim", task_id="design")
        assert got["task"]["claim"]["holder"] == "a1" and got["changed"] is True
        again = await ok(s, "claim", task_id="design")
        assert again["changed"] is False and again["commit"] is None
        assert (await ok(s, "done", task_id="design"))["to"] == "done"
        assert (await ok(s, "next"))["task"]["id"] == "build"

        # handoff to a2; the agent of a call can be given per call
        err = await refused(s, "not_holder", "release", task_id="build", agent="a2")
        assert err["details"]["holder"] == "a1"
        handed = await ok(s, "handoff", task_id="build", to="a2")
        assert handed["task"]["claim"]["holder"] == "a2"
        waiting = await ok(s, "wait", task_id="build", waiting_for="CI runner", agent="a2")
        assert waiting["to"] == "waiting" and waiting["task"]["waiting_for"] == "CI runner"
        assert (await ok(s, "resume", task_id="build", agent="a2"))["to"] == "active"
        failed = await ok(s, "fail", task_id="build", reason="flaky linker", agent="a2")
        assert failed["task"]["fail_reason"] == "flaky linker"
        assert (await ok(s, "retry", task_id="build"))["to"] == "todo"
        await refused(s, "not_claimable", "release", task_id="build")

        # the history, per task and for the store
        hist = await ok(s, "log", task_id="build")
        assert [e["op"] for e in hist["entries"]] == ["retry", "fail", "resume", "wait", "handoff", "claim", "add"]
        assert [e["agent"] for e in hist["entries"][1:4]] == ["a2", "a2", "a2"]
        shown = await ok(s, "show", task_id="build")
        assert [e["op"] for e in shown["history"]] == [e["op"] for e in hist["entries"]]
        assert (await ok(s, "log", limit=2))["entries"][0]["op"] == "retry"

        hb = await ok(s, "heartbeat")
        assert hb["agent"] == "a1" and hb["holding"] == []
        assert (await ok(s, "stale"))["claims"] == []
        assert (await ok(s, "reap"))["reaped"] == []
        edited = await ok(s, "edit", task_id="ship", changes={"priority": 0, "tags": ["release"], "title": "Ship it"})
        assert (edited["task"]["priority"], edited["task"]["tags"], edited["task"]["title"]) == (
            0,
            ["release"],
            "Ship it",
        )
        assert (await ok(s, "cancel", task_id="ship"))["to"] == "cancelled"
        assert (await ok(s, "reopen", task_id="ship"))["to"] == "todo"

    # every change above is one commit on the remote, authored by its agent
    subjects = git("log", "--format=%an %s", "gitclaim", cwd=remote.path).splitlines()
    assert "a2 fail build by a2: flaky linker" in subjects
    assert "a1 hand off build from a1 to a2" in subjects


# --- the race -----------------------------------------------------------------------------


async def test_two_clients_race_for_one_task(remote: Remote, make_clone: Callable[[Remote, str], Path]) -> None:
    async with (
        connect(make_clone(remote, "racer-1"), "racer-1") as one,
        connect(make_clone(remote, "racer-2"), "racer-2") as two,
    ):
        await ok(one, "init")
        tasks = [f"t{i}" for i in range(4)]
        await ok(one, "add_many", tasks=[{"id": t, "title": t} for t in tasks])
        await ok(two, "ready")  # both have fetched the store: the race is on the claim itself

        winners: dict[str, str] = {}
        for t in tasks:
            first, second = await _gather([call(one, "claim", task_id=t), call(two, "claim", task_id=t)])
            answers = {"racer-1": first, "racer-2": second}
            won = [a for a, env in answers.items() if env["ok"]]
            assert len(won) == 1, answers
            winner = won[0]
            loser = answers["racer-2" if winner == "racer-1" else "racer-1"]
            err = loser["error"]
            assert err["code"] == "lost_race" and err["exit"] == 4, loser
            assert err["details"]["holder"] == winner
            assert winner in err["message"]
            assert answers[winner]["result"]["task"]["claim"]["holder"] == winner
            winners[t] = winner

        # what both servers now read agrees, and the trail has one claim per task
        for s in (one, two):
            held = await ok(s, "list", state=["active"])
            assert {t["id"]: t["claim"]["holder"] for t in held["tasks"]} == winners
        log = await ok(two, "log")
        claims = [e["tasks"][0] for e in log["entries"] if e["op"] == "claim"]
        assert sorted(claims) == tasks

        # next: one ready task, two takers; the other hears that nothing is ready
        await ok(one, "add", title="last", task_id="last")
        a, b = await _gather([call(one, "next"), call(two, "next")])
        assert [a["ok"], b["ok"]].count(True) == 1, (a, b)
        lost = b if a["ok"] else a
        assert lost["error"]["code"] in ("nothing_ready", "lost_race"), lost


async def _gather(coros: list[Any]) -> list[dict[str, Any]]:
    """Run the calls at once (anyio's gather)."""
    results: list[dict[str, Any]] = [{} for _ in coros]

    async def one(i: int, c: Any) -> None:
        results[i] = await c

    async with anyio.create_task_group() as tg:
        for i, c in enumerate(coros):
            tg.start_soon(one, i, c)
    return results
