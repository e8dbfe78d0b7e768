"""Fuzzing the readers of the store branch.

Whatever bytes a human (or a broken tool) pushes to the store branch, reading
them may only fail with StoreCorrupt (exit 10) or SchemaTooNew (exit 12),
quickly. Any other exception would crash `list`, `ready` and `next` for every
agent sharing the store.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta, timezone
from datetime import time as dtime
from typing import Any

import tomli_w
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gitclaim import model
from gitclaim.errors import SchemaTooNew, StoreCorrupt

PATH = "tasks/ab/fuzz.toml"
BUDGET = 1.0  # seconds per parse, far above what a sane reader needs
SETTINGS = settings(
    max_examples=300,
    deadline=timedelta(milliseconds=1500),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def check_task(data: bytes, expected_id: str | None = "fuzz") -> None:
    started = time.perf_counter()
    try:
        t = model.parse_task(data, expected_id=expected_id, path=PATH)
    except (StoreCorrupt, SchemaTooNew) as e:
        # the error names the file and is JSON-safe
        assert PATH in e.message
        assert e.exit_code in (10, 12)
    else:
        assert isinstance(t, model.Task)
        # whatever was accepted can be written back and read again
        assert model.parse_task(model.dump_task(t), expected_id=t.id, path=PATH).id == t.id
    assert time.perf_counter() - started < BUDGET


def check_config(data: bytes) -> None:
    started = time.perf_counter()
    try:
        cfg = model.parse_store_config(data, "gitclaim.toml")
    except (StoreCorrupt, SchemaTooNew) as e:
        assert "gitclaim.toml" in e.message
    else:
        assert isinstance(cfg, model.StoreConfig)
    assert time.perf_counter() - started < BUDGET


# --- arbitrary bytes ------------------------------------------------------------------

PATHOLOGICAL = [
    b"a = " + b"[" * 5000 + b"]" * 5000,  # deep nesting
    b"a = " + b"{b=" * 3000 + b"1" + b"}" * 3000,
    b"schema = " + b"1" * 5000,  # an integer longer than Python converts by default
    b"a = " + b"9" * 5000,
    b'schema = 1\nid = "fuzz"\ntitle = "t"\nstate = "todo"\ncreated_at = 0001-01-01T00:00:00+01:00\n',
    b'schema = 1\nid = "fuzz"\ntitle = "t"\nstate = "todo"\ncreated_at = 9999-12-31T23:59:59-01:00\n',
    b'schema = 1\nid = "fuzz"\ntitle = "t"\nstate = "active"\n'
    b'[claim]\nholder = "a"\nclaimed_at = 0001-01-01T00:30:00+01:00\n',
    b"\x00\xff\xfe",
    b"\xef\xbb\xbfschema = 1\n",  # a UTF-8 byte order mark
    b"",
]


@given(st.binary(max_size=512))
@SETTINGS
@example(PATHOLOGICAL[0])
@example(PATHOLOGICAL[1])
@example(PATHOLOGICAL[2])
@example(PATHOLOGICAL[3])
@example(PATHOLOGICAL[4])
@example(PATHOLOGICAL[5])
@example(PATHOLOGICAL[6])
@example(PATHOLOGICAL[7])
@example(PATHOLOGICAL[8])
@example(PATHOLOGICAL[9])
def test_arbitrary_bytes_into_parse_task(data: bytes) -> None:
    check_task(data)


@given(st.binary(max_size=512))
@SETTINGS
@example(PATHOLOGICAL[0])
@example(PATHOLOGICAL[2])
@example(b'schema = 1\nkind = "gitclaim-store"\ncreated_at = 0001-01-01T00:00:00+01:00\n')
def test_arbitrary_bytes_into_parse_store_config(data: bytes) -> None:
    check_config(data)


# --- TOML-ish documents -----------------------------------------------------------------

_scalars = (
    st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=True)
    | st.booleans()
    | st.text(max_size=20)
    | st.datetimes(
        timezones=st.none() | st.builds(timezone, st.timedeltas(timedelta(hours=-23), timedelta(hours=23)))
    ).map(lambda d: d.replace(microsecond=0))
    | st.dates()
    | st.times().map(lambda t: t.replace(microsecond=0))
)
_values: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)

_STATES = [*model.STATES, "doing", "", "TODO"]
_field_values: dict[str, st.SearchStrategy[Any]] = {
    "schema": st.sampled_from([1, 1, 1, 0, 2, 999, -1]) | _values,
    "id": st.sampled_from(["fuzz", "fuzz", "other", "../x", "", "Fuzz"]) | _values,
    "title": st.text(max_size=10) | _values,
    "state": st.sampled_from(_STATES) | _values,
    "priority": st.integers(-3, 12) | _values,
    "depends_on": st.lists(st.sampled_from(["a", "fuzz", "../x", "b-c"]), max_size=3) | _values,
    "tags": st.lists(st.text(max_size=5), max_size=3) | _values,
    "description": st.text(max_size=20) | _values,
    "acceptance": st.lists(st.text(max_size=5), max_size=3) | _values,
    "created_at": _values,
    "created_by": st.sampled_from(["agent-1", "bad name"]) | _values,
    "claim": st.fixed_dictionaries(
        {},
        optional={
            "holder": st.sampled_from(["agent-1", "", "bad name", "-x"]) | _values,
            "claimed_at": _values,
            "lease": _values,
        },
    )
    | _values,
    "estimate": _values,
    "notes": st.dictionaries(st.text(max_size=5), _values, max_size=3),
}


@st.composite
def task_documents(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.sets(st.sampled_from(sorted(_field_values)), max_size=len(_field_values)))
    # mostly keep the fields every task needs, so that later checks are reached
    for required in ("schema", "id", "title", "state"):
        if draw(st.integers(0, 9)) > 0:
            keys.add(required)
    return {k: draw(_field_values[k]) for k in sorted(keys)}


def _dumps(doc: dict[str, Any]) -> bytes | None:
    try:
        return tomli_w.dumps(doc).encode()
    except (TypeError, ValueError):
        return None  # a value TOML cannot hold (e.g. NaN in some forms); not a reader concern


@given(task_documents())
@SETTINGS
@example({"schema": 1, "id": "fuzz", "title": "t", "state": "todo", "created_at": datetime(1, 1, 1, 0, 0)})
@example(
    {
        "schema": 1,
        "id": "fuzz",
        "title": "t",
        "state": "todo",
        "created_at": datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),
    }
)
@example(
    {
        "schema": 1,
        "id": "fuzz",
        "title": "t",
        "state": "active",
        "claim": {"holder": "a", "claimed_at": datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-2)))},
    }
)
@example({"schema": 1, "id": "fuzz", "title": "t", "state": "todo", "created_at": date(2026, 1, 1)})
@example({"schema": 1, "id": "fuzz", "title": "t", "state": "todo", "created_at": dtime(12, 0)})
def test_toml_documents_into_parse_task(doc: dict[str, Any]) -> None:
    data = _dumps(doc)
    if data is not None:
        check_task(data)
        check_task(data, expected_id=None)


@st.composite
def config_documents(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if draw(st.integers(0, 9)) > 0:
        doc["schema"] = draw(st.sampled_from([1, 1, 2, 0]) | _values)
    if draw(st.integers(0, 9)) > 0:
        doc["kind"] = draw(st.sampled_from(["gitclaim-store", "gitclaim-store", "x"]) | _values)
    if draw(st.booleans()):
        doc["defaults"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "priority": st.integers(-2, 12) | _values,
                    "id_prefix": st.sampled_from(["gc-", "", "UP-", "../", "a."]) | _values,
                },
            )
            | _values
        )
    if draw(st.booleans()):
        doc["created_at"] = draw(_values)
    if draw(st.booleans()):
        doc["created_by"] = draw(_values)
    return doc


@given(config_documents())
@SETTINGS
@example({"schema": 1, "kind": "gitclaim-store", "created_at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))})
def test_toml_documents_into_parse_store_config(doc: dict[str, Any]) -> None:
    data = _dumps(doc)
    if data is not None:
        check_config(data)


# Text that is almost TOML: real task files cut, spliced and garbled.
_GOOD = model.dump_task(
    model.Task(
        id="fuzz",
        title="A task",
        state=model.State.ACTIVE,
        depends_on=("a",),
        tags=("x",),
        description="multi\nline",
        created_at=datetime(2026, 1, 31, tzinfo=UTC),
        claim=model.Claim("agent-1", datetime(2026, 1, 31, 1, tzinfo=UTC)),
        extra={"notes": {"k": "v"}},
    )
)


@given(
    st.integers(0, len(_GOOD)),
    st.integers(0, len(_GOOD)),
    st.binary(max_size=24)
    | st.sampled_from([b"[", b"]", b"=", b'"', b'"""', b"\n", b"[claim]", b"[[claim]]", b"0001-01-01T00:00:00+01:00"]),
)
@SETTINGS
def test_garbled_task_files_into_parse_task(start: int, end: int, junk: bytes) -> None:
    lo, hi = sorted((start, end))
    check_task(_GOOD[:lo] + junk + _GOOD[hi:])


