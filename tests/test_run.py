"""``run``, ``next --wait`` and ``watch`` with real processes, real clones and a
real remote (git daemon on loopback, or a bare repository by path). Leases and
timeouts are short so that the whole file takes seconds; nothing is mocked
but the clock of the liveness tests at the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gitclaim import Store
from gitclaim.errors import LostRace, NothingReady
from gitclaim.operations import RESULTS, TERMS

from .conftest import run_cli
from .servers import Remote, clone
from .test_leases import T0, Clock, ops_by_task
from .test_operations import _check, _keys

PY = [sys.executable, "-m", "gitclaim"]


def start(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``gitclaim ARGS`` as a process of its own, as an agent would start it."""
    return subprocess.Popen(
        [*PY, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def until(what: Callable[[], Any], limit: float = 10.0, every: float = 0.05) -> Any:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        got = what()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"not within {limit} s")


def seeded(remote: Remote, tmp_path: Path, n: int = 1) -> Path:
    """A clone of an initialised store holding tasks t0..t(n-1)."""
    where = clone(remote, tmp_path / "seed")
    s = Store(where, agent="seed")
    s.init()
    if n:
        s.add_many([{"id": f"t{i}", "title": f"task {i}"} for i in range(n)])
    return where


def task(where: Path, task_id: str) -> dict[str, Any]:
    r = run_cli("show", task_id, "--json", cwd=where)
    assert r.returncode == 0, r.stderr
    result: dict[str, Any] = json.loads(r.stdout)["result"]["task"]
    return result


# --- run ---------------------------------------------------------------------------------------


def test_run_keeps_a_two_second_lease_for_a_six_second_command(daemon_remote: Remote, tmp_path: Path) -> None:
    seeded(daemon_remote, tmp_path)
    mine, theirs = clone(daemon_remote, tmp_path / "a1"), clone(daemon_remote, tmp_path / "a2")
    p = start("run", "--agent", "a1", "--ttl", "2", "t0", "--json", "--", "sleep", "6", cwd=mine)
    until(lambda: task(theirs, "t0")["state"] == "active")
    refused = Counter()
    while p.poll() is None:  # another agent tries all along, well past the 2 s of one lease
        r = run_cli("next", "--agent", "a2", "--json", cwd=theirs)
        refused[r.returncode] += 1
        assert r.returncode == 7, r.stdout  # nothing_ready: t0 is held, its lease renewed
    out, err = p.communicate()
    assert p.returncode == 0, err
    result = json.loads(out)["result"]
    shape = _keys(RESULTS["ran"][0])  # the documented shape (docs/cli.md)
    assert set(result) == set(shape)
    for key, holds in shape.items():
        _check(result[key], holds, f"run.{key}")
    ran = result["runs"][0]
    assert ran["outcome"] == "done" and ran["status"] == 0
    assert ran["renewals"] >= 9  # every (2 - 1) / 3 s for 6 s
    assert sum(refused.values()) >= 4
    assert task(theirs, "t0")["state"] == "done"
    assert ops_by_task(daemon_remote)["t0"] == ["done", "claim", "add"]  # no takeover ever landed


def test_run_killed_lets_its_lease_lapse_and_another_agent_takes_over(daemon_remote: Remote, tmp_path: Path) -> None:
    seeded(daemon_remote, tmp_path)
    mine, theirs = clone(daemon_remote, tmp_path / "a1"), clone(daemon_remote, tmp_path / "a2")
    pidfile = tmp_path / "command.pid"
    p = start(
        "run", "--agent", "a1", "--ttl", "2", "t0", "--", "sh", "-c", f"echo $$ > {pidfile}; exec sleep 60", cwd=mine
    )
    until(lambda: pidfile.exists() and pidfile.read_text().strip())
    command = int(pidfile.read_text())
    p.send_signal(signal.SIGKILL)
    p.communicate()
    killed = time.monotonic()
    # COMMAND does not work on, unseen, on a task whose lease is about to lapse (Linux: the parent-death signal)
    until(lambda: not Path(f"/proc/{command}").exists() or "Z" in Path(f"/proc/{command}/stat").read_text().split()[2])

    def take() -> dict[str, Any] | None:
        r = run_cli("next", "--agent", "a2", "--json", cwd=theirs)
        return json.loads(r.stdout)["result"] if r.returncode == 0 else None

    got = until(take, limit=10)
    assert got["task"]["id"] == "t0" and got["previous_holder"] == "a1"
    assert time.monotonic() - killed < 6  # one lease of 2 s, and a second for the clock's whole seconds
    assert ops_by_task(daemon_remote)["t0"][0] == "takeover"


def test_run_false_fails_the_task_with_the_status(path_remote: Remote, tmp_path: Path) -> None:
    where = seeded(path_remote, tmp_path, 2)
    r = run_cli("run", "--agent", "a1", "t0", "--", "false", cwd=where)
    assert r.returncode == 1, r.stderr
    t = task(where, "t0")
    assert t["state"] == "failed" and "status 1" in t["fail_reason"] and t["claim"] is None
    r = run_cli("run", "--agent", "a1", "--next", "--json", "--", "sh", "-c", "exit 3", cwd=where)
    assert r.returncode == 3
    ran = json.loads(r.stdout)["result"]["runs"][0]
    assert (ran["task"]["id"], ran["outcome"], ran["status"], ran["state"]) == ("t1", "failed", 3, "failed")
    assert "status 3" in task(where, "t1")["fail_reason"]


def test_run_gives_command_the_task_and_json_keeps_stdout_for_itself(path_remote: Remote, tmp_path: Path) -> None:
    where = seeded(path_remote, tmp_path)
    script = 'echo "$GITCLAIM_TASK $GITCLAIM_AGENT"; cat "$GITCLAIM_TASK_FILE"'
    r = run_cli("run", "--agent", "a1", "--next", "--json", "--", "sh", "-c", script, cwd=where)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ok"] is True  # one JSON object: COMMAND's output went to stderr
    first, file = r.stderr.split("\n", 1)
    assert first == "t0 a1"
    shown = json.loads(file)
    assert shown["id"] == "t0" and shown["claim"]["holder"] == "a1"


def test_sigterm_to_run_stops_command_and_releases_the_task(path_remote: Remote, tmp_path: Path) -> None:
    where = seeded(path_remote, tmp_path)
    said = tmp_path / "said"
    script = f'trap "echo stopped > {said}; exit 143" TERM; echo up > {said}; sleep 60 & wait'
    p = start("run", "--agent", "a1", "--ttl", "30", "t0", "--json", "--", "sh", "-c", script, cwd=where)
    until(lambda: said.exists() and said.read_text().strip() == "up")
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 143, err
    assert said.read_text().strip() == "stopped"  # COMMAND got the signal and ended before run did
    ran = json.loads(out)["result"]["runs"][0]
    assert ran["outcome"] == "released" and ran["state"] == "todo"
    t = task(where, "t0")
    assert t["state"] == "todo" and t["claim"] is None


def test_run_says_so_when_the_task_is_taken_from_it(path_remote: Remote, tmp_path: Path) -> None:
    where = seeded(path_remote, tmp_path)
    other = clone(path_remote, tmp_path / "op")
    p = start("run", "--agent", "a1", "--ttl", "3", "t0", "--json", "--", "sleep", "60", cwd=where)
    until(lambda: task(other, "t0")["state"] == "active")
    r = run_cli("reset", "t0", "--agent", "op", cwd=other)  # what a takeover after a partition looks like to run
    assert r.returncode == 0, r.stderr
    out, err = p.communicate(timeout=20)
    assert "lost t0: op has it now" in err
    ran = json.loads(out)["result"]["runs"][0]
    assert ran["outcome"] == "lost" and ran["signal"] == "SIGTERM" and p.returncode == 128 + 15
    assert task(other, "t0")["state"] == "todo"  # run wrote nothing over the operator's reset


def test_run_cut_off_until_its_lease_lapses_finds_the_takeover_and_stops_command(
    path_remote: Remote, tmp_path: Path
) -> None:
    """A partition, as run lives it: stopped (SIGSTOP) it renews nothing while COMMAND
    goes on; the lease lapses and another agent takes the task over with a plain
    ``claim``; continued, run's next renewal finds the new holder, stops COMMAND and
    writes nothing over the takeover."""
    where = seeded(path_remote, tmp_path)
    other = clone(path_remote, tmp_path / "b2")
    p = start("run", "--agent", "a1", "--ttl", "2", "t0", "--json", "--", "sleep", "60", cwd=where)
    until(lambda: task(other, "t0")["state"] == "active")
    os.kill(p.pid, signal.SIGSTOP)
    try:

        def taken() -> bool:
            return run_cli("claim", "t0", "--agent", "b2", "--json", cwd=other).returncode == 0

        until(taken, limit=15, every=0.5)  # refused while the lease lives, taken once it lapsed
    finally:
        os.kill(p.pid, signal.SIGCONT)
    out, err = p.communicate(timeout=20)
    assert "lost t0: b2 has it now" in err, err
    ran = json.loads(out)["result"]["runs"][0]
    assert ran["outcome"] == "lost" and ran["signal"] == "SIGTERM" and p.returncode == 128 + 15
    t = task(other, "t0")
    assert t["state"] == "active" and t["claim"]["holder"] == "b2"  # the takeover stands
    newest = json.loads(run_cli("log", "t0", "--json", cwd=other).stdout)["result"]["entries"][0]
    assert newest["agent"] == "b2" and newest["moves"][0]["holder_before"] == "a1"  # run wrote nothing after it


def test_loop_with_three_agents_drains_thirty_tasks_each_claimed_once(daemon_remote: Remote, tmp_path: Path) -> None:
    seeded(daemon_remote, tmp_path, 30)
    procs = [
        start(
            "run",
            "--agent",
            f"a{i}",
            "--next",
            "--loop",
            "--json",
            "--",
            "true",
            cwd=clone(daemon_remote, tmp_path / f"a{i}"),
        )
        for i in range(3)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out)["result"])
    done = [r["task"]["id"] for res in results for r in res["runs"]]
    assert sorted(done) == sorted(f"t{i}" for i in range(30))  # each once, by exactly one agent
    assert all(r["outcome"] == "done" for res in results for r in res["runs"])
    ops = ops_by_task(daemon_remote)
    assert all(ops[f"t{i}"] == ["done", "claim", "add"] for i in range(30)), ops


