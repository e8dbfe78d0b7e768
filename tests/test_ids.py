"""Task ids and agent names: what is legal, where a task's file lives. Pure, no git."""

from __future__ import annotations

import hashlib
import random
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitclaim import ids
from gitclaim.errors import BadInput

LEGAL_IDS = [
    "a",
    "0",
    "fix-login",
    "a.b_c-d",
    "v1.2.3",
    "gc-2345",
    "x" * ids.ID_MAX,
    "1" + "-" * 62 + "2",
]

ILLEGAL_IDS = [
    pytest.param("", id="empty"),
    pytest.param("../x", id="dotdot-slash"),
    pytest.param("..", id="dotdot"),
    pytest.param("a..b", id="inner-dotdot"),
    pytest.param("a/b", id="slash"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("a b", id="space"),
    pytest.param(" a", id="leading-space"),
    pytest.param("a\nb", id="inner-newline"),
    pytest.param("abc\n", id="trailing-newline"),
    pytest.param("\nabc", id="leading-newline"),
    pytest.param("a\tb", id="tab"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("Fix", id="uppercase"),
    pytest.param("fix-Login", id="inner-uppercase"),
    pytest.param("x" * (ids.ID_MAX + 1), id="too-long"),
    pytest.param(".a", id="leading-dot"),
    pytest.param("a.", id="trailing-dot"),
    pytest.param("-a", id="leading-dash"),
    pytest.param("a-", id="trailing-dash"),
    pytest.param("_a", id="leading-underscore"),
    pytest.param("a_", id="trailing-underscore"),
    pytest.param("é", id="non-ascii-letter"),
    pytest.param("a\u0660", id="non-ascii-digit"),
    pytest.param("a:b", id="colon"),
    pytest.param("a.toml/../../b", id="traversal"),
]


@pytest.mark.parametrize("task_id", LEGAL_IDS)
def test_legal_ids_are_returned_unchanged(task_id: str) -> None:
    assert ids.validate_id(task_id) == task_id
    assert ids.is_valid_id(task_id)


@pytest.mark.parametrize("task_id", ILLEGAL_IDS)
def test_illegal_ids_raise_bad_input(task_id: str) -> None:
    with pytest.raises(BadInput) as ei:
        ids.validate_id(task_id)
    assert ei.value.exit_code == 2
    assert not ids.is_valid_id(task_id)


@pytest.mark.parametrize("value", [None, 5, b"abc", ["a"]])
def test_non_string_ids_raise_bad_input(value: object) -> None:
    with pytest.raises(BadInput):
        ids.validate_id(value)
    assert not ids.is_valid_id(value)


def test_illegal_id_message_shows_the_id_and_the_rule() -> None:
    with pytest.raises(BadInput) as ei:
        ids.validate_id("../x")
    assert "'../x'" in ei.value.message
    assert "a-z" in ei.value.message
    assert ei.value.details["id"] == "../x"


@given(st.text(max_size=80))
@settings(max_examples=300, deadline=None)
def test_any_accepted_id_is_a_safe_file_name(text: str) -> None:
    if not ids.is_valid_id(text):
        return
    allowed = set(string.ascii_lowercase + string.digits + "._-")
    assert 1 <= len(text) <= ids.ID_MAX
    assert set(text) <= allowed
    assert ".." not in text
    assert text[0].isalnum() and text[-1].isalnum()


LEGAL_AGENTS = ["agent-7", "Agent_7", "a", "A", "a+b", "bot_", "x" * ids.AGENT_MAX, "ci.runner-2"]
ILLEGAL_AGENTS = [
    pytest.param("", id="empty"),
    pytest.param("a b", id="space"),
    pytest.param("bob\n", id="trailing-newline"),
    pytest.param("a\nb", id="inner-newline"),
    pytest.param("-a", id="leading-dash"),
    pytest.param(".a", id="leading-dot"),
    pytest.param("_a", id="leading-underscore"),
    pytest.param("+a", id="leading-plus"),
    pytest.param("a-", id="trailing-dash"),
    pytest.param("a.", id="trailing-dot"),
    pytest.param("a+", id="trailing-plus"),
    pytest.param("x" * (ids.AGENT_MAX + 1), id="too-long"),
    pytest.param("a:b", id="colon"),
    pytest.param("a<b@c>", id="email-like"),
    pytest.param("é", id="non-ascii"),
]


@pytest.mark.parametrize("name", LEGAL_AGENTS)
def test_legal_agent_names(name: str) -> None:
    assert ids.validate_agent(name) == name


@pytest.mark.parametrize("name", ILLEGAL_AGENTS)
def test_illegal_agent_names_raise_bad_input(name: str) -> None:
    with pytest.raises(BadInput) as ei:
        ids.validate_agent(name)
    assert ei.value.exit_code == 2


@pytest.mark.parametrize("value", [None, 7])
def test_non_string_agent_names_raise_bad_input(value: object) -> None:
    with pytest.raises(BadInput):
        ids.validate_agent(value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("alice-laptop", "alice-laptop"), ("Alice Smith@host", "Alice-Smith-host"), ("", "agent"), ("!!!", "agent")],
)
def test_slugify_agent_examples(raw: str, expected: str) -> None:
    assert ids.slugify_agent(raw) == expected


@pytest.mark.parametrize("raw", ["_www", "x" * 70 + "_"])
def test_slugify_agent_of_underscored_names_is_legal(raw: str) -> None:
    # macOS service accounts are named like `_www`: the fallback agent name
    # built from them must still be a legal agent name.
    ids.validate_agent(ids.slugify_agent(raw))


@given(st.text(max_size=100))
@settings(max_examples=300, deadline=None)
def test_slugify_agent_always_gives_a_legal_name(raw: str) -> None:
    assert ids.validate_agent(ids.slugify_agent(raw))


@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=ids.GENERATED_MIN_LEN, max_value=20))
@settings(max_examples=200, deadline=None)
def test_generated_ids_are_legal_and_prefixed(seed: int, length: int) -> None:
    got = ids.generate_id(random.Random(seed), length)
    assert got.startswith(ids.GENERATED_PREFIX)
    assert len(got) == len(ids.GENERATED_PREFIX) + length
    assert ids.is_valid_id(got)
    # no characters a human could misread aloud
    assert not set(got[len(ids.GENERATED_PREFIX) :]) & set("01ilo")