# --- the validator -------------------------------------------------------------

_PATHS = st.sampled_from(
    ["gitclaim.toml", "tasks/README.md", "tasks/e5/t1.toml", "tasks/00/t1.toml", "tasks/x.toml", "notes.txt"]
)
_BLOBS = st.one_of(
    st.none(),
    st.binary(max_size=300),
    st.builds(
        lambda state, holder: model.dump_task(
            model.Task(
                "t1",
                "x",
                state=state,
                claim=model.Claim(holder, datetime(2026, 1, 1, tzinfo=UTC)) if holder else None,
            )
        ),
        st.sampled_from(list(model.State)),
        st.sampled_from([None, "ann", "bob"]),
    ),
)


@SETTINGS
@given(
    changes=st.dictionaries(_PATHS, st.tuples(_BLOBS, _BLOBS), max_size=4),
    agent=st.sampled_from(["ann", "bob"]),
)
def test_the_validator_takes_anything_and_only_reports(changes: dict[str, Any], agent: str) -> None:
    """Arbitrary old/new file contents: a list of violations, never an exception."""
    from gitclaim.validate import Violation, check_commit

    t0 = time.monotonic()
    out = check_commit(
        changes, agent=agent, lookup=lambda _id: None, now=datetime(2026, 6, 1, tzinfo=UTC), last_seen={}
    )
    assert all(isinstance(v, Violation) and v.rule and v.message for v in out)
    assert time.monotonic() - t0 < 1.0


def test_a_huge_task_file_is_refused_unparsed() -> None:
    big = b'schema = 1\nid = "t1"\ntitle = "x"\nstate = "todo"\ndescription = "' + b"a" * (2 << 20) + b'"\n'
    t0 = time.monotonic()
    try:
        model.parse_task(big, expected_id="t1", path="tasks/e5/t1.toml")
    except StoreCorrupt as e:
        assert "larger than" in e.message
    else:
        raise AssertionError("a 2 MiB task file was accepted")
    assert time.monotonic() - t0 < 0.5