def test_run_refuses_bad_calls_before_claiming(path_remote: Remote, tmp_path: Path) -> None:
    where = seeded(path_remote, tmp_path)
    for args in (["run", "--", "true"], ["run", "t0", "--next", "--", "true"], ["run", "t0", "--loop", "--", "true"],
                 ["run", "--next", "--"], ["run", "t0", "x", "--", "true"], ["run", "--next", "true"]):  # fmt: skip
        r = run_cli(args[0], "--agent", "a1", *args[1:], cwd=where)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
    r = run_cli("run", "--agent", "a1", "t0", "--json", "--", str(tmp_path / "no-such-command"), cwd=where)
    assert r.returncode == 2 and json.loads(r.stdout)["error"]["details"]["task"] == "t0"
    assert task(where, "t0")["state"] == "todo"  # released again: nothing was done
    r = run_cli("run", "--agent", "a1", "nope", "--json", "--", "true", cwd=where)
    assert r.returncode == 3  # not_found: gitclaim's own code when the claim failed
    # after --, every word is COMMAND's, even one that looks like run's own option
    r = run_cli("run", "--agent", "a1", "--next", "--", "sh", "-c", 'echo "$@"', "sh", "--ttl", "--", "x", cwd=where)
    assert r.returncode == 0 and "--ttl -- x" in r.stdout, r.stderr


