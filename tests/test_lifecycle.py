"""The lifecycle as data: every (state, verb) pair against the transition table. Pure.

The expected table is written out here on purpose, independently of
``rules.MOVES``: a change to the lifecycle must be made in both places (and in
docs/lifecycle.md), never by accident in one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gitclaim import rules
from gitclaim.errors import LostRace, NotClaimable, NotHolder
from gitclaim.model import Claim, State, Task
from gitclaim.rules import ClaimEffect, ClaimVerdict, Who

S = State
T0 = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
HOLDER, OTHER, NEW = "holder-1", "other-9", "new-agent"
LEASE = 60

ANY, HOLD = Who.ANYONE, Who.HOLDER
SET, KEEP, CLEAR, TRANSFER, NONE = (
    ClaimEffect.SET, ClaimEffect.KEEP, ClaimEffect.CLEAR, ClaimEffect.TRANSFER, ClaimEffect.NONE,
)  # fmt: skip
PLANNING = (S.BACKLOG, S.TODO, S.SOMEDAY)
HELD = (S.ACTIVE, S.WAITING, S.REVIEW)

# (verb, from, to, who, claim effect): the issue's lifecycle, one row per source state.
EXPECTED: set[tuple[str, State, State, Who, ClaimEffect]] = {
    ("claim", S.BACKLOG, S.ACTIVE, ANY, SET),
    ("claim", S.TODO, S.ACTIVE, ANY, SET),
    ("takeover", S.ACTIVE, S.ACTIVE, ANY, SET),
    ("release", S.ACTIVE, S.TODO, HOLD, CLEAR),
    ("handoff", S.ACTIVE, S.ACTIVE, HOLD, TRANSFER),
    ("wait", S.ACTIVE, S.WAITING, HOLD, KEEP),
    ("resume", S.WAITING, S.ACTIVE, HOLD, KEEP),
    ("review", S.ACTIVE, S.REVIEW, HOLD, KEEP),
    ("done", S.ACTIVE, S.DONE, HOLD, CLEAR),
    ("done", S.REVIEW, S.DONE, ANY, CLEAR),  # a reviewer approves
    ("fail", S.ACTIVE, S.FAILED, HOLD, CLEAR),
    *(("cancel", s, S.CANCELLED, ANY, CLEAR) for s in (S.BACKLOG, S.TODO, S.SOMEDAY, S.FAILED)),
    *(("cancel", s, S.CANCELLED, HOLD, CLEAR) for s in HELD),
    *(("reopen", s, S.TODO, ANY, CLEAR) for s in (S.DONE, S.CANCELLED, S.FAILED, S.REVIEW)),
    *(("reset", s, S.TODO, ANY, CLEAR) for s in HELD),
    *(("retry", s, S.TODO, ANY, CLEAR) for s in (S.FAILED, S.DONE)),
    *(("edit", s, target, ANY, NONE) for s in PLANNING for target in PLANNING),
}
ALL_VERBS = (
    "claim", "takeover", "release", "handoff", "wait", "resume", "review", "done",
    "fail", "cancel", "reopen", "reset", "retry", "edit",
)  # fmt: skip


def expected_rows(verb: str, state: State) -> list[tuple[State, Who, ClaimEffect]]:
    return [(to, who, eff) for v, frm, to, who, eff in EXPECTED if v == verb and frm is state]


def expected_legal_verbs(state: State) -> set[str]:
    # takeover is not offered as a verb of its own: `claim` and `next` do it
    return {v for v, frm, *_ in EXPECTED if frm is state and v != "takeover"}


def task_in(state: State, **kw: object) -> Task:
    """A task as the store would hold it in ``state``: held states carry a claim with a lease."""
    claim = Claim(HOLDER, T0, lease_seconds=LEASE) if state in HELD else None
    fields = {
        "waiting_for": "the vendor's reply" if state is S.WAITING else None,
        "fail_reason": "the build broke" if state is S.FAILED else None,
        **kw,
    }
    return Task(id="t1", title="a task", state=state, claim=claim, extra={"estimate": 3}, **fields)  # type: ignore[arg-type]


PAIRS = [pytest.param(state, verb, id=f"{state.value}-{verb}") for state in State for verb in ALL_VERBS]


# --- the table itself -------------------------------------------------------------


def test_verbs_are_exactly_the_issues_verbs() -> None:
    assert set(rules.VERBS) == set(ALL_VERBS)


def test_the_table_is_exactly_the_expected_lifecycle() -> None:
    got = {(m.verb, s, m.target, m.who, m.claim) for m in rules.MOVES for s in m.sources}
    assert got - EXPECTED == set(), "moves in rules.MOVES that the lifecycle does not have"
    assert EXPECTED - got == set(), "moves of the lifecycle missing from rules.MOVES"


def test_a_verb_has_at_most_one_row_per_source_state_except_edits_targets() -> None:
    for verb in ALL_VERBS:
        for state in State:
            targets = [m.target for m in rules.MOVES if m.verb == verb and state in m.sources]
            assert len(targets) == len(set(targets)), (verb, state)
            if verb != "edit":
                assert len(targets) <= 1, (verb, state, targets)


def test_nine_states() -> None:
    assert {s.value for s in State} == {
        "backlog", "todo", "active", "waiting", "review", "done", "cancelled", "someday", "failed",
    }  # fmt: skip


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.value)
def test_legal_verbs_from_each_state(state: State) -> None:
    assert set(rules.legal_verbs(state)) == expected_legal_verbs(state)
    assert len(rules.legal_verbs(state)) == len(set(rules.legal_verbs(state)))  # each named once


def test_held_states_are_exactly_active_waiting_review() -> None:
    assert set(HELD) == rules.CLAIMED
    assert set(PLANNING) == rules.PLANNING


def test_move_to_json_is_the_documented_row() -> None:
    row = next(m for m in rules.MOVES if m.verb == "done" and S.REVIEW in m.sources)
    assert row.to_json() == {
        "verb": "done",
        "from": ["review"],
        "to": "done",
        "who": "anyone",
        "claim": "clear",
        "doc": row.doc,
    }
    assert row.doc


# --- every (state, verb) pair through check_move / apply_move ---------------------


@pytest.mark.parametrize(("state", "verb"), PAIRS)
def test_every_state_verb_pair_against_the_table(state: State, verb: str) -> None:
    task = task_in(state)
    rows = expected_rows(verb, state)
    if not rows:
        for agent in (HOLDER, OTHER):  # not even the holder: the state refuses
            with pytest.raises(NotClaimable) as ei:
                rules.check_move(verb, task, agent)
            e = ei.value
            assert e.exit_code == 5
            assert f"it is {state.value}" in e.message
            assert e.details["task"] == "t1" and e.details["state"] == state.value
            assert e.details["verb"] == verb
            assert set(e.details["legal_verbs"]) == expected_legal_verbs(state)
            for legal in e.details["legal_verbs"]:
                assert legal in e.message
            assert e.details["legal_from"] == sorted({frm.value for v, frm, *_ in EXPECTED if v == verb})
        return

    who = rows[0][1]
    assert all(r[1] is who for r in rows)
    if who is HOLD:
        with pytest.raises(NotHolder) as ei2:
            rules.check_move(verb, task, OTHER)
        e2 = ei2.value
        assert e2.exit_code == 13
        assert e2.details["holder"] == HOLDER and e2.details["agent"] == OTHER and e2.details["task"] == "t1"
        assert HOLDER in e2.message and OTHER in e2.message
        actor = HOLDER
    else:
        actor = OTHER  # anyone: not only the holder
    row = rules.check_move(verb, task, actor)
    assert row.verb == verb and state in row.sources and row.who is who

    for target, _who, effect in rows:
        the_row = next(m for m in rules.MOVES if m.verb == verb and state in m.sources and m.target is target)
        assert the_row.claim is effect
        if effect is SET:
            continue  # claims and takeovers go through check_claim/apply_claim (below)
        new = rules.apply_move(the_row, task, now=T1, to=NEW if effect is TRANSFER else None)
        assert new.state is target
        assert new.extra == task.extra  # hand-added fields survive every move
        assert task.state is state  # the input is not changed
        if effect is CLEAR or effect is NONE:
            assert new.claim is None
        elif effect is KEEP:
            assert new.claim == task.claim
        else:  # TRANSFER
            assert task.claim is not None and new.claim is not None
            assert new.claim.holder == NEW and new.claim.claimed_at == T1
            assert new.claim.lease_seconds == task.claim.lease_seconds


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.value)
def test_claim_of_every_state_through_check_claim(state: State) -> None:
    task = task_in(state)
    before_expiry = T0 + timedelta(seconds=LEASE - 1)
    if state in (S.TODO, S.BACKLOG):
        assert rules.check_claim(task, {}, OTHER, now=before_expiry) is ClaimVerdict.CLAIM
        new = rules.apply_claim(task, OTHER, T1, lease_seconds=30)
        assert new.state is S.ACTIVE and new.claim == Claim(OTHER, T1, lease_seconds=30)
    elif state is S.ACTIVE:
        # held, lease alive: a lost race, not a refusal by state
        with pytest.raises(LostRace) as ei:
            rules.check_claim(task, {}, OTHER, now=before_expiry)
        assert ei.value.details["holder"] == HOLDER
        assert rules.check_claim(task, {}, HOLDER, now=before_expiry) is ClaimVerdict.ALREADY_HELD
    else:
        with pytest.raises(NotClaimable) as ei2:
            rules.check_claim(task, {}, OTHER, now=before_expiry)
        assert f"t1 is {state.value}" in ei2.value.message
        assert "backlog" in ei2.value.message and "todo" in ei2.value.message
        assert ei2.value.details["state"] == state.value


@pytest.mark.parametrize("state", list(State), ids=lambda s: s.value)
def test_takeover_of_every_state_through_check_claim(state: State) -> None:
    """Only an active task whose lease ran out is taken over; nothing else is."""
    task = task_in(state)
    expired = T0 + timedelta(seconds=LEASE)
    if state is S.ACTIVE:
        assert rules.check_claim(task, {}, OTHER, now=expired) is ClaimVerdict.TAKEOVER
        new = rules.apply_claim(task, OTHER, expired, lease_seconds=LEASE)
        assert new.state is S.ACTIVE and new.holder == OTHER and new.claim is not None
        assert new.claim.claimed_at == expired
        # the holder itself never "takes over" its own task
        assert rules.check_claim(task, {}, HOLDER, now=expired) is ClaimVerdict.ALREADY_HELD
    elif state in (S.TODO, S.BACKLOG):
        assert rules.check_claim(task, {}, OTHER, now=expired) is ClaimVerdict.CLAIM  # a plain claim
    else:
        # waiting and review keep their holder whatever the lease says
        with pytest.raises(NotClaimable):
            rules.check_claim(task, {}, OTHER, now=expired)


def test_a_holder_only_verb_on_a_held_state_without_a_claim_is_refused_by_state() -> None:
    broken = Task(id="t1", title="x", state=S.ACTIVE)  # hand-made: active, nobody holds it
    with pytest.raises(NotClaimable) as ei:
        rules.check_move("done", broken, HOLDER)
    assert "nobody holds it" in ei.value.message and ei.value.details["state"] == "active"


def test_illegal_move_message_reads_like_a_sentence() -> None:
    with pytest.raises(NotClaimable) as ei:
        rules.check_move("resume", task_in(S.DONE), HOLDER)
    msg = ei.value.message
    assert msg.startswith("cannot resume t1: it is done; resume needs waiting.")
    assert "From done: " in msg and "retry" in msg and "reopen" in msg


def test_done_is_said_as_complete() -> None:
    with pytest.raises(NotClaimable, match=r"^cannot complete t1: it is todo"):
        rules.check_move("done", task_in(S.TODO), HOLDER)


# --- what a move does to the other fields ------------------------------------------


def row_of(verb: str, state: State) -> rules.Move:
    return next(m for m in rules.MOVES if m.verb == verb and state in m.sources)


def test_wait_records_what_it_waits_for_and_resume_clears_it() -> None:
    active = task_in(S.ACTIVE)
    waiting = rules.apply_move(row_of("wait", S.ACTIVE), active, now=T1, waiting_for="CI on main")
    assert waiting.state is S.WAITING and waiting.waiting_for == "CI on main"
    assert waiting.claim == active.claim  # the holder keeps it, claimed-at unchanged
    resumed = rules.apply_move(row_of("resume", S.WAITING), waiting, now=T1)
    assert resumed.state is S.ACTIVE and resumed.waiting_for is None and resumed.claim == active.claim


@pytest.mark.parametrize("verb", ["reset", "cancel"])
def test_leaving_waiting_clears_waiting_for(verb: str) -> None:
    new = rules.apply_move(row_of(verb, S.WAITING), task_in(S.WAITING), now=T1)
    assert new.waiting_for is None and new.claim is None


def test_fail_records_the_reason_and_retry_or_reopen_clear_it() -> None:
    active = task_in(S.ACTIVE)
    failed = rules.apply_move(row_of("fail", S.ACTIVE), active, now=T1, fail_reason="out of memory")
    assert failed.state is S.FAILED and failed.fail_reason == "out of memory" and failed.claim is None
    for verb in ("retry", "reopen"):
        again = rules.apply_move(row_of(verb, S.FAILED), failed, now=T1)
        assert again.state is S.TODO and again.fail_reason is None
    cancelled = rules.apply_move(row_of("cancel", S.FAILED), failed, now=T1)
    assert cancelled.fail_reason is None


def test_handoff_keeps_the_lease_length_and_restarts_the_claim() -> None:
    active = task_in(S.ACTIVE)
    new = rules.apply_move(row_of("handoff", S.ACTIVE), active, now=T1, to=NEW)
    assert new.claim == Claim(NEW, T1, lease_seconds=LEASE)
    assert new.state is S.ACTIVE


def test_apply_claim_clears_waiting_for_and_without_a_lease_stores_none() -> None:
    t = Task(id="t1", title="x", waiting_for="left over")
    new = rules.apply_claim(t, OTHER, T1, 0)
    assert new.waiting_for is None
    assert new.claim is not None and new.claim.lease_seconds is None


# --- leases --------------------------------------------------------------------------


def active(lease: int | None = LEASE, holder: str = HOLDER, tid: str = "t1", **kw: object) -> Task:
    return Task(id=tid, title=tid, state=S.ACTIVE, claim=Claim(holder, T0, lease_seconds=lease), **kw)  # type: ignore[arg-type]


def test_lease_expiry_runs_from_the_claim_or_the_last_heartbeat_whichever_is_later() -> None:
    c = Claim(HOLDER, T0, lease_seconds=LEASE)
    assert rules.lease_expiry(c, None) == T0 + timedelta(seconds=LEASE)
    assert rules.lease_expiry(c, T0 + timedelta(seconds=50)) == T0 + timedelta(seconds=110)
    # a heartbeat older than the claim (an earlier task of the same agent) does not shorten it
    assert rules.lease_expiry(c, T0 - timedelta(hours=1)) == T0 + timedelta(seconds=LEASE)
    assert rules.lease_expiry(Claim(HOLDER, T0), T0) is None  # no lease: never expires


def test_lease_expired_at_the_boundary() -> None:
    c = Claim(HOLDER, T0, lease_seconds=LEASE)
    assert not rules.lease_expired(c, T0 + timedelta(seconds=LEASE - 1), None)
    assert rules.lease_expired(c, T0 + timedelta(seconds=LEASE), None)
    assert not rules.lease_expired(Claim(HOLDER, T0), T0 + timedelta(days=3650), None)


def test_a_live_lease_is_a_lost_race_naming_when_it_expires() -> None:
    seen = {HOLDER: T0 + timedelta(seconds=50)}
    with pytest.raises(LostRace) as ei:
        rules.check_claim(active(), {}, OTHER, now=T0 + timedelta(seconds=61), last_seen=seen)
    e = ei.value
    assert e.details["lease_expires"] == "2026-03-01T09:01:50Z"
    assert e.details["holder"] == HOLDER
    assert "lease until 2026-03-01T09:01:50Z" in e.message
    at = T0 + timedelta(seconds=110)
    assert rules.check_claim(active(), {}, OTHER, now=at, last_seen=seen) is ClaimVerdict.TAKEOVER


def test_other_agents_heartbeats_do_not_renew_the_holders_lease() -> None:
    seen = {OTHER: T0 + timedelta(seconds=500)}
    at = T0 + timedelta(seconds=LEASE)
    assert rules.check_claim(active(), {}, OTHER, now=at, last_seen=seen) is ClaimVerdict.TAKEOVER


def test_without_now_no_lease_is_judged_expired() -> None:
    with pytest.raises(LostRace):
        rules.check_claim(active(lease=1), {}, OTHER)


def test_a_takeover_does_not_need_the_dependencies_done_again() -> None:
    # dependencies were done when the first holder claimed; a regression must
    # not strand the task with a dead holder
    t = active(depends_on=("a",))
    a = Task(id="a", title="a", state=S.TODO)
    assert rules.check_claim(t, {"a": a}, OTHER, now=T0 + timedelta(hours=1)) is ClaimVerdict.TAKEOVER


def test_ready_lists_expired_active_tasks_only_when_given_now() -> None:
    tasks = [
        Task(id="free", title="x", created_at=T0),
        active(tid="expired", created_at=T0),
        active(tid="renewed", holder="alive-1", created_at=T0),
        active(lease=None, tid="no-lease", created_at=T0),
        Task(id="parked", title="x", state=S.WAITING, claim=Claim(HOLDER, T0, lease_seconds=1)),
    ]
    at = T0 + timedelta(seconds=LEASE + 1)
    seen = {"alive-1": T0 + timedelta(seconds=30)}
    assert sorted(t.id for t in rules.ready(tasks, now=at, last_seen=seen)) == ["expired", "free"]
    assert [t.id for t in rules.ready(tasks)] == ["free"]


# --- downstream -------------------------------------------------------------------------


def test_downstream_is_transitive_breadth_first_and_ignores_other_branches() -> None:
    def t(tid: str, *deps: str) -> Task:
        return Task(id=tid, title=tid, depends_on=deps)

    tasks = [
        t("up"),
        t("d1", "up"),
        t("d2", "d1"),
        t("d3", "d2"),
        t("s1", "up"),
        t("s2", "s1", "d1"),  # reached twice: listed once
        t("other"),
        t("after-other", "other"),
    ]
    out = rules.downstream(tasks, "up")
    assert out == ["d1", "s1", "d2", "s2", "d3"]
    assert rules.downstream(tasks, "d3") == []
    assert rules.downstream(tasks, "other") == ["after-other"]


def test_downstream_survives_a_cycle() -> None:
    tasks = [Task(id="a", title="a", depends_on=("b",)), Task(id="b", title="b", depends_on=("a",))]
    assert rules.downstream(tasks, "a") == ["b"]


# --- refusals say what a waiting task waits for ----------------------------------------


def test_claiming_a_waiting_task_says_what_it_waits_for() -> None:
    """The design: a refusal names the state and why, "including what it waits for"."""
    parked = task_in(S.WAITING)
    with pytest.raises(NotClaimable) as ei:
        rules.check_claim(parked, {}, OTHER, now=T0)
    assert "the vendor's reply" in ei.value.message
