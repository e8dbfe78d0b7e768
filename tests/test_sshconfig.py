"""~/.ssh/config host aliases, as gitclaim reads them (no server needed).

The end-to-end behaviour against a real sshd is in test_ssh.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gitclaim.git import sshconfig as sc

CONFIG = """
# a comment
IdentityFile ~/.ssh/everyone

Host tasks tasks-backup
    HostName git.internal.example
    Port 2222
    User git
    IdentityFile %d/.ssh/tasks_%r

Host *.internal.example !secret.internal.example
    Port=2200
    User = ops
    IdentityFile "/keys/with space"

Match host tasks
    User never-used

Host *
    User fallback
"""


def resolve(url: str, text: str = CONFIG) -> sc.SshTarget | None:
    return sc.resolve(url, sc.parse(text), home="/home/me", local_user="me")


def test_an_alias_names_the_real_host_port_user_and_keys() -> None:
    t = resolve("tasks:org/tasks.git")
    assert t == sc.SshTarget(
        "git.internal.example", 2222, "git", "org/tasks.git",
        ("/home/me/.ssh/everyone", "/home/me/.ssh/tasks_git"), moved=True, scp=True,
    )  # fmt: skip
    # The scp form stays scp: a path relative to the login's home reaches the server as written.
    assert t.url() == "[git@git.internal.example:2222]:org/tasks.git"
    t = resolve("tasks-backup:~/tasks.git")
    assert t is not None and t.url() == "[git@git.internal.example:2222]:~/tasks.git"


def test_the_first_value_wins_and_the_url_beats_the_config() -> None:
    t = resolve("ssh://alice@tasks-backup:2022/srv/tasks.git")
    assert t is not None and (t.user, t.host, t.port, t.path) == (
        "alice",
        "git.internal.example",
        2022,
        "/srv/tasks.git",
    )


def test_wildcards_and_negation() -> None:
    t = resolve("host.internal.example:/x.git")
    assert t is not None and (t.user, t.port, t.moved) == ("ops", 2200, True)
    assert t.identity_files == ("/home/me/.ssh/everyone", "/keys/with space")
    t = resolve("secret.internal.example:/x.git")
    assert t is not None and (t.user, t.port) == ("fallback", None)


def test_match_blocks_are_ignored_and_an_unknown_host_keeps_its_name() -> None:
    t = resolve("git@elsewhere.example:x.git")
    assert t is not None and (t.host, t.user, t.moved) == ("elsewhere.example", "git", False)
    assert t.identity_files == ("/home/me/.ssh/everyone",)


@pytest.mark.parametrize("url", ["https://host/x.git", "git://host/x.git", "/srv/x.git", "./a:b", "file:///x", "x"])
def test_urls_that_are_not_ssh(url: str) -> None:
    assert resolve(url) is None


def test_scp_like_and_ssh_forms() -> None:
    assert sc.split_ssh_url("git@host:org/x.git") == ("git", "host", None, "org/x.git", True)
    assert sc.split_ssh_url("host:/srv/x.git") == (None, "host", None, "/srv/x.git", True)
    assert sc.split_ssh_url("[::1]:x.git") == (None, "::1", None, "x.git", True)
    assert sc.split_ssh_url("u@[h:2222]:~alice/x.git") == ("u", "h", 2222, "~alice/x.git", True)
    assert sc.split_ssh_url("[u@h:2222]:x.git") == ("u", "h", 2222, "x.git", True)
    assert sc.split_ssh_url("ssh://a%40b@h:22/p") == ("a@b", "h", 22, "/p", False)
    assert sc.SshTarget("::1", 22, None, "/p").url() == "ssh://[::1]:22/p"
    assert sc.SshTarget("h", None, "a@b", "/p").url() == "ssh://a%40b@h/p"
    assert sc.SshTarget("::1", None, "u", "x.git", scp=True).url() == "u@[::1]:x.git"
    assert sc.SshTarget("h", 22, None, "x.git", scp=True).url() == "[h:22]:x.git"
    assert sc.SshTarget("h", 22, "u", "x.git", scp=True).url() == "[u@h:22]:x.git"


def test_include_applies_under_the_block_it_sits_in(tmp_path: Path) -> None:
    ssh = tmp_path / ".ssh"
    (ssh / "conf.d").mkdir(parents=True)
    (ssh / "config").write_text("Host tasks\n  Include conf.d/*.conf\nHost *\n  Port 1\n")
    (ssh / "conf.d" / "a.conf").write_text("HostName real.example\nHost other\n  User nope\n")
    entries = sc.load(str(tmp_path))
    t = sc.resolve("tasks:x.git", entries, home=str(tmp_path), local_user="me")
    assert t is not None and (t.host, t.port, t.user) == ("real.example", 1, None)
    t = sc.resolve("other:x.git", entries, home=str(tmp_path), local_user="me")
    assert t is not None and (t.host, t.user) == ("other", None)  # the include sat under Host tasks


def test_an_include_loop_and_a_missing_file_are_harmless(tmp_path: Path) -> None:
    assert sc.load(str(tmp_path)) == []
    ssh = tmp_path / ".ssh"
    ssh.mkdir()
    (ssh / "config").write_text("Include config\nPort 7\n")
    entries = sc.load(str(tmp_path))
    t = sc.resolve("h:x", entries, home=str(tmp_path), local_user="me")
    assert t is not None and t.port == 7


def test_a_hash_inside_a_value_is_kept() -> None:
    t = resolve("tasks:x", "Host tasks\n  IdentityFile /keys/key#1\n")
    assert t is not None and t.identity_files == ("/keys/key#1",)


def test_garbage_lines_are_skipped() -> None:
    t = resolve("tasks:x", 'Host tasks\n  HostName "unbalanced\n  =\n  Port notanumber\n  User\n')
    assert t is not None and (t.host, t.port, t.user) == ('"unbalanced', None, None)


def test_forms_libgit2_would_misread_fall_back_to_ssh_urls() -> None:
    """libgit2 reads [user@host:port]:path by its last ':' and first '@'."""
    assert sc.SshTarget("::1", 2, "git", "x.git", scp=True).url() == "ssh://git@[::1]:2/~/x.git"
    assert (
        sc.SshTarget("h", 2, "alice@corp.example", "~/x.git", scp=True).url()
        == "ssh://alice%40corp.example@h:2/~/x.git"
    )
    assert sc.SshTarget("h", None, "a:b", "/srv/x.git", scp=True).url() == "ssh://a%3Ab@h/srv/x.git"