# --- next --wait ----------------------------------------------------------------------------------


def test_next_wait_claims_within_two_seconds_and_fetches_only_when_the_tip_moved(
    daemon_remote: Remote, tmp_path: Path
) -> None:
    adder = seeded(daemon_remote, tmp_path, 0)
    waiter = clone(daemon_remote, tmp_path / "waiter")
    trace = tmp_path / "trace"
    p = start("next", "--wait", "--timeout", "30", "--agent", "w", "--json", cwd=waiter,
              env={"GITCLAIM_TRACE_REMOTE": str(trace)})  # fmt: skip
    until(lambda: trace.exists() and trace.read_text().count("peek") >= 5)  # waiting, looking at the tip
    before = Counter(line.split()[0] for line in trace.read_text().split("\n") if line)
    assert before["fetch"] == 1  # the first try's fetch only
    time.sleep(1.5)
    still = Counter(line.split()[0] for line in trace.read_text().split("\n") if line)
    assert still["fetch"] == 1 and still["peek"] >= before["peek"] + 1  # more looks at the tip, no fetch
    Store(adder, agent="seed").add("new work", task_id="new")
    added = time.monotonic()
    out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    assert time.monotonic() - added < 2.0
    got = json.loads(out)["result"]
    assert got["task"]["id"] == "new" and got["task"]["claim"]["holder"] == "w"
    kinds = Counter(line.split()[0] for line in trace.read_text().split("\n") if line)
    assert kinds["fetch"] == 2, kinds  # the first try, and the try after the tip moved


