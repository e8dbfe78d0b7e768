"""The pure validator ``check_commit``: every rule, on synthetic file contents.

Files are built with ``dump_task`` (or written as raw bytes where they must be
broken); ``lookup`` stands for the new tree; time and heartbeats come in as
parameters. No git here: test_enforce.py feeds the same function from real
repositories.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from gitclaim.ids import STORE_FILE, fanout, task_path
from gitclaim.model import Claim, State, StoreConfig, Task, dump_store_config, dump_task
from gitclaim.validate import Change, Violation, check_commit, merged_cleanly, task_id_of

T0 = datetime(2026, 1, 31, 12, 0, 0, tzinfo=UTC)
S = State


def task(
    tid: str = "t1",
    state: State = S.TODO,
    holder: str | None = None,
    *,
    lease: int | None = None,
    claimed_at: datetime = T0,
    **kw: object,
) -> Task:
    claim = Claim(holder, claimed_at, lease) if holder is not None else None
    return Task(id=tid, title=f"task {tid}", state=state, claim=claim, created_at=T0, created_by="admin", **kw)  # type: ignore[arg-type]


def ch(old: Task | bytes | None, new: Task | bytes | None) -> Change:
    def raw(x: Task | bytes | None) -> bytes | None:
        return dump_task(x) if isinstance(x, Task) else x

    return raw(old), raw(new)


def check(
    changes: Mapping[str, Change],
    *,
    agent: str = "bob",
    tree: Mapping[str, Task] | None = None,
    now: datetime = T0,
    seen: Mapping[str, datetime] | None = None,
    commit: str | None = None,
) -> list[Violation]:
    """check_commit with a lookup over ``tree`` (the rest of the new tree)."""
    known = dict(tree or {})
    return check_commit(changes, agent=agent, lookup=known.get, now=now, last_seen=seen or {}, commit=commit)


def move(old: Task, new: Task, **kw: object) -> list[Violation]:
    return check({task_path(old.id): ch(old, new)}, **kw)  # type: ignore[arg-type]


def only(violations: list[Violation], rule: str, task_id: str | None = "t1") -> Violation:
    assert len(violations) == 1, violations
    v = violations[0]
    assert v.rule == rule, v
    assert v.task == task_id
    return v


HELD = task(state=S.ACTIVE, holder="alice")


# --- plain edits ---------------------------------------------------------------


def test_a_plain_edit_of_a_task_someone_else_holds_is_legal() -> None:
    new = HELD.evolve(title="better title", description="more", tags=("x",), priority=0)
    assert move(HELD, new, agent="bob") == []


def test_unknown_fields_of_ones_own_are_plain_edits() -> None:
    assert move(task(), task(extra={"estimate": 3})) == []


def test_no_change_at_all_is_legal() -> None:
    assert move(HELD, HELD) == []


@pytest.mark.parametrize("field", ["waiting_for", "fail_reason"])
def test_verb_owned_fields_do_not_change_without_a_verb(field: str) -> None:
    old = task(state=S.WAITING, holder="alice", waiting_for="the vendor")
    if field == "fail_reason":
        old = task(state=S.FAILED, fail_reason="it broke")
    new = old.evolve(**{field: "something else"})
    v = only(move(old, new, agent="alice"), "claim-fields")  # not even the holder
    assert "change only through verbs" in v.message


# --- new tasks ------------------------------------------------------------------


@pytest.mark.parametrize("state", [S.TODO, S.BACKLOG, S.SOMEDAY])
def test_a_new_unclaimed_task_in_a_planning_state_is_legal(state: State) -> None:
    assert check({task_path("t1"): ch(None, task(state=state))}) == []


@pytest.mark.parametrize(
    "new",
    [task(state=S.ACTIVE, holder="bob"), task(state=S.DONE), task(state=S.TODO, holder="bob")],
    ids=["active", "done", "todo-with-claim"],
)
def test_a_new_task_must_start_unclaimed_in_a_planning_state(new: Task) -> None:
    v = only(check({task_path("t1"): ch(None, new)}), "new-task")
    assert "starts unclaimed" in v.message


def test_a_new_task_may_depend_on_a_task_in_the_new_tree() -> None:
    new = task("t2", depends_on=("t1",))
    assert check({task_path("t2"): ch(None, new)}, tree={"t1": task()}) == []


def test_a_dependency_that_does_not_exist_is_a_schema_violation() -> None:
    v = only(check({task_path("t2"): ch(None, task("t2", depends_on=("ghost",)))}), "schema", "t2")
    assert "'ghost'" in v.message and "does not exist" in v.message


# --- files that are not tasks ----------------------------------------------------


def test_the_fan_out_folder_must_match_the_id() -> None:
    wrong = "00" if fanout("t1") != "00" else "01"
    v = only(check({f"tasks/{wrong}/t1.toml": ch(None, task())}), "layout")
    assert f"tasks/{fanout('t1')}/t1.toml" in v.message


@pytest.mark.parametrize(
    "path",
    [
        f"tasks/{fanout('t1')}/t1.txt",  # not .toml
        f"tasks/{fanout('t1')}/notes.md",
        "tasks/t1.toml",  # no fan-out folder
        f"tasks/{fanout('t1')}/deeper/t1.toml",
        f"tasks/{fanout('Bad_Id')}/Bad_Id.toml",  # not a legal id
    ],
)
def test_only_task_files_belong_under_tasks(path: str) -> None:
    vs = check({path: ch(None, task())})
    assert [v.rule for v in vs] == ["layout"], vs
    assert vs[0].path == path


def test_the_tasks_readme_and_files_outside_tasks_are_the_users_own() -> None:
    changes = {
        "tasks/README.md": (b"old", b"new"),
        "docs/notes.txt": (None, b"anything at all \xff"),
        "README.md": (b"x", None),
    }
    assert check(changes) == []


def test_task_id_of_names_only_task_files() -> None:
    assert task_id_of("tasks/ab/t1.toml") == "t1"
    assert task_id_of("tasks/t1.toml") is None
    assert task_id_of("tasks/ab/t1.txt") is None


# --- the store file ---------------------------------------------------------------


def test_the_store_file_may_be_edited_validly() -> None:
    old, new = StoreConfig(created_at=T0), StoreConfig(created_at=T0, default_priority=5)
    assert check({STORE_FILE: (dump_store_config(old), dump_store_config(new))}) == []


@pytest.mark.parametrize(
    ("new", "says"),
    [
        (None, "must not be deleted"),
        (b"kind = [oops", "malformed TOML"),
        (b'schema = 1\nkind = "something-else"\n', "'kind' must be"),
        (b'schema = 2\nkind = "gitclaim-store"\n', "newer than this gitclaim understands"),
    ],
)
def test_the_store_file_must_stay_a_store_file(new: bytes | None, says: str) -> None:
    v = only(check({STORE_FILE: (dump_store_config(StoreConfig()), new)}), "store-file", None)
    assert says in v.message


# --- schema and deletion ----------------------------------------------------------


def test_deleting_a_task_is_refused() -> None:
    v = only(check({task_path("t1"): ch(task(), None)}), "deleted")
    assert "cancel it instead" in v.message


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b'schema = 1\nid = "t1\n', "malformed TOML"),
        (dump_task(task()).replace(b'state = "todo"', b'state = "doing"'), "unknown state 'doing'"),
        (dump_task(task("t9")), "named for 't1'"),
        (dump_task(task()).replace(b"schema = 1", b"schema = 7"), "newer than this gitclaim"),
        (b"\xff\xfe not utf-8", "not UTF-8"),
        (dump_task(task()).replace(b'state = "todo"', b'state = "active"'), "must have a [claim] table"),
    ],
    ids=["malformed", "unknown-state", "id-mismatch", "schema-too-new", "not-utf8", "active-without-claim"],
)
def test_a_task_file_that_does_not_parse_is_a_schema_violation(data: bytes, says: str) -> None:
    v = only(check({task_path("t1"): ch(task(), data)}), "schema")
    assert says in v.message


# --- transitions ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (task(state=S.DONE), task(state=S.ACTIVE, holder="bob")),  # claiming a done task
        (task(state=S.TODO), task(state=S.DONE)),
        (task(state=S.TODO), task(state=S.WAITING, holder="bob")),
        (task(state=S.CANCELLED), task(state=S.ACTIVE, holder="bob")),
        (task(state=S.SOMEDAY), task(state=S.ACTIVE, holder="bob")),
    ],
    ids=["done-active", "todo-done", "todo-waiting", "cancelled-active", "someday-active"],
)
def test_a_move_no_row_of_the_table_allows_is_refused(old: Task, new: Task) -> None:
    v = only(move(old, new), "transition")
    assert f"{old.state} -> {new.state} is not a legal move" in v.message


@pytest.mark.parametrize(("a", "b"), [(S.TODO, S.BACKLOG), (S.BACKLOG, S.SOMEDAY), (S.SOMEDAY, S.TODO)])
def test_planning_moves_are_anyones(a: State, b: State) -> None:
    assert move(task(state=a), task(state=b)) == []


# --- claims -----------------------------------------------------------------------


def test_a_claim_by_its_author_of_a_ready_task_is_legal() -> None:
    assert move(task(), task(state=S.ACTIVE, holder="bob"), agent="bob") == []
    assert move(task(state=S.BACKLOG), task(state=S.ACTIVE, holder="bob", lease=60), agent="bob") == []


def test_a_claim_must_name_its_author_as_holder() -> None:
    v = only(move(task(), task(state=S.ACTIVE, holder="alice"), agent="bob"), "ownership")
    assert "must name its author as holder (bob)" in v.message


def test_a_claim_of_a_task_whose_dependency_is_not_done_is_refused() -> None:
    old, new = task(depends_on=("d1", "d2")), task(state=S.ACTIVE, holder="bob", depends_on=("d1", "d2"))
    tree = {"d1": task("d1", state=S.DONE), "d2": task("d2", state=S.REVIEW, holder="carol")}
    v = only(move(old, new, tree=tree), "claimable")
    assert "d2 (review)" in v.message and "d1" not in v.message


def test_a_claim_is_legal_once_every_dependency_is_done() -> None:
    old, new = task(depends_on=("d1",)), task(state=S.ACTIVE, holder="bob", depends_on=("d1",))
    assert move(old, new, tree={"d1": task("d1", state=S.DONE)}) == []


def test_changing_someone_elses_claim_is_refused() -> None:
    new = HELD.evolve(claim=Claim("bob", T0))
    v = only(move(HELD, new, agent="bob"), "ownership")
    assert "held by alice, whose lease has not expired" in v.message


def test_the_holder_cannot_rewrite_its_own_claim() -> None:
    new = HELD.evolve(claim=Claim("alice", T0 + timedelta(hours=1), 3600))
    v = only(move(HELD, new, agent="alice"), "claim-fields")
    assert "cannot rewrite its own claim" in v.message


# --- takeover and leases --------------------------------------------------------


LEASED = task(state=S.ACTIVE, holder="alice", lease=60)
TAKEN = LEASED.evolve(claim=Claim("bob", T0 + timedelta(seconds=61)))


@pytest.mark.parametrize(
    ("now", "seen", "legal"),
    [
        (T0 + timedelta(seconds=30), None, False),  # lease running
        (T0 + timedelta(seconds=59), None, False),
        (T0 + timedelta(seconds=60), None, True),  # expires exactly at claimed_at + lease
        (T0 + timedelta(seconds=61), None, True),
        (T0 + timedelta(seconds=61), T0 + timedelta(seconds=50), False),  # a heartbeat renewed it
        (T0 + timedelta(seconds=111), T0 + timedelta(seconds=50), True),
        (T0 + timedelta(seconds=61), T0 - timedelta(hours=1), True),  # an older heartbeat does not
    ],
)
def test_takeover_is_legal_only_after_the_lease_expired(now: datetime, seen: datetime | None, legal: bool) -> None:
    vs = move(LEASED, TAKEN, agent="bob", now=now, seen={"alice": seen} if seen else None)
    if legal:
        assert vs == []
    else:
        v = only(vs, "ownership")
        assert "whose lease has not expired" in v.message


def test_a_claim_without_a_lease_is_never_taken_over() -> None:
    new = HELD.evolve(claim=Claim("bob", T0))
    only(move(HELD, new, agent="bob", now=T0 + timedelta(days=3650)), "ownership")


def test_a_takeover_must_name_its_author() -> None:
    v = only(move(LEASED, TAKEN, agent="carol", now=T0 + timedelta(hours=1)), "ownership")
    assert "must name its author" in v.message or "only the holder" in v.message


def test_another_agents_heartbeat_does_not_renew_the_holders_lease() -> None:
    seen = {"bob": T0 + timedelta(seconds=59)}
    assert move(LEASED, TAKEN, agent="bob", now=T0 + timedelta(seconds=61), seen=seen) == []


# --- holder-only moves -----------------------------------------------------------


@pytest.mark.parametrize(
    ("verb", "new"),
    [
        ("done", HELD.evolve(state=S.DONE, claim=None)),
        ("wait", HELD.evolve(state=S.WAITING, waiting_for="vendor")),
        ("review", HELD.evolve(state=S.REVIEW)),
        ("fail", HELD.evolve(state=S.FAILED, claim=None, fail_reason="broke")),
        ("cancel", HELD.evolve(state=S.CANCELLED, claim=None)),
        ("handoff", HELD.evolve(claim=Claim("carol", T0 + timedelta(minutes=5)))),
    ],
)
def test_holder_only_moves(verb: str, new: Task) -> None:
    assert move(HELD, new, agent="alice") == []
    v = only(move(HELD, new, agent="bob"), "ownership")
    # a handoff by a non-holder is also read as a claim or a takeover: each refusal is about ownership
    assert any(
        say in v.message
        for say in ("held by alice; pushed by bob", "whose lease has not expired", "must name its author")
    ), v


def test_completing_a_task_one_does_not_hold_names_the_holder_and_the_pusher() -> None:
    v = only(move(HELD, HELD.evolve(state=S.DONE, claim=None), agent="bob"), "ownership")
    assert v.message == "t1: only the holder may done it (held by alice; pushed by bob)"


def test_a_handoff_must_name_a_new_holder() -> None:
    vs = move(HELD, HELD.evolve(claim=Claim("alice", T0 + timedelta(minutes=1))), agent="alice")
    only(vs, "claim-fields")


def test_wait_and_resume_keep_the_claim() -> None:
    waiting = HELD.evolve(state=S.WAITING, waiting_for="vendor")
    assert move(waiting, HELD, agent="alice") == []  # resume
    v = only(move(HELD, waiting.evolve(claim=Claim("alice", T0, 600)), agent="alice"), "claim-fields")
    assert "the claim must not change" in v.message


def test_finishing_leaves_no_claim() -> None:
    v = only(move(HELD, HELD.evolve(state=S.DONE), agent="alice"), "claim-fields")
    assert "leaves no claim" in v.message


def test_a_reviewer_approves_a_task_in_review() -> None:
    review = HELD.evolve(state=S.REVIEW)
    assert move(review, review.evolve(state=S.DONE, claim=None), agent="carol") == []


@pytest.mark.parametrize("state", [S.TODO, S.BACKLOG, S.SOMEDAY, S.FAILED])
def test_anyone_cancels_an_unheld_task(state: State) -> None:
    assert move(task(state=state), task(state=S.CANCELLED), agent="carol") == []


# --- reset, release, retry --------------------------------------------------------


def test_the_holder_releases() -> None:
    assert move(HELD, task(), agent="alice") == []


def test_clearing_anyones_claim_is_the_reset_row() -> None:
    for state in (S.ACTIVE, S.WAITING, S.REVIEW):
        old = task(state=state, holder="alice", waiting_for="x" if state is S.WAITING else None)
        assert move(old, task(), agent="operator") == []


def test_retry_clears_downstream_claims_by_a_non_holder() -> None:
    # t1 was done; t2 and t3 depend on it and are held by others. carol retries
    # t1, which puts the downstream tasks back in the queue in the same commit.
    t1 = task("t1", state=S.DONE)
    t2 = task("t2", state=S.ACTIVE, holder="alice", depends_on=("t1",))
    t3 = task("t3", state=S.WAITING, holder="dave", depends_on=("t2",), waiting_for="t2")
    changes = {
        task_path("t1"): ch(t1, t1.evolve(state=S.TODO)),
        task_path("t2"): ch(t2, t2.evolve(state=S.TODO, claim=None)),
        task_path("t3"): ch(t3, t3.evolve(state=S.TODO, claim=None, waiting_for=None)),
    }
    tree = {"t1": task("t1"), "t2": task("t2", depends_on=("t1",))}
    assert check(changes, agent="carol", tree=tree) == []


@pytest.mark.parametrize("state", [S.DONE, S.FAILED])
def test_retry_must_leave_no_claim(state: State) -> None:
    old = task(state=state, fail_reason="x" if state is S.FAILED else None)
    assert move(old, task(), agent="carol") == []
    v = only(move(old, task(holder="carol")), "claim-fields")
    assert "leaves no claim" in v.message


# --- repairs ------------------------------------------------------------------------


def test_repairing_a_corrupt_file_is_legal_for_anyone() -> None:
    broken = b'schema = 1\nid = "t1"\nstate = "doing"\n'
    assert check({task_path("t1"): ch(broken, task(state=S.DONE))}, agent="carol") == []
    assert check({task_path("t1"): ch(b"[[[", task())}, agent="carol") == []


def test_a_repaired_file_must_not_carry_a_claim() -> None:
    v = only(check({task_path("t1"): ch(b"[[[", task(state=S.ACTIVE, holder="carol"))}), "claim-fields")
    assert "must not carry a claim" in v.message


def test_a_repair_must_itself_parse() -> None:
    only(check({task_path("t1"): ch(b"[[[", b"]]]")}), "schema")


# --- reporting ----------------------------------------------------------------------


def test_every_violation_of_a_commit_is_reported_in_path_order_with_the_commit() -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    changes = {
        task_path("t1"): ch(task("t1"), None),
        task_path("t2"): ch(task("t2", state=S.DONE), task("t2", state=S.ACTIVE, holder="bob")),
        task_path("t3"): ch(task("t3"), task("t3", description="fine")),
        STORE_FILE: (dump_store_config(StoreConfig()), None),
    }
    vs = check(changes, commit=sha)
    assert [v.path for v in vs] == sorted([task_path("t1"), task_path("t2"), STORE_FILE])
    assert {v.rule for v in vs} == {"deleted", "transition", "store-file"}
    assert all(v.commit == sha for v in vs)
    deleted = next(v for v in vs if v.rule == "deleted")
    assert str(deleted) == f"0123456789 {task_path('t1')}: [deleted] task t1 must not be deleted (cancel it instead)"
    assert deleted.to_json() == {
        "commit": sha,
        "path": task_path("t1"),
        "task": "t1",
        "rule": "deleted",
        "message": "task t1 must not be deleted (cancel it instead)",
    }


def test_a_violation_without_a_commit_prints_without_one() -> None:
    v = only(check({task_path("t1"): ch(task(), None)}), "deleted")
    assert str(v).startswith(f"{task_path('t1')}: [deleted]")


# --- dependency cycles -----------------------------------------------------------


def test_a_cycle_closed_by_a_commit_is_one_violation_however_many_tasks_it_rewires() -> None:
    """A hand-made commit adds 2,000 chained tasks and closes them into a loop:
    one violation naming the loop, found in one pass (no N² walk)."""
    n = 2000
    tasks = [task(f"c{i}", depends_on=(f"c{(i - 1) % n}",)) for i in range(n)]
    tree = {t.id: t for t in tasks}
    (v,) = check({task_path(t.id): ch(None, t) for t in tasks}, tree=tree)
    assert v.rule == "schema" and v.message.startswith("dependency cycle: ")
    assert v.path == task_path(v.task or "") and len(v.message.split(" -> ")) == n + 1


def test_depending_on_a_loop_made_by_hand_earlier_is_not_this_commits_cycle() -> None:
    loop = {"a": task("a", depends_on=("b",)), "b": task("b", depends_on=("a",))}
    new = task("t1", depends_on=("a",))
    assert check({task_path("t1"): ch(None, new)}, tree={**loop, "t1": new}) == []


# --- merges: a task file both sides changed ---------------------------------------

DONE = task(state=S.DONE)
TAGGED = task(state=S.ACTIVE, holder="alice", tags=("by-hand",))


@pytest.mark.parametrize(
    ("first", "second", "merged", "clean"),
    [
        (TAGGED, DONE, task(state=S.DONE, tags=("by-hand",)), True),  # each field as its side left it
        (DONE, TAGGED, task(state=S.DONE, tags=("by-hand",)), True),
        (TAGGED, DONE, task(state=S.ACTIVE, holder="alice", tags=("by-hand",)), False),  # the done dropped
        (TAGGED, DONE, task(state=S.DONE, tags=("other",)), False),  # a value neither side wrote
        (task(state=S.ACTIVE, holder="bob"), DONE, DONE, False),  # both changed the claim: a conflict
        (task(state=S.ACTIVE, holder="alice", priority=1), task(state=S.ACTIVE, holder="alice", priority=1),
         task(state=S.ACTIVE, holder="alice", priority=1), True),  # both made the same change
    ],
)  # fmt: skip
def test_merged_cleanly_takes_each_field_from_the_side_that_changed_it(
    first: Task, second: Task, merged: Task, clean: bool
) -> None:
    assert merged_cleanly(dump_task(HELD), dump_task(first), dump_task(second), dump_task(merged)) is clean


def test_a_merge_of_a_file_absent_or_unreadable_on_a_side_is_not_clean() -> None:
    held, done = dump_task(HELD), dump_task(DONE)
    assert merged_cleanly(None, done, done, done) is False
    assert merged_cleanly(held, b"not = [toml", done, done) is False
