"""Domain rules: claimability, ownership, readiness. Pure functions over plain tasks."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from gitclaim import rules
from gitclaim.errors import Blocked, LostRace, NotClaimable, NotHolder
from gitclaim.model import CLAIMABLE, Claim, State, Task
from gitclaim.rules import ClaimVerdict

T0 = datetime(2026, 1, 31, 12, 0, 0, tzinfo=UTC)


def task(tid: str = "t1", state: State = State.TODO, holder: str | None = None, **kw: object) -> Task:
    claim = Claim(holder, T0) if holder is not None else None
    return Task(id=tid, title=tid, state=state, claim=claim, **kw)  # type: ignore[arg-type]


def done(tid: str) -> Task:
    return task(tid, State.DONE)


# --- check_claim -----------------------------------------------------------------


@pytest.mark.parametrize("state", [State.TODO, State.BACKLOG])
def test_claimable_states_without_dependencies(state: State) -> None:
    assert rules.check_claim(task(state=state), {}, "agent-1") is ClaimVerdict.CLAIM


def test_claimable_set_is_exactly_todo_and_backlog() -> None:
    assert {State.TODO, State.BACKLOG} == CLAIMABLE


def test_claimable_when_every_dependency_is_done() -> None:
    t = task(depends_on=("a", "b"))
    assert rules.check_claim(t, {"a": done("a"), "b": done("b")}, "agent-1") is ClaimVerdict.CLAIM


def test_held_by_another_agent_is_a_lost_race_naming_the_holder() -> None:
    t = task(state=State.ACTIVE, holder="agent-7")
    with pytest.raises(LostRace) as ei:
        rules.check_claim(t, {}, "agent-1")
    e = ei.value
    assert e.exit_code == 4
    assert e.details == {"task": "t1", "holder": "agent-7", "claimed_at": "2026-01-31T12:00:00Z"}
    assert "agent-7" in e.message and "2026-01-31T12:00:00Z" in e.message


def test_held_by_self_is_already_held() -> None:
    t = task(state=State.ACTIVE, holder="agent-1")
    assert rules.check_claim(t, {}, "agent-1") is ClaimVerdict.ALREADY_HELD


def test_held_by_self_is_already_held_even_if_dependencies_regressed() -> None:
    t = task(state=State.ACTIVE, holder="agent-1", depends_on=("a",))
    assert rules.check_claim(t, {"a": task("a")}, "agent-1") is ClaimVerdict.ALREADY_HELD


def test_holder_comparison_is_exact() -> None:
    t = task(state=State.ACTIVE, holder="Agent-1")
    with pytest.raises(LostRace):
        rules.check_claim(t, {}, "agent-1")


@pytest.mark.parametrize(
    "state", [State.WAITING, State.REVIEW, State.DONE, State.CANCELLED, State.SOMEDAY, State.FAILED]
)
def test_other_states_are_not_claimable_and_name_the_state(state: State) -> None:
    with pytest.raises(NotClaimable) as ei:
        rules.check_claim(task(state=state), {}, "agent-1")
    e = ei.value
    assert e.exit_code == 5
    assert e.details == {"task": "t1", "state": state.value}
    assert f"t1 is {state.value}" in e.message
    assert "todo" in e.message and "backlog" in e.message


def test_active_without_claim_is_not_claimable() -> None:
    with pytest.raises(NotClaimable) as ei:
        rules.check_claim(task(state=State.ACTIVE), {}, "agent-1")
    assert ei.value.details["state"] == "active"


def test_a_stale_claim_on_a_held_state_still_names_the_state() -> None:
    # waiting with a claim recorded: the state refuses, not the holder
    with pytest.raises(NotClaimable):
        rules.check_claim(task(state=State.WAITING, holder="agent-7"), {}, "agent-1")


def test_a_todo_task_with_an_old_claim_can_be_claimed() -> None:
    assert rules.check_claim(task(holder="agent-7"), {}, "agent-1") is ClaimVerdict.CLAIM


def test_state_is_checked_before_dependencies() -> None:
    t = task(state=State.DONE, depends_on=("a",))
    with pytest.raises(NotClaimable):
        rules.check_claim(t, {"a": task("a")}, "agent-1")


def test_holder_is_checked_before_dependencies() -> None:
    t = task(state=State.ACTIVE, holder="agent-7", depends_on=("a",))
    with pytest.raises(LostRace):
        rules.check_claim(t, {"a": task("a")}, "agent-1")


def test_blocked_lists_every_blocker_with_its_state_and_missing_deps() -> None:
    t = task(depends_on=("a", "b", "c", "gone"))
    deps = {"a": done("a"), "b": task("b", State.ACTIVE, "agent-9"), "c": task("c", State.CANCELLED), "gone": None}
    with pytest.raises(Blocked) as ei:
        rules.check_claim(t, deps, "agent-1")
    e = ei.value
    assert e.exit_code == 6
    assert e.details["task"] == "t1"
    assert e.details["state"] == "todo"
    assert e.details["blockers"] == [
        {"id": "b", "state": "active"},
        {"id": "c", "state": "cancelled"},
        {"id": "gone", "state": "missing"},
    ]
    assert "b (active)" in e.message and "c (cancelled)" in e.message and "gone (missing)" in e.message
    assert "a (" not in e.message


def test_a_dependency_absent_from_the_mapping_counts_as_missing() -> None:
    with pytest.raises(Blocked) as ei:
        rules.check_claim(task(depends_on=("x",)), {}, "agent-1")
    assert ei.value.details["blockers"] == [{"id": "x", "state": "missing"}]


@pytest.mark.parametrize("dep_state", [s for s in State if s is not State.DONE])
def test_only_done_unblocks(dep_state: State) -> None:
    dep = task("a", dep_state, "agent-2" if dep_state is State.ACTIVE else None)
    with pytest.raises(Blocked):
        rules.check_claim(task(depends_on=("a",)), {"a": dep}, "agent-1")


def test_blockers_helper() -> None:
    t = task(depends_on=("a", "b"))
    assert rules.blockers(t, {"a": done("a"), "b": task("b", State.BACKLOG)}) == [{"id": "b", "state": "backlog"}]
    assert rules.blockers(task(), {}) == []


# --- apply -----------------------------------------------------------------------


def test_apply_claim_sets_active_holder_and_utc_time() -> None:
    t = task(depends_on=("a",), tags=("x",))
    now = datetime(2026, 1, 31, 13, 30, 0, 555_000, tzinfo=UTC)
    new = rules.apply_claim(t, "agent-1", now)
    assert new.state is State.ACTIVE
    assert new.claim == Claim("agent-1", datetime(2026, 1, 31, 13, 30, tzinfo=UTC))
    assert new.depends_on == ("a",) and new.tags == ("x",)
    assert t.state is State.TODO  # the input is not changed


def test_apply_release_and_done_clear_the_claim() -> None:
    held = task(state=State.ACTIVE, holder="agent-1")
    r = rules.apply_move(rules.check_move("release", held, "agent-1"), held, now=T0)
    assert r.state is State.TODO and r.claim is None
    d = rules.apply_move(rules.check_move("done", held, "agent-1"), held, now=T0)
    assert d.state is State.DONE and d.claim is None
    assert held.state is State.ACTIVE and held.holder == "agent-1"  # the input is not changed


# --- release / done ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("check", "verb", "target"), [(rules.check_release, "release", State.TODO), (rules.check_done, "done", State.DONE)]
)
def test_holder_may_release_and_complete(check, verb: str, target: State) -> None:  # type: ignore[no-untyped-def]
    row = check(task(state=State.ACTIVE, holder="agent-1"), "agent-1")
    assert isinstance(row, rules.Move)
    assert row.verb == verb and row.target is target and State.ACTIVE in row.sources
    assert row.claim is rules.ClaimEffect.CLEAR


@pytest.mark.parametrize(("check", "verb"), [(rules.check_release, "release"), (rules.check_done, "complete")])
def test_only_the_holder_may_release_or_complete(check, verb: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotHolder) as ei:
        check(task(state=State.ACTIVE, holder="agent-7"), "agent-1")
    e = ei.value
    assert e.exit_code == 13
    assert e.details["holder"] == "agent-7" and e.details["agent"] == "agent-1" and e.details["task"] == "t1"
    assert f"cannot {verb} t1" in e.message and "agent-7" in e.message


@pytest.mark.parametrize(
    ("check", "state"),
    [(rules.check_release, s) for s in State if s is not State.ACTIVE]
    # done of a task in review is a reviewer's approval (below)
    + [(rules.check_done, s) for s in State if s not in (State.ACTIVE, State.REVIEW)],
)
def test_release_or_done_of_a_task_not_active_is_not_claimable(check, state: State) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotClaimable) as ei:
        check(task(state=state), "agent-1")
    assert ei.value.details["state"] == state.value


def test_anyone_may_complete_a_task_in_review() -> None:
    in_review = task(state=State.REVIEW, holder="agent-7")
    row = rules.check_done(in_review, "reviewer-1")
    assert row.verb == "done" and row.target is State.DONE and row.who is rules.Who.ANYONE
    d = rules.apply_move(row, in_review, now=T0)
    assert d.state is State.DONE and d.claim is None


# --- ready -------------------------------------------------------------------------


def test_ready_orders_by_priority_then_created_at_then_id() -> None:
    tasks = [
        Task(id="p2-old", title="x", priority=2, created_at=T0 - timedelta(days=2)),
        Task(id="p1-new", title="x", priority=1, created_at=T0 + timedelta(days=1)),
        Task(id="p1-old-b", title="x", priority=1, created_at=T0),
        Task(id="p1-old-a", title="x", priority=1, created_at=T0),
        Task(id="p0", title="x", priority=0, created_at=T0 + timedelta(days=30)),
        Task(id="p9", title="x", priority=9, created_at=T0 - timedelta(days=300)),
    ]
    expected = ["p0", "p1-old-a", "p1-old-b", "p1-new", "p2-old", "p9"]
    for seed in range(5):
        shuffled = tasks[:]
        random.Random(seed).shuffle(shuffled)
        assert [t.id for t in rules.ready(shuffled)] == expected


def test_ready_keeps_only_claimable_tasks_whose_dependencies_are_done() -> None:
    tasks = [
        task("free"),
        task("backlogged", State.BACKLOG),
        task("held", State.ACTIVE, "agent-1"),
        task("finished", State.DONE),
        task("parked", State.SOMEDAY),
        task("after-finished", depends_on=("finished",)),
        task("after-free", depends_on=("free",)),
        task("after-ghost", depends_on=("ghost",)),
    ]
    assert sorted(t.id for t in rules.ready(tasks)) == ["after-finished", "backlogged", "free"]


def test_ready_can_look_up_dependencies_outside_the_candidates() -> None:
    cands = [task("b", depends_on=("a",))]
    assert [t.id for t in rules.ready(cands, by_id={"a": done("a")})] == ["b"]
    assert rules.ready(cands, by_id={"a": task("a")}) == []


def test_ready_of_nothing_is_empty() -> None:
    assert rules.ready([]) == []


# --- cycles ---------------------------------------------------------------------------


def graph(**deps: tuple[str, ...]) -> dict[str, Task]:
    return {k: Task(id=k, title=k, depends_on=v) for k, v in deps.items()}


def test_cycle_through_none_for_a_dag() -> None:
    g = graph(a=(), b=("a",), c=("a", "b"), d=("c", "outside"))
    assert all(rules.cycle_through(t, g.get) is None for t in g.values())


def test_cycle_through_reports_the_loop_from_its_start() -> None:
    g = graph(a=("b",), b=("c",), c=("a",), d=("a",))
    assert rules.cycle_through(g["a"], g.get) == ["a", "b", "c", "a"]
    assert rules.cycle_through(g["d"], g.get) is None  # d reaches a loop it is not part of


def test_cycle_through_two_node_loop() -> None:
    g = graph(a=("b",), b=("a",))
    assert rules.cycle_through(g["b"], g.get) == ["b", "a", "b"]


def test_a_task_depending_on_itself() -> None:
    g = graph(a=("a",), b=("a",))
    assert rules.cycle_through(g["a"], g.get) == ["a", "a"]
    assert rules.dependency_cycles(["b"], g.get) == []


def test_the_shortest_way_back_is_reported() -> None:
    g = graph(a=("x", "b"), x=("y",), y=("z",), z=("a",), b=("a",))
    assert rules.cycle_through(g["a"], g.get) == ["a", "b", "a"]


def test_each_cycle_is_reported_once_from_its_first_start() -> None:
    g = graph(a=("b",), b=("a",), c=("d",), d=("e",), e=("c",), f=("a", "c"), g=())
    assert rules.dependency_cycles(["f", "b", "a", "e", "c", "g"], g.get) == [["b", "a", "b"], ["e", "c", "d", "e"]]


def test_a_chain_of_a_hundred_thousand_is_one_linear_pass() -> None:
    """No recursion, and each task looked up once however many starts share the chain."""
    n = 100_000
    g = graph(**{f"t{i}": ((f"t{i - 1}",) if i else ()) for i in range(n)})
    asked: Counter[str] = Counter()

    def lookup(i: str) -> Task | None:
        asked[i] += 1
        return g.get(i)

    assert rules.dependency_cycles([f"t{i}" for i in range(n - 1, -1, -1)], lookup) == []
    assert max(asked.values()) == 1 and len(asked) == n
    g["t0"] = Task(id="t0", title="t0", depends_on=(f"t{n - 1}",))  # close the loop
    (cycle,) = rules.dependency_cycles(["t0", "t5"], g.get)
    assert len(cycle) == n + 1 and cycle[0] == cycle[-1] == "t0"