def test_next_wait_times_out_with_nothing_ready(path_remote: Remote, tmp_path: Path) -> None:
    where = seeded(path_remote, tmp_path, 0)
    began = time.monotonic()
    r = run_cli("next", "--wait", "--timeout", "1", "--agent", "w", "--json", cwd=where)
    assert 1.0 <= time.monotonic() - began < 8
    assert r.returncode == 7
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "nothing_ready" and err["details"]["timed_out"] is True and err["details"]["waited"] >= 1
    r = run_cli("next", "--timeout", "1", "--agent", "w", cwd=where)
    assert r.returncode == 2 and "--wait" in r.stderr


def test_next_wait_takes_over_a_lease_that_lapses_without_the_branch_moving(
    path_remote: Remote, tmp_path: Path
) -> None:
    where = seeded(path_remote, tmp_path)
    Store(where, agent="gone").claim("t0", ttl=2)  # and never a heartbeat
    got = Store(clone(path_remote, tmp_path / "w"), agent="w").next(wait=True, timeout=15)
    assert got.task.id == "t0" and got.previous_holder == "gone"


# --- watch ---------------------------------------------------------------------------------------


def test_watch_prints_each_operation_as_it_lands_and_ctrl_c_ends_it(daemon_remote: Remote, tmp_path: Path) -> None:
    where = seeded(daemon_remote, tmp_path)
    watcher = clone(daemon_remote, tmp_path / "watcher")
    traces = [tmp_path / "trace-json", tmp_path / "trace-human"]
    p = start("watch", "--json", cwd=watcher, env={"GITCLAIM_TRACE_REMOTE": str(traces[0])})
    human = start("watch", cwd=watcher, env={"GITCLAIM_TRACE_REMOTE": str(traces[1])})
    for trace in traces:  # each has fetched the tip it starts from, and looks at the remote's since
        until(lambda trace=trace: trace.exists() and "peek" in trace.read_text())
    s = Store(where, agent="a1")
    s.claim("t0")
    s.done("t0")
    assert p.stdout is not None
    lines = [json.loads(p.stdout.readline()) for _ in range(2)]
    assert [(e["op"], e["agent"], e["tasks"]) for e in lines] == [("claim", "a1", ["t0"]), ("done", "a1", ["t0"])]
    assert set(lines[0]) == set(_keys(TERMS["entry"]))  # the entry of log --json
    time.sleep(0.5)
    for q in (p, human):
        q.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=10)
    assert p.returncode == 0 and err == ""  # Ctrl-C: quietly
    hout, herr = human.communicate(timeout=10)
    assert human.returncode == 0 and herr == ""
    assert "claim" in hout and "done" in hout and "t0" in hout


