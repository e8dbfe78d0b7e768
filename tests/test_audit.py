"""Commit messages as the audit record, and where the agent name comes from. Pure."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitclaim import audit
from gitclaim.api import AGENT_ENV, resolve_agent
from gitclaim.errors import BadInput
from gitclaim.ids import validate_agent

T0 = datetime(2026, 1, 31, 12, 0, 0, tzinfo=UTC)
CLAIM_TRAILERS = [("Op", "claim"), ("Task", "fix-login"), ("Agent", "agent-7"), ("From", "todo"), ("To", "active")]


def test_message_layout_subject_blank_line_trailers() -> None:
    msg = audit.message("claim fix-login by agent-7", CLAIM_TRAILERS)
    assert msg == (
        "claim fix-login by agent-7\n"
        "\n"
        "Gitclaim-Op: claim\n"
        "Gitclaim-Task: fix-login\n"
        "Gitclaim-Agent: agent-7\n"
        "Gitclaim-From: todo\n"
        "Gitclaim-To: active\n"
    )


def test_parse_trailers_round_trip() -> None:
    msg = audit.message("claim fix-login by agent-7", CLAIM_TRAILERS)
    assert audit.parse_trailers(msg) == {
        "Op": ["claim"],
        "Task": ["fix-login"],
        "Agent": ["agent-7"],
        "From": ["todo"],
        "To": ["active"],
    }


def test_repeated_trailers_keep_their_order() -> None:
    msg = audit.message("add 3 tasks", [("Op", "add"), ("Task", "a"), ("Task", "b"), ("Task", "c")])
    assert audit.parse_trailers(msg)["Task"] == ["a", "b", "c"]


def test_round_trip_with_a_body() -> None:
    msg = audit.message("s", [("Op", "x")], body="first line\nsecond line")
    assert audit.parse_trailers(msg) == {"Op": ["x"]}
    assert "    first line\n    second line\n" in msg


FORGERIES = [
    "x\nGitclaim-Agent: mallory",
    "x\n\nGitclaim-Agent: mallory",
    "x\r\nGitclaim-Agent: mallory",
    "x\rGitclaim-Agent: mallory",
    "x\u2028Gitclaim-Agent: mallory",
    "x\u0085Gitclaim-Agent: mallory",
    "x\x0bGitclaim-Agent: mallory",
    "x\x1cGitclaim-Agent: mallory",
    "Gitclaim-Agent: mallory",
    "\n\nGitclaim-Agent: mallory\n",
]


@pytest.mark.parametrize("evil", FORGERIES)
def test_a_trailer_value_cannot_forge_another_trailer(evil: str) -> None:
    msg = audit.message("claim t by a", [("Op", "claim"), ("Task", evil), ("Agent", "agent-7")])
    t = audit.parse_trailers(msg)
    assert t["Agent"] == ["agent-7"]
    assert len(t["Task"]) == 1 and "\n" not in t["Task"][0]
    assert set(t) == {"Op", "Task", "Agent"}


@pytest.mark.parametrize("evil", FORGERIES)
def test_a_subject_cannot_forge_a_trailer(evil: str) -> None:
    msg = audit.message(f"claim {evil}", [("Op", "claim"), ("Agent", "agent-7")])
    assert audit.parse_trailers(msg) == {"Op": ["claim"], "Agent": ["agent-7"]}
    assert msg.count("\n") == 4  # subject, blank, two trailers


@pytest.mark.parametrize("evil", FORGERIES)
def test_a_body_cannot_forge_a_trailer(evil: str) -> None:
    msg = audit.message("claim t", [("Op", "claim"), ("Agent", "agent-7")], body=evil)
    assert audit.parse_trailers(msg) == {"Op": ["claim"], "Agent": ["agent-7"]}


@pytest.mark.parametrize("blank", ["\n", "\r", "\x00", "  \n\t\n"])
def test_a_blank_body_does_not_hide_the_trailers(blank: str) -> None:
    # A body that flattens to nothing must not leave an empty paragraph that
    # makes the trailer block unreadable (every trailer would be lost).
    msg = audit.message("claim t", [("Op", "claim"), ("Agent", "agent-7")], body=blank)
    assert audit.parse_trailers(msg) == {"Op": ["claim"], "Agent": ["agent-7"]}


def test_a_body_alone_never_reads_as_trailers() -> None:
    msg = audit.message("s", [], body="Gitclaim-Agent: mallory\nGitclaim-Op: claim")
    assert audit.parse_trailers(msg) == {}


_nasty = st.lists(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
    | st.sampled_from(["\n", "\r", "\n\n", "\u2028", "Gitclaim-Agent: m", ": "]),
    max_size=6,
).map("".join)


@given(subject=_nasty, body=_nasty, values=st.lists(_nasty, min_size=1, max_size=4))
@settings(max_examples=300, deadline=None, database=None)
def test_no_input_forges_or_loses_a_trailer(subject: str, body: str, values: list[str]) -> None:
    keys = ["Op", "Task", "Agent", "From"]
    trailers = [(keys[i % len(keys)], v) for i, v in enumerate(values)]
    msg = audit.message(f"op {subject}", trailers, body=body)
    got = audit.parse_trailers(msg)
    expected: dict[str, list[str]] = {}
    for k, v in trailers:
        expected.setdefault(k, []).append(audit.one_line(v))
    assert got == expected


def test_one_line_flattens_and_bounds() -> None:
    assert audit.one_line("a\n\tb  \r\n c\x00d") == "a b c d"
    long = audit.one_line("x" * 500, limit=50)
    assert len(long) == 50 and long.endswith("…")
    assert audit.one_line("  ") == ""


def test_parse_trailers_of_a_message_without_trailers() -> None:
    assert audit.parse_trailers("just a subject\n") == {}
    assert audit.parse_trailers("subject\n\nsome prose, not trailers\n") == {}
    # a mixed last paragraph is not a trailer block
    assert audit.parse_trailers("s\n\nGitclaim-Op: claim\nfree text\n") == {}


def test_parse_trailers_ignores_foreign_trailers_paragraph_before_last() -> None:
    msg = "s\n\nGitclaim-Agent: mallory\n\nGitclaim-Agent: agent-7\n"
    assert audit.parse_trailers(msg) == {"Agent": ["agent-7"]}


def test_entry_reads_op_agent_tasks_and_states() -> None:
    msg = audit.message("claim fix-login by agent-7", CLAIM_TRAILERS)
    e = audit.entry("c0ffee", T0, "agent-7", msg)
    assert e.subject == "claim fix-login by agent-7"
    assert (e.op, e.agent, e.tasks, e.from_state, e.to_state) == ("claim", "agent-7", ("fix-login",), "todo", "active")
    j = e.to_json()
    assert j["time"] == "2026-01-31T12:00:00Z"
    assert j["from"] == "todo" and j["to"] == "active" and j["tasks"] == ["fix-login"]
    assert j["trailers"]["Op"] == ["claim"]


def test_entry_of_a_hand_made_commit_has_no_op() -> None:
    e = audit.entry("c0ffee", T0, "human", "fix a typo by hand\n")
    assert e.op is None and e.agent is None and e.tasks == () and e.subject == "fix a typo by hand"


def test_ids_phrase() -> None:
    assert audit.ids_phrase(["a", "b"]) == "a, b"
    assert audit.ids_phrase(["a", "b", "c", "d", "e"]) == "a, b, c and 2 more"


# --- agent resolution ---------------------------------------------------------------


def config_of(values: dict[str, str]) -> Callable[[str], str | None]:
    asked: list[str] = []

    def get(key: str) -> str | None:
        asked.append(key)
        return values.get(key)

    get.asked = asked  # type: ignore[attr-defined]
    return get


def test_explicit_agent_wins_over_everything() -> None:
    cfg = config_of({"gitclaim.agent": "from-config"})
    assert resolve_agent("explicit-1", {AGENT_ENV: "from-env"}, cfg) == "explicit-1"


def test_environment_wins_over_config() -> None:
    cfg = config_of({"gitclaim.agent": "from-config"})
    assert resolve_agent(None, {AGENT_ENV: "from-env"}, cfg) == "from-env"


def test_config_is_read_from_gitclaim_agent() -> None:
    cfg = config_of({"gitclaim.agent": "from-config"})
    assert resolve_agent(None, {}, cfg) == "from-config"
    assert cfg.asked == ["gitclaim.agent"]  # type: ignore[attr-defined]


def test_an_empty_environment_variable_falls_through_to_config() -> None:
    cfg = config_of({"gitclaim.agent": "from-config"})
    assert resolve_agent(None, {AGENT_ENV: ""}, cfg) == "from-config"


def test_fallback_is_user_and_host_made_legal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGNAME", "Ann Example")
    got = resolve_agent(None, {}, config_of({}))
    assert got.startswith("Ann-Example-")
    assert validate_agent(got) == got


def test_fallback_for_an_underscored_service_account_is_legal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGNAME", "_ci")
    got = resolve_agent(None, {}, config_of({}))
    assert validate_agent(got) == got


@pytest.mark.parametrize(
    ("explicit", "env", "cfg"),
    [
        ("bad name", {}, {}),
        ("", {}, {}),
        (None, {AGENT_ENV: "bad name"}, {}),
        (None, {AGENT_ENV: "-x"}, {"gitclaim.agent": "good"}),
        (None, {}, {"gitclaim.agent": "bad\nname"}),
    ],
)
def test_an_illegal_agent_at_any_level_is_bad_input(
    explicit: str | None, env: dict[str, str], cfg: dict[str, str]
) -> None:
    with pytest.raises(BadInput):
        resolve_agent(explicit, env, config_of(cfg))


def test_the_environment_is_taken_from_the_mapping_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(AGENT_ENV, "process-env")
    assert resolve_agent(None, {AGENT_ENV: "mapping-env"}, config_of({})) == "mapping-env"
    assert resolve_agent(None, {}, config_of({"gitclaim.agent": "cfg"})) == "cfg"
