"""The task model and its TOML codec (schema 1). Pure: no git, no clock."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitclaim import model
from gitclaim.errors import BadInput, SchemaTooNew, StoreCorrupt
from gitclaim.ids import task_path
from gitclaim.model import Claim, State, Task

T0 = datetime(2026, 1, 31, 12, 0, 0, tzinfo=UTC)
PATH = task_path("fix-login")


def full_task(**changes: object) -> Task:
    t = Task(
        id="fix-login",
        title="Fix the login page",
        state=State.ACTIVE,
        priority=1,
        depends_on=("setup-db", "auth.v2"),
        tags=("web", "urgent"),
        description='Line one\nline two with "quotes" and \\ backslash\n\ttabbed',
        acceptance=("logs in", "logs out"),
        created_at=T0,
        created_by="agent-1",
        claim=Claim(holder="agent-7", claimed_at=T0 + timedelta(minutes=5), extra={"lease_until": T0, "note": "hi"}),
        extra={
            "estimate": 3,
            "ratio": 0.5,
            "flag": True,
            "links": ["https://example.invalid/a", "b"],
            "notes": {"reviewer": "ann", "nested": {"deep": [1, 2, 3]}},
            "due": date(2026, 2, 1),
            "history": [{"who": "x", "n": 1}, {"who": "y", "n": 2}],
        },
    )
    return t.evolve(**changes)


def toml(text: str) -> bytes:
    return text.encode()


def minimal(**fields: str) -> bytes:
    doc = {"schema": "1", "id": '"fix-login"', "title": '"t"', "state": '"todo"'}
    doc.update(fields)
    return "\n".join(f"{k} = {v}" for k, v in doc.items() if v is not None).encode() + b"\n"


def parse(data: bytes, expected_id: str | None = "fix-login") -> Task:
    return model.parse_task(data, expected_id=expected_id, path=PATH)


# --- round trip ----------------------------------------------------------------


def test_round_trip_of_a_full_task_is_exact() -> None:
    t = full_task()
    assert parse(model.dump_task(t)) == t


def test_round_trip_of_a_minimal_task() -> None:
    t = Task(id="a", title="x")
    assert model.parse_task(model.dump_task(t), expected_id="a", path="p") == t


@pytest.mark.parametrize("state", list(State))
def test_round_trip_in_every_state(state: State) -> None:
    claim = Claim("agent-7", T0) if state in (State.ACTIVE, State.WAITING, State.REVIEW) else None
    t = full_task(state=state, claim=claim)
    assert parse(model.dump_task(t)) == t


def test_dump_is_stable_bytes() -> None:
    t = full_task()
    once = model.dump_task(t)
    assert model.dump_task(parse(once)) == once


def test_unknown_top_level_fields_and_tables_survive_a_rewrite() -> None:
    data = minimal() + b'estimate = 3\nowner_team = "web"\n\n[notes]\nreviewer = "ann"\nsteps = ["a", "b"]\n'
    t = parse(data)
    assert t.extra == {"estimate": 3, "owner_team": "web", "notes": {"reviewer": "ann", "steps": ["a", "b"]}}
    again = tomllib.loads(model.dump_task(t.evolve(state=State.DONE)).decode())
    assert again["estimate"] == 3
    assert again["owner_team"] == "web"
    assert again["notes"] == {"reviewer": "ann", "steps": ["a", "b"]}
    assert again["state"] == "done"


def test_unknown_keys_inside_claim_survive_a_rewrite() -> None:
    data = minimal(state='"active"') + b'\n[claim]\nholder = "agent-7"\nclaimed_at = 2026-01-31T12:00:00Z\n'
    data += b'lease_until = 2026-01-31T13:00:00Z\nsession = { host = "m1", pid = 42 }\n'
    t = parse(data)
    assert t.claim is not None
    assert t.claim.holder == "agent-7"
    assert dict(t.claim.extra) == {
        "lease_until": datetime(2026, 1, 31, 13, tzinfo=UTC),
        "session": {"host": "m1", "pid": 42},
    }
    doc = tomllib.loads(model.dump_task(t).decode())
    assert doc["claim"]["session"] == {"host": "m1", "pid": 42}
    assert doc["claim"]["lease_until"] == datetime(2026, 1, 31, 13, tzinfo=UTC)
    assert parse(model.dump_task(t)) == t


def test_dump_writes_schema_and_owned_fields() -> None:
    doc = tomllib.loads(model.dump_task(full_task()).decode())
    assert doc["schema"] == 1  # no parent, result or notes: still schema 1 (docs/design.md)
    assert doc["id"] == "fix-login"
    assert doc["state"] == "active"
    assert doc["claim"]["holder"] == "agent-7"
    assert doc["claim"]["claimed_at"] == T0 + timedelta(minutes=5)


def test_times_are_normalised_to_utc_whole_seconds() -> None:
    plus2 = timezone(timedelta(hours=2))
    t = Task(id="a", title="x", created_at=datetime(2026, 1, 31, 14, 0, 0, 999_999, tzinfo=plus2))
    back = model.parse_task(model.dump_task(t), expected_id="a", path="p")
    assert back.created_at == datetime(2026, 1, 31, 12, 0, 0, tzinfo=UTC)
    assert back.created_at is not None and back.created_at.utcoffset() == timedelta(0)


def test_a_local_datetime_is_read_as_utc() -> None:
    t = parse(minimal(created_at="2026-01-31T12:00:00"))
    assert t.created_at == T0


def test_defaults_when_optional_fields_are_absent() -> None:
    t = parse(minimal())
    assert t.priority == model.DEFAULT_PRIORITY
    assert t.depends_on == () and t.tags == () and t.acceptance == ()
    assert t.description == "" and t.created_at is None and t.claim is None
    assert t.extra == {}


def test_round_trip_keeps_carriage_returns_in_text() -> None:
    # A description pasted from Windows carries CRLF; a rewrite must not
    # silently change it.
    t = Task(id="a", title="x", description="line one\r\nline two\r\n")
    back = model.parse_task(model.dump_task(t), expected_id="a", path="p")
    assert back.description == t.description


# Text without '\r' (see the test above for that one).
_text = st.text(st.characters(blacklist_characters="\r", blacklist_categories=("Cs",)), max_size=60)
_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_ids = st.builds(
    lambda a, mid, z: a + mid + z, st.sampled_from(_ALNUM), st.text("abz09_-", max_size=8), st.sampled_from(_ALNUM)
)
_agents = st.builds(
    lambda a, mid, z: a + mid + z, st.sampled_from("aZ9"), st.text("aZ9._+-", max_size=8), st.sampled_from("aZ9_")
).filter(lambda name: ".." not in name and not name.endswith(".lock"))  # what git refuses in a ref name
_times = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=0)
)


@st.composite
def tasks(draw: st.DrawFn) -> Task:
    tid = draw(_ids)
    state = draw(st.sampled_from(list(State)))
    claim = None
    if state in (State.ACTIVE, State.WAITING, State.REVIEW) or draw(st.booleans()):
        claim = Claim(draw(_agents), draw(_times), lease_seconds=draw(st.none() | st.integers(1, 10**6)))
    return Task(
        id=tid,
        title=draw(_text.filter(lambda s: s.strip() != "")),
        state=state,
        priority=draw(st.integers(model.PRIORITY_MIN, model.PRIORITY_MAX)),
        depends_on=tuple(draw(st.lists(_ids.filter(lambda d: d != tid), max_size=3))),
        tags=tuple(draw(st.lists(_text, max_size=3))),
        description=draw(_text),
        acceptance=tuple(draw(st.lists(_text, max_size=3))),
        created_at=draw(st.none() | _times),
        created_by=draw(st.none() | _agents),
        claim=claim,
        waiting_for=draw(st.none() | _text),
        fail_reason=draw(st.none() | _text),
        extra=draw(
            st.dictionaries(
                st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8).filter(
                    lambda k: k not in model.TASK_FIELDS
                ),
                st.integers(-(2**63), 2**63 - 1) | _text | st.booleans() | st.lists(st.integers(0, 9), max_size=3),
                max_size=3,
            )
        ),
    )


@given(tasks())
@settings(max_examples=150, deadline=None)
def test_round_trip_property(t: Task) -> None:
    assert model.parse_task(model.dump_task(t), expected_id=t.id, path="p") == t


# --- schema ----------------------------------------------------------------------


@pytest.mark.parametrize("schema", [3, 999])
def test_newer_schema_is_refused_as_schema_too_new(schema: int) -> None:
    with pytest.raises(SchemaTooNew) as ei:
        parse(minimal(schema=str(schema)))
    assert ei.value.exit_code == 12
    assert ei.value.details == {"schema": schema, "supported": 2}
    assert PATH in ei.value.message


def test_schema_too_new_wins_over_other_problems() -> None:
    # A newer schema may well have fields this version does not know.
    with pytest.raises(SchemaTooNew):
        parse(b'schema = 3\nid = "fix-login"\nstate = "brand-new-state"\n')


@pytest.mark.parametrize("schema", ["0", "-1", '"1"', "true", "1.0", None])
def test_bad_or_missing_schema_is_store_corrupt(schema: str | None) -> None:
    with pytest.raises(StoreCorrupt) as ei:
        parse(minimal(schema=schema))  # type: ignore[arg-type]
    assert "schema" in ei.value.message


# --- corrupt files ---------------------------------------------------------------

CORRUPT = [
    pytest.param(b'schema = 1\nid = "fix-login"\ntitle = "x\n', "malformed TOML", id="malformed"),
    pytest.param(b"\xff\xfe garbage", "UTF-8", id="not-utf8"),
    pytest.param(b"", "schema", id="empty-file"),
    pytest.param(minimal(state='"doing"'), "unknown state 'doing'", id="unknown-state"),
    pytest.param(minimal(state="3"), "unknown state", id="state-not-string"),
    pytest.param(minimal(state=None), "unknown state None", id="state-missing"),
    pytest.param(minimal(id='"other"'), "'other'", id="id-mismatch"),
    pytest.param(minimal(id='"Fix Login"'), "not a legal task id", id="illegal-id"),
    pytest.param(minimal(id=None), "'id'", id="id-missing"),
    pytest.param(minimal(state='"active"'), "state active must have a [claim]", id="active-without-claim"),
    pytest.param(minimal(state='"waiting"'), "state waiting must have a [claim]", id="waiting-without-claim"),
    pytest.param(minimal(state='"review"'), "state review must have a [claim]", id="review-without-claim"),
    pytest.param(minimal(title='"  "'), "'title'", id="blank-title"),
    pytest.param(minimal(title=None), "'title'", id="title-missing"),
    pytest.param(minimal(title="3"), "'title'", id="title-not-string"),
    pytest.param(minimal(priority="10"), "'priority'", id="priority-too-high"),
    pytest.param(minimal(priority="-1"), "'priority'", id="priority-negative"),
    pytest.param(minimal(priority="true"), "'priority'", id="priority-bool"),
    pytest.param(minimal(priority='"1"'), "'priority'", id="priority-string"),
    pytest.param(minimal(depends_on='"a"'), "'depends_on'", id="deps-not-list"),
    pytest.param(minimal(depends_on='["../x"]'), "illegal task id", id="deps-illegal"),
    pytest.param(minimal(depends_on='["fix-login"]'), "itself", id="deps-self"),
    pytest.param(minimal(tags="[1, 2]"), "'tags'", id="tags-not-strings"),
    pytest.param(minimal(acceptance='"done"'), "'acceptance'", id="acceptance-not-list"),
    pytest.param(minimal(description="5"), "'description'", id="description-not-string"),
    pytest.param(minimal(created_at='"yesterday"'), "'created_at'", id="created-at-string"),
    pytest.param(minimal(created_at="2026-01-31"), "'created_at'", id="created-at-date-only"),
    pytest.param(minimal(created_by="5"), "'created_by'", id="created-by-not-string"),
    pytest.param(minimal(claim='"agent-7"'), "'claim' must be a table", id="claim-not-table"),
    pytest.param(
        minimal(state='"active"', claim='{ holder = "bad name", claimed_at = 2026-01-31T12:00:00Z }'),
        "claim.holder",
        id="claim-illegal-holder",
    ),
    pytest.param(minimal(state='"active"', claim='{ holder = "agent-7" }'), "claimed_at", id="claim-no-time"),
    pytest.param(
        minimal(state='"active"', claim='{ holder = "agent-7", claimed_at = "noon" }'),
        "claim.claimed_at",
        id="claim-time-string",
    ),
]


@pytest.mark.parametrize(("data", "says"), CORRUPT)
def test_corrupt_task_files_raise_store_corrupt_naming_the_path(data: bytes, says: str) -> None:
    with pytest.raises(StoreCorrupt) as ei:
        parse(data)
    e = ei.value
    assert e.exit_code == 10
    assert e.message.startswith(PATH + ":")
    assert e.details["path"] == PATH
    assert says in e.message


def test_id_mismatch_names_both_ids() -> None:
    with pytest.raises(StoreCorrupt) as ei:
        parse(minimal(id='"other"'))
    assert "'other'" in ei.value.message and "'fix-login'" in ei.value.message


def test_expected_id_none_accepts_any_legal_id() -> None:
    assert parse(minimal(id='"zzz"'), expected_id=None).id == "zzz"


def test_a_claim_on_a_todo_task_is_kept_as_history() -> None:
    t = parse(minimal() + b'\n[claim]\nholder = "agent-7"\nclaimed_at = 2026-01-31T12:00:00Z\n')
    assert t.state is State.TODO and t.holder == "agent-7"


# --- the store file ----------------------------------------------------------------


def test_store_config_round_trip() -> None:
    cfg = model.StoreConfig(default_priority=4, id_prefix="job-", created_at=T0, created_by="admin", extra={"x": 1})
    back = model.parse_store_config(model.dump_store_config(cfg))
    assert back == cfg


def test_store_config_defaults() -> None:
    cfg = model.parse_store_config(b'schema = 1\nkind = "gitclaim-store"\n')
    assert cfg.default_priority == model.DEFAULT_PRIORITY and cfg.id_prefix == "gc-"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b'schema = 1\nkind = "other"\n', "'kind'"),
        (b"schema = 1\n", "'kind'"),
        (b'kind = "gitclaim-store"\n', "'schema'"),
        (b'schema = 1\nkind = "gitclaim-store"\ndefaults = 3\n', "'defaults'"),
        (b'schema = 1\nkind = "gitclaim-store"\n[defaults]\npriority = 12\n', "defaults.priority"),
        (b'schema = 1\nkind = "gitclaim-store"\n[defaults]\nid_prefix = "UP-"\n', "id_prefix"),
        (b'schema = 1\nkind = "gitclaim-store"\n[defaults]\nid_prefix = "../"\n', "id_prefix"),
        (b'schema = 1\nkind = "gitclaim-store"\ncreated_at = "today"\n', "created_at"),
        (b"schema = [1\n", "malformed TOML"),
    ],
)
def test_bad_store_config_is_store_corrupt(data: bytes, says: str) -> None:
    with pytest.raises(StoreCorrupt) as ei:
        model.parse_store_config(data, "gitclaim.toml")
    assert ei.value.message.startswith("gitclaim.toml:")
    assert ei.value.details["path"] == "gitclaim.toml"
    assert says in ei.value.message


def test_store_config_newer_schema_is_schema_too_new() -> None:
    with pytest.raises(SchemaTooNew) as ei:
        model.parse_store_config(b'schema = 999\nkind = "gitclaim-store"\n')
    assert "999" in ei.value.message and ei.value.exit_code == 12


# --- new tasks from user input -------------------------------------------------------


def from_input(**raw: object) -> Task:
    return model.task_from_input(
        {"id": "new-one", "title": "New", **raw}, default_priority=3, created_at=T0, created_by="agent-1"
    )


def test_task_from_input_fills_defaults_and_keeps_extras() -> None:
    t = from_input(estimate=5, tags=["a"])
    assert t.state is State.TODO and t.priority == 3
    assert t.created_at == T0 and t.created_by == "agent-1"
    assert t.tags == ("a",) and t.extra == {"estimate": 5}


def test_task_from_input_ignores_user_supplied_creation_stamp() -> None:
    t = from_input(created_at=datetime(2000, 1, 1, tzinfo=UTC), created_by="someone-else")
    assert t.created_at == T0 and t.created_by == "agent-1"


@pytest.mark.parametrize("state", ["todo", "backlog", "someday"])
def test_task_from_input_allowed_start_states(state: str) -> None:
    assert from_input(state=state).state.value == state


@pytest.mark.parametrize("state", ["active", "done", "review", "bogus"])
def test_task_from_input_refuses_other_start_states(state: str) -> None:
    with pytest.raises(BadInput):
        from_input(state=state)


@pytest.mark.parametrize(
    "raw",
    [
        {"claim": {"holder": "a", "claimed_at": T0}},
        {"priority": 11},
        {"title": ""},
        {"title": 5},
        {"depends_on": "x"},
        {"depends_on": ["new-one"]},
        {"id": "Bad Id"},
        {"tags": [1]},
    ],
)
def test_task_from_input_bad_fields_are_bad_input(raw: dict[str, object]) -> None:
    with pytest.raises(BadInput) as ei:
        from_input(**raw)
    assert ei.value.exit_code == 2
    assert not isinstance(ei.value, StoreCorrupt)


# --- small helpers ---------------------------------------------------------------------


def test_to_json_shape() -> None:
    j = full_task().to_json()
    assert set(j) == {
        "id", "title", "state", "priority", "depends_on", "tags", "description",
        "acceptance", "created_at", "created_by", "claim", "waiting_for", "fail_reason", "extra",
        "parent", "result", "notes",
    }  # fmt: skip
    assert j["state"] == "active"
    assert j["claim"] == {"holder": "agent-7", "claimed_at": "2026-01-31T12:05:00Z", "lease_seconds": None}
    assert j["waiting_for"] is None and j["fail_reason"] is None
    assert j["created_at"] == "2026-01-31T12:00:00Z"
    assert j["extra"]["due"] == "2026-02-01"
    assert Task(id="a", title="x").to_json()["claim"] is None


def test_utc_of_a_naive_time_assumes_utc_and_drops_microseconds() -> None:
    assert model.utc(datetime(2026, 1, 31, 12, 0, 0, 123)) == T0


def test_sort_key_ready_orders_priority_then_age_then_id() -> None:
    a = Task(id="b", title="x", priority=1, created_at=T0)
    b = Task(id="a", title="x", priority=1, created_at=T0)
    c = Task(id="c", title="x", priority=1, created_at=T0 - timedelta(days=1))
    d = Task(id="d", title="x", priority=0, created_at=T0 + timedelta(days=9))
    assert sorted([a, b, c, d], key=model.sort_key_ready) == [d, c, b, a]


def test_holder_property() -> None:
    assert full_task().holder == "agent-7"
    assert Task(id="a", title="x").holder is None