# --- liveness: a new claim never inherits an old heartbeat ------------------------------------------


def test_a_fresh_claim_is_judged_by_its_own_time_not_an_old_heartbeat(path_remote: Remote, tmp_path: Path) -> None:
    where = seeded(path_remote, tmp_path, 2)
    clock = Clock()
    a1 = Store(where, agent="a1", clock=clock)
    other = Store(clone(path_remote, tmp_path / "a2"), agent="a2", clock=clock)
    a1.claim("t0", ttl=10)
    a1.heartbeat()  # at T0: a1's liveness ref
    a1.done("t0")
    clock.t = T0 + timedelta(seconds=100)
    a1.claim("t1", ttl=10)  # long after that heartbeat
    clock.t = T0 + timedelta(seconds=105)
    with pytest.raises(LostRace):  # not expired: the lease runs from the claim, not the old heartbeat
        other.claim("t1")
    clock.t = T0 + timedelta(seconds=111)
    assert other.claim("t1").previous_holder == "a1"  # nor kept alive by it


def test_an_old_holders_heartbeat_does_not_keep_a_new_holders_claim_alive(path_remote: Remote, tmp_path: Path) -> None:
    where = seeded(path_remote, tmp_path)
    clock = Clock()
    old = Store(where, agent="old", clock=clock)
    new = Store(clone(path_remote, tmp_path / "new"), agent="new", clock=clock)
    third = Store(clone(path_remote, tmp_path / "third"), agent="third", clock=clock)
    old.claim("t0", ttl=10)
    clock.t = T0 + timedelta(seconds=20)
    assert new.claim("t0", ttl=10).previous_holder == "old"  # took over the lapsed lease
    clock.t = T0 + timedelta(seconds=29)
    old.heartbeat()  # the old holder is alive, but holds nothing
    clock.t = T0 + timedelta(seconds=31)
    assert third.claim("t0").previous_holder == "new"
    with pytest.raises(NothingReady):
        old.next()


# --- MCP: next waits, bounded -------------------------------------------------------------------


def test_mcp_next_waits_but_never_longer_than_the_bound(path_remote: Remote, tmp_path: Path) -> None:
    import anyio
    from mcp.types import CallToolResult

    from gitclaim.mcp_server import WAIT_DEFAULT, WAIT_MOST, _bounded_wait, build_server

    assert _bounded_wait({"wait": True}) == {"wait": True, "timeout": WAIT_DEFAULT}
    assert _bounded_wait({"wait": True, "timeout": "1h"})["timeout"] == WAIT_MOST
    assert _bounded_wait({"wait": False, "timeout": None}) == {"wait": False, "timeout": None}
    where = seeded(path_remote, tmp_path, 0)
    server = build_server(str(where), agent="m1")
    began = time.monotonic()
    res = anyio.run(server.call_tool, "next", {"wait": True, "timeout": 1})
    assert isinstance(res, CallToolResult) and res.is_error
    assert res.structured_content is not None
    err = res.structured_content["error"]
    assert err["code"] == "nothing_ready" and err["details"]["timed_out"] is True
    assert 1.0 <= time.monotonic() - began < 8
    res = anyio.run(server.call_tool, "next", {"wait": True, "timeout": "soon"})
    assert isinstance(res, CallToolResult) and res.structured_content is not None
    assert res.structured_content["error"]["code"] == "bad_input"