def test_generated_ids_are_deterministic_for_a_seeded_rng() -> None:
    assert ids.generate_id(random.Random(42)) == ids.generate_id(random.Random(42))


def test_generated_id_honours_a_custom_prefix() -> None:
    got = ids.generate_id(random.Random(1), 6, prefix="job-")
    assert got.startswith("job-") and len(got) == 10 and ids.is_valid_id(got)


def test_fanout_is_two_hex_digits_of_the_sha1_of_the_id() -> None:
    for tid in ["a", "fix-login", "gc-2345"]:
        f = ids.fanout(tid)
        assert f == hashlib.sha1(tid.encode()).hexdigest()[:2]
        assert len(f) == 2 and set(f) <= set("0123456789abcdef")


def test_fanout_is_stable_across_calls() -> None:
    assert ids.fanout("fix-login") == ids.fanout("fix-login")


def test_task_path_layout() -> None:
    tid = "fix-login"
    assert ids.task_path(tid) == f"tasks/{ids.fanout(tid)}/fix-login.toml"
    assert ids.task_path(tid).startswith(ids.TASKS_DIR + "/")


def test_fanout_spreads_sequential_slugs_over_many_folders() -> None:
    folders = {ids.fanout(f"task-{i}") for i in range(4000)}
    # 256 folders in all; sequential slugs must not pile into a few of them
    assert len(folders) >= 250
