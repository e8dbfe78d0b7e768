"""git's credential-helper rules, as gitclaim reads them (no server needed).

The end-to-end behaviour against a real https server is in test_https.py.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gitclaim.git import credentials as c

URL = "https://git.example.com:8443/team/tasks.git"


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("https://git.example.com:8443", True),
        ("https://GIT.example.com:8443/", True),
        ("https://*.example.com:8443", True),
        ("https://git.example.com:8443/team", True),
        ("https://git.example.com:8443/team/tasks.git", True),
        ("https://git.example.com:8443/te", False),  # a path matches at a / boundary only
        ("https://git.example.com:8443/other", False),
        ("https://git.example.com", False),  # port 443 is not 8443
        ("http://git.example.com:8443", False),
        ("https://*.com:8443", False),  # * is one label
        ("https://example.com:8443", False),
        ("https://bob@git.example.com:8443", False),
        ("not a url", False),
        ("https://[::1:8443", False),
    ],
)
def test_url_matching(pattern: str, expected: bool) -> None:
    assert c.url_matches(pattern, URL) is expected


def test_default_ports_are_filled_in() -> None:
    assert c.url_matches("https://host.example", "https://host.example:443/x.git")
    assert c.url_matches("http://host.example:80", "http://host.example/x.git")


def test_helpers_in_config_order_and_an_empty_value_resets() -> None:
    config = [
        ("credential.helper", "system-one"),
        ("credential.helper", ""),
        ("credential.helper", "cache --timeout=60"),
        ("credential.https://git.example.com:8443.helper", "scoped"),
        ("credential.https://elsewhere.example.helper", "not-for-us"),
        ("credential.username", "alice"),
        ("credential.https://git.example.com:8443.useHttpPath", "true"),
        ("user.name", "ignored"),
    ]
    h = c.helpers_for(URL, config)
    assert h.commands == ["cache --timeout=60", "scoped"]
    assert h.username == "alice" and h.use_http_path


def test_the_request_git_would_send() -> None:
    h = c.Helpers(["x"], username="alice")
    assert c.request_for(URL, h, None) == c.Request("https", "git.example.com:8443", None, "alice")
    assert c.request_for("https://bob@git.example.com/t.git", h, None) == c.Request(
        "https", "git.example.com", None, "bob"
    )
    h.use_http_path = True
    assert c.request_for(URL, h, "carol") == c.Request("https", "git.example.com:8443", "team/tasks.git", "carol")
    assert c.request_for("ssh://git@host/x.git", h, None) is None
    assert c.request_for("git://host/x.git", h, None) is None


def test_the_wire_format() -> None:
    req = c.Request("https", "h:1", "p/q.git", "u")
    assert req.encode() == b"protocol=https\nhost=h:1\npath=p/q.git\nusername=u\n\n"
    cred = c.Credential(c.Request("https", "h"), "u", "s3cret")
    assert cred.encode() == b"protocol=https\nhost=h\nusername=u\npassword=s3cret\n\n"


def test_an_answer_stops_at_the_first_blank_line_and_ignores_junk() -> None:
    data = b"username=u\njunk line\npassword=a=b\n\npassword=ignored\n"
    assert c.parse_answer(data) == {"username": "u", "password": "a=b"}
    assert c.parse_answer(b"\xff\xfe=\x00\n") == {}


def test_how_each_kind_of_helper_is_run(tmp_path: Path) -> None:
    prog = tmp_path / "git-credential-mine"
    prog.write_text("#!/bin/sh\n")
    prog.chmod(prog.stat().st_mode | stat.S_IXUSR)
    env = {"PATH": "/nonexistent", "GIT_EXEC_PATH": str(tmp_path)}
    assert c.helper_command("!f() { echo x; }; f", "get", env) == "f() { echo x; }; f get"
    assert c.helper_command("/opt/helper --flag", "erase", env) == "/opt/helper --flag erase"
    assert c.helper_command("mine --file=/x", "store", env) == f"{prog} --file=/x store"
    assert c.helper_command("no-such-helper-anywhere", "get", env) is None


def test_helpers_are_asked_until_one_answers(tmp_path: Path) -> None:
    log = tmp_path / "log"
    helpers = c.Helpers(
        [
            f'!f() {{ echo "first $1" >> {log}; echo username=u; }}; f',
            "no-such-helper-anywhere",
            f'!f() {{ echo "second $1" >> {log}; cat >> {log}; echo password=p; }}; f',
            f'!f() {{ echo "third $1" >> {log}; }}; f',
        ]
    )
    s = c.Session(helpers, c.Request("https", "h"), timeout=10)
    cred = s.fill()
    assert cred == c.Credential(c.Request("https", "h"), "u", "p")
    lines = log.read_text().splitlines()
    assert lines[0] == "first get" and lines[1] == "second get"
    assert "username=u" in lines  # what the first said is passed on to the next
    assert "third get" not in lines
    assert s.problems == ["credential helper 'no-such-helper-anywhere': program git-credential-no-such-helper-anywhere "
                          "not found"]  # fmt: skip


def test_quit_stops_the_search(tmp_path: Path) -> None:
    helpers = c.Helpers(["!echo quit=1; true", "!echo username=u; echo password=p; true"])
    assert c.Session(helpers, c.Request("https", "quit.example"), timeout=10).fill() is None


def test_an_accepted_credential_is_remembered_and_a_refused_one_forgotten(tmp_path: Path) -> None:
    log = tmp_path / "log"
    helpers = c.Helpers([f"!f() {{ echo $1 >> {log}; echo username=u; echo password=p; }}; f"])
    req = c.Request("https", "remember.example")
    first = c.Session(helpers, req, timeout=10)
    cred = first.fill()
    assert cred is not None
    first.tell(cred, "store")
    second = c.Session(helpers, req, timeout=10)
    assert second.fill() == cred and second.remembered
    second.tell(cred, "store")  # already told once
    # Refused later: only forgotten. The helpers may hold a newer password by
    # now, and git-credential-store would erase it (it erases by host and user).
    second.tell(cred, "erase")
    assert log.read_text().split() == ["get", "store"]
    third = c.Session(helpers, req, timeout=10)
    assert third.fill() == cred and not third.remembered  # asked again
    third.tell(cred, "erase")  # refused as the helpers gave it: now they are told
    assert log.read_text().split() == ["get", "store", "get", "erase"]


def test_the_same_request_with_other_helpers_is_not_the_same_credential() -> None:
    req = c.Request("https", "scoped.example")
    a = c.Session(c.Helpers(["!echo username=a; echo password=pa; true"]), req, timeout=10)
    cred = a.fill()
    assert cred is not None
    a.tell(cred, "store")
    b = c.Session(c.Helpers(["!echo username=b; echo password=pb; true"]), req, timeout=10)
    assert b.fill() == c.Credential(req, "b", "pb")


def test_a_url_that_would_inject_a_line_gets_no_credential() -> None:
    """git's CVE-2020-5260: a newline in the URL must not become a second
    host= line that asks the helpers about another server."""
    h = c.Helpers(["store"])
    for url in ("https://alice%0ahost=evil.example@h.example/x.git", "https://h.example/a%0ahost=evil/x.git"):
        h.use_http_path = True
        assert c.request_for(url, h, None) is None
    assert c.request_for("https://h.example/x.git", h, "bob\nhost=evil") is None


def test_a_failing_helper_is_named_without_its_arguments(tmp_path: Path) -> None:
    helpers = c.Helpers(["!f() { echo password=S3CRET >&2; exit 3; }; f", "   "])
    s = c.Session(helpers, c.Request("https", "h"), timeout=10)
    assert s.fill() is None
    assert not any("S3CRET" in p for p in s.problems), s.problems
    assert "exited with 3" in s.problems[0]


def test_the_most_specific_http_setting_wins() -> None:
    config = [
        ("http.sslCAInfo", "/all.pem"),
        ("http.https://git.example.com:8443/team.sslcainfo", "/team.pem"),
        ("http.https://git.example.com:8443.sslCAInfo", "/host.pem"),
        ("http.https://other.example.sslCAInfo", "/other.pem"),
    ]
    assert c.http_setting(URL, config, "sslCAInfo") == "/team.pem"
    assert c.http_setting("https://x.example/y.git", config, "sslCAInfo") == "/all.pem"
    assert c.http_setting(URL, config, "sslCAPath") is None


def test_scrub_hides_url_passwords_and_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from gitclaim.git import scrub

    monkeypatch.setenv("GITCLAIM_TOKEN", "tok-12345")
    text = "cannot push to https://bob:s3cr%40t@host:8443/x.git (ssh://git@host/y) with tok-12345"
    assert scrub(text) == "cannot push to https://***@host:8443/x.git (ssh://git@host/y) with ***"
    assert scrub("ssh://git:pw@h/x https://TOKEN@h/y") == "ssh://git:***@h/x https://***@h/y"
