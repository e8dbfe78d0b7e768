"""Human views on a store whose history several agents wrote."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gitclaim import Store
from gitclaim.cli import main
from gitclaim.views import mermaid

from .servers import Remote, git


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.t += timedelta(seconds=1)
        return self.t


@pytest.fixture
def busy(path_remote: Remote, store_factory) -> tuple[Remote, dict[str, Store], list[tuple[str, str, str]]]:  # type: ignore[no-untyped-def]
    clock = Clock()
    s = {n: store_factory(path_remote, n, clock=clock) for n in ("planner", "ann", "bob", "cid")}
    s["planner"].init()
    s["planner"].add_many(
        [
            {"id": "design", "title": "Design"},
            {"id": "build", "title": "Build", "depends_on": ["design"]},
            {"id": "ship", "title": "Ship", "depends_on": ["build"]},
            {"id": "docs", "title": "Docs"},
            {"id": "later", "title": "Later", "state": "someday"},
        ]
    )
    ops = [("add", "planner", "design")]
    s["ann"].claim("design", ttl=60)
    s["ann"].done("design")
    s["bob"].claim("build")
    s["cid"].claim("docs")
    s["cid"].wait("docs", "a review from legal")
    ops += [("claim", "ann", "design"), ("done", "ann", "design"), ("claim", "bob", "build"),
            ("claim", "cid", "docs"), ("wait", "cid", "docs")]  # fmt: skip
    return path_remote, s, ops


def cli_json(capsys: pytest.CaptureFixture[str], clone: Path, *args: str) -> dict:  # type: ignore[type-arg]
    code = main(["-C", str(clone), *args, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["ok"], out
    return out["result"]  # type: ignore[no-any-return]


def test_log_shows_every_operation_in_order_with_the_right_agents(busy, capsys) -> None:  # type: ignore[no-untyped-def]
    remote, s, ops = busy
    entries = cli_json(capsys, s["planner"].repo.repo.workdir, "log")["entries"]
    got = [(e["op"], e["agent"], e["tasks"][0]) for e in reversed(entries) if e["op"] != "init"]
    assert got == ops
    # and plain git agrees, commit for commit
    authors = git("log", "--format=%an", "gitclaim", cwd=remote.path).split()
    assert authors == [e["author"] for e in entries]
    one = cli_json(capsys, s["planner"].repo.repo.workdir, "log", "design")["entries"]
    assert [(e["op"], e["agent"]) for e in reversed(one)] == [("add", "planner"), ("claim", "ann"), ("done", "ann")]


def test_board_and_who_agree_with_list(busy, capsys) -> None:  # type: ignore[no-untyped-def]
    _, s, _ = busy
    clone = s["planner"].repo.repo.workdir
    listed = cli_json(capsys, clone, "list")["tasks"]
    board = cli_json(capsys, clone, "board")["columns"]
    assert {t["id"]: t["state"] for t in listed} == {t["id"]: state for state, ts in board.items() for t in ts}
    assert board["active"][0]["id"] == "build" and board["waiting"][0]["id"] == "docs"
    who = cli_json(capsys, clone, "who")["holdings"]
    assert {(h["task"]["id"], h["holder"], h["task"]["state"]) for h in who} == {
        (t["id"], t["claim"]["holder"], t["state"]) for t in listed if t["claim"]
    }
    assert all(h["lease"] == "none" for h in who)


def test_who_reports_lease_status(path_remote: Remote, store_factory) -> None:  # type: ignore[no-untyped-def]
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    now = [t0]
    a = store_factory(path_remote, "ann", clock=lambda: now[0])
    a.init()
    a.add("t", task_id="t")
    a.claim("t", ttl=60)
    (h,) = a.who().holdings
    assert h.lease == "live" and h.lease_expires == t0 + timedelta(seconds=60)
    now[0] = t0 + timedelta(seconds=61)
    assert a.who().holdings[0].lease == "expired"
    a.heartbeat()
    (h,) = a.who().holdings
    assert h.lease == "live" and h.last_seen == now[0]


def test_blocked_lists_dependencies_and_outside_waits(busy, capsys) -> None:  # type: ignore[no-untyped-def]
    _, s, _ = busy
    got = cli_json(capsys, s["planner"].repo.repo.workdir, "blocked")["tasks"]
    by_id = {b["task"]["id"]: b for b in got}
    assert by_id["ship"]["blockers"] == [{"id": "build", "state": "active"}]
    assert by_id["docs"]["waiting_for"] == "a review from legal"
    assert set(by_id) == {"ship", "docs"}


def test_graph_in_dot_and_mermaid(busy, capsys) -> None:  # type: ignore[no-untyped-def]
    _, s, _ = busy
    clone = s["planner"].repo.repo.workdir
    dot = cli_json(capsys, clone, "graph", "--format", "dot")["text"]
    assert dot.startswith("digraph gitclaim {") and '"design" -> "build";' in dot and '"build" -> "ship";' in dot
    mm = cli_json(capsys, clone, "graph", "--format", "mermaid")["text"]
    assert mm.startswith("flowchart LR") and "t_design --> t_build" in mm
    code = main(["-C", str(clone), "graph", "--format", "png", "--json"])
    assert code == 2 and json.loads(capsys.readouterr().out)["error"]["code"] == "bad_input"


def test_mermaid_node_names_do_not_collide() -> None:
    from gitclaim.model import Task

    text = mermaid([Task("a-b", "x"), Task("a_b", "y"), Task("c", "z", depends_on=("a-b",))])
    names = [line.split("[")[0].strip() for line in text.splitlines()[1:4]]
    assert len(set(names)) == 3


def test_bulk_add_reports_progress(path_remote: Remote, store_factory) -> None:  # type: ignore[no-untyped-def]
    seen: list[tuple[str, int, int]] = []
    a = store_factory(path_remote, "ann", progress=lambda stage, done, total: seen.append((stage, done, total)))
    a.init()
    a.add_many([{"id": f"t{i}", "title": "x"} for i in range(450)])
    adds = [x for x in seen if x[0] == "add"]
    assert adds[0] == ("add", 0, 450) and adds[-1] == ("add", 450, 450)
    assert [d for _, d, _ in adds] == sorted(d for _, d, _ in adds)


def test_human_views_render_without_error(busy, capsys) -> None:  # type: ignore[no-untyped-def]
    _, s, _ = busy
    clone = str(s["planner"].repo.repo.workdir)
    for cmd in (["board"], ["who"], ["blocked"], ["log", "-n", "3"], ["show", "docs"], ["stale"]):
        assert main(["-C", clone, *cmd]) == 0, cmd
    out = capsys.readouterr().out
    assert "build" in out and "a review from legal" in out and "Traceback" not in out
