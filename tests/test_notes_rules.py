"""Notes, results and parents as pure rules: the schema, the validator's moves, the trailers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gitclaim import audit, labels, model
from gitclaim.errors import BadInput, StoreCorrupt
from gitclaim.ids import task_path
from gitclaim.model import Claim, Note, Result, State, Task, dump_task, parse_task
from gitclaim.validate import Verdict, classify_commit

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)


def task(**kw: object) -> Task:
    base: dict[str, object] = {"id": "t1", "title": "A task", "created_at": T0, "created_by": "admin"}
    base.update(kw)
    return Task(**base)  # type: ignore[arg-type]


def judge(old: Task | None, new: Task, agent: str, *others: Task) -> Verdict:
    by_id = {t.id: t for t in (new, *others)}
    changes = {task_path(new.id): (dump_task(old) if old else None, dump_task(new))}
    return classify_commit(changes, agent=agent, lookup=by_id.get, now=NOW, last_seen={})


def rules_of(v: Verdict) -> list[str]:
    return [x.rule for x in v.violations]


N1 = Note(T0, "alice", "started; the parser is the slow part")
N2 = Note(NOW, "bob", "tried caching: 3x faster")


# --- the schema ---------------------------------------------------------------------


def test_a_task_without_the_new_fields_is_still_written_as_schema_1() -> None:
    assert dump_task(task()).startswith(b"schema = 1\n")
    assert dump_task(task(parent="epic")).startswith(b"schema = 2\n")
    assert dump_task(task(notes=(N1,))).startswith(b"schema = 2\n")


def test_old_schema_1_files_still_read_and_their_own_fields_stay_their_own() -> None:
    old = b'schema = 1\nid = "t1"\ntitle = "Old"\nstate = "todo"\nparent = "mine"\nnotes = "my text"\n'
    t = parse_task(old, expected_id="t1", path="p")
    assert t.parent is None and t.notes == () and t.result is None
    assert t.extra == {"parent": "mine", "notes": "my text"}
    assert dump_task(t).startswith(b"schema = 1\n")  # written back as it was: an old reader still reads it
    with pytest.raises(BadInput, match="schema 2 owns"):
        dump_task(t.evolve(result=Result("r", "alice", NOW)))


def test_notes_result_and_parent_round_trip_with_multiline_text() -> None:
    t = task(parent="epic", notes=(N1, Note(NOW, "bob", "line one\nline two")), result=Result("a\nb", "bob", NOW))
    assert parse_task(dump_task(t), expected_id="t1", path="p") == t
    j = t.to_json()
    assert j["parent"] == "epic"
    assert j["notes"][1] == {"at": "2026-03-01T12:00:00Z", "by": "bob", "text": "line one\nline two"}
    assert j["result"] == {"text": "a\nb", "by": "bob", "at": "2026-03-01T12:00:00Z"}


@pytest.mark.parametrize(
    ("tail", "says"),
    [
        ('[[notes]]\nat = 2026-01-01T00:00:00Z\ntext = "x"\n', "notes[0]' must be a table of exactly at, by and text"),
        ('[[notes]]\nat = "yesterday"\nby = "a"\ntext = "x"\n', "notes[0].at' must be a TOML date-time"),
        ('[[notes]]\nat = 2026-01-01T00:00:00Z\nby = "no body"\ntext = "x"\n', "not a legal agent name"),
        ('notes = "free text"\n', "'notes' must be an array of tables"),
        ('[result]\ntext = ""\nby = "a"\nat = 2026-01-01T00:00:00Z\n', "'result.text' must be a non-empty string"),
        ('parent = "t1"\n', "cannot be its own parent"),
        ('parent = "../x"\n', "'parent' must be a task id"),
    ],
)
def test_a_malformed_hand_edit_is_a_clear_error(tail: str, says: str) -> None:
    body = 'schema = 2\nid = "t1"\ntitle = "x"\nstate = "todo"\n' + tail
    with pytest.raises(StoreCorrupt) as ei:
        parse_task(body.encode(), expected_id="t1", path="tasks/xx/t1.toml")
    assert ei.value.message.startswith("tasks/xx/t1.toml: ") and says in ei.value.message


def test_a_new_task_from_input_cannot_carry_notes_or_a_result() -> None:
    for key in ("notes", "result"):
        with pytest.raises(BadInput, match=f"cannot carry {key}"):
            model.task_from_input({"id": "x", "title": "t", key: []}, default_priority=2, created_at=NOW,
                                  created_by="a")  # fmt: skip
    t = model.task_from_input({"id": "x", "title": "t", "parent": "epic"}, default_priority=2, created_at=NOW,
                              created_by="a")  # fmt: skip
    assert t.parent == "epic"


# --- the validator --------------------------------------------------------------------


def test_appending_a_note_is_its_own_move_by_anyone_in_any_state() -> None:
    held = task(state=State.ACTIVE, claim=Claim("alice", T0), notes=(N1,))
    v = judge(held, held.evolve(notes=(N1, N2)), "bob")
    assert v.violations == ()
    [m] = v.moves
    assert (m.verb, m.notes_added, m.from_state, m.to_state) == ("note", 1, "active", "active")
    done = task(state=State.DONE)
    assert judge(done, done.evolve(notes=(Note(NOW, "carol", "looked fine"),)), "carol").moves[0].verb == "note"


@pytest.mark.parametrize(
    "notes",
    [
        (Note(T0, "alice", "started; the parser is the FAST part"), N2),  # text rewritten
        (Note(T0, "mallory", N1.text), N2),  # author rewritten
        (N2,),  # the first dropped
        (),  # all dropped
    ],
)
def test_rewriting_or_removing_a_note_is_refused(notes: tuple[Note, ...]) -> None:
    old = task(notes=(N1,))
    v = judge(old, old.evolve(notes=notes), "bob")
    assert "notes" in rules_of(v), v.violations
    assert v.moves[0].verb == "illegal"
    assert "never rewritten or removed; note 1 (by alice" in v.violations[0].message


def test_a_note_must_name_its_author_and_come_alone() -> None:
    old = task()
    assert "a note names its author" in judge(old, old.evolve(notes=(N1,)), "bob").violations[0].message
    v = judge(old, old.evolve(notes=(N2,), title="renamed"), "bob")
    assert rules_of(v) == ["notes"] and "commit of its own" in v.violations[0].message
    held = task(state=State.ACTIVE, claim=Claim("bob", T0))
    v = judge(held, held.evolve(state=State.TODO, claim=None, notes=(N2,)), "bob")
    assert rules_of(v) == ["notes"]


def test_a_result_comes_with_done_by_its_author_and_is_never_removed() -> None:
    held = task(state=State.ACTIVE, claim=Claim("bob", T0))
    finished = held.evolve(state=State.DONE, claim=None, result=Result("PR #12", "bob", NOW))
    v = judge(held, finished, "bob")
    assert v.violations == () and v.moves[0].verb == "done" and v.moves[0].result_set
    forged = judge(held, finished.evolve(result=Result("x", "eve", NOW)), "bob")
    assert "names its author" in forged.violations[0].message
    # with any other move, or alone: refused
    assert rules_of(judge(task(), task(result=Result("x", "bob", NOW)), "bob")) == ["result"]
    reopened = finished.evolve(state=State.TODO, result=None)
    v = judge(finished, reopened, "bob")
    assert rules_of(v) == ["result"] and "never removed" in v.violations[0].message
    # kept by a reopen or a retry
    assert judge(finished, finished.evolve(state=State.TODO), "carol").moves[0].verb in ("reopen", "retry")


def test_a_parent_must_exist_and_not_loop() -> None:
    assert rules_of(judge(task(), task(parent="nowhere"), "a")) == ["parent"]
    epic = task(id="epic", title="Epic")
    v = judge(task(), task(parent="epic"), "a", epic)
    assert v.violations == () and v.moves[0].verb == "edit"
    # epic -> t1 -> epic
    v = judge(epic, epic.evolve(parent="t1"), "a", task(parent="epic"))
    assert rules_of(v) == ["parent"] and "parent cycle: epic -> t1 -> epic" in v.violations[0].message
    # a loop higher up is not this task's own
    a, b = task(id="a", title="a", parent="b"), task(id="b", title="b", parent="a")
    assert judge(None, task(id="c", title="c", parent="a"), "x", a, b).violations == ()


def test_a_new_task_starts_without_notes_or_a_result() -> None:
    v = judge(None, task(notes=(N1,)), "alice")
    assert rules_of(v) == ["new-task"] and v.moves[0].verb == "illegal"


# --- the trailers -------------------------------------------------------------------------


def test_the_trailers_of_a_note_and_of_a_result_must_agree_with_the_change() -> None:
    old = task(state=State.ACTIVE, claim=Claim("bob", T0))
    noted = judge(old, old.evolve(notes=(N2,)), "bob").moves
    rec = audit.Record(op="note", agent="bob", task="t1", from_state="active", to_state="active", note="x")
    assert audit.read(audit.write("note", rec)) == rec
    assert labels.disagreements(rec, noted, "bob") == []
    assert labels.disagreements(audit.Record(op="edit", agent="bob", task="t1"), noted, "bob")
    finished = judge(old, old.evolve(state=State.DONE, claim=None, result=Result("r", "bob", NOW)), "bob").moves
    said = audit.Record(op="done", agent="bob", task="t1", result="r")
    assert audit.read(audit.write("done", said)) == said
    assert labels.disagreements(said, finished, "bob") == []
    silent = audit.Record(op="done", agent="bob", task="t1")
    assert labels.disagreements(silent, finished, "bob") == ["t1: the trailers record no result, but the change does"]
    plain = judge(old, old.evolve(state=State.DONE, claim=None), "bob").moves
    assert labels.disagreements(said, plain, "bob") == ["t1: the trailers record a result, but the change does not"]
