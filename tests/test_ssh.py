"""The store over ssh: a real sshd on loopback, a git-shell user, key login.

Host keys are checked against ~/.ssh/known_hosts (pygit2 alone would accept
any key); credentials come from GITCLAIM_SSH_KEY here; every failure is a
RemoteUnreachable whose ``details.reason`` says which, with its own exit code
(18 untrusted_remote, 17 auth_failed, 8 remote_unreachable): "host_key",
"auth" or "unreachable", and none of them hangs.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from gitclaim import Store
from gitclaim.errors import RemoteUnreachable

from .conftest import run_cli
from .servers import SSH_USER, GitSshd, Remote, clone
from .test_race import assert_one_winner_per_round

pytestmark = pytest.mark.slow


def _known_hosts() -> Path:
    return Path(os.environ["HOME"]) / ".ssh" / "known_hosts"


def test_a_store_works_over_ssh(ssh_remote: Remote, tmp_path: Path) -> None:
    admin = Store(clone(ssh_remote, tmp_path / "admin"), agent="admin")
    admin.init()
    admin.add("over ssh", task_id="t1")
    worker = Store(clone(ssh_remote, tmp_path / "worker"), agent="worker")
    r = worker.claim("t1")
    assert r.changed
    assert ssh_remote.ref() == r.commit
    assert worker.heartbeat().holding
    assert admin.show("t1").task.holder == "worker"


def _reason(store: Store) -> RemoteUnreachable:
    started = time.monotonic()
    with pytest.raises(RemoteUnreachable) as ei:
        store.init()
    assert time.monotonic() - started < 10, "a refused connection must fail fast"
    return ei.value


def test_an_unknown_host_key_is_refused(ssh_remote: Remote, tmp_path: Path) -> None:
    _known_hosts().write_text("")
    e = _reason(Store(clone(ssh_remote, tmp_path / "c"), agent="a"))
    assert e.details["reason"] == "host_key", e.to_json()
    assert "host key" in e.message
    assert ssh_remote.ref() is None


def test_a_changed_host_key_is_refused(ssh_client: GitSshd, ssh_remote: Remote, tmp_path: Path) -> None:
    # known_hosts names this host and port, with another key: an impostor, or a reinstalled server
    other = Path(f"{ssh_client.other_key}.pub").read_text().split()
    _known_hosts().write_text(f"[127.0.0.1]:{ssh_client.port} {other[0]} {other[1]}\n")
    e = _reason(Store(clone(ssh_remote, tmp_path / "c"), agent="a"))
    assert e.details["reason"] == "host_key", e.to_json()
    assert ssh_remote.ref() is None


def test_a_key_the_server_does_not_accept_is_an_auth_failure(
    ssh_client: GitSshd, ssh_remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITCLAIM_SSH_KEY", str(ssh_client.other_key))
    e = _reason(Store(clone(ssh_remote, tmp_path / "c"), agent="a"))
    assert e.details["reason"] == "auth", e.to_json()
    assert "authentication failed" in e.message
    assert ssh_remote.ref() is None


def test_no_key_at_all_is_an_auth_failure(ssh_remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITCLAIM_SSH_KEY")  # and the test's HOME has no ~/.ssh/id_*
    e = _reason(Store(clone(ssh_remote, tmp_path / "c"), agent="a"))
    assert e.details["reason"] == "auth", e.to_json()
    assert "no credentials" in e.message


def test_the_default_key_file_is_used(
    ssh_client: GitSshd, ssh_remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITCLAIM_SSH_KEY")
    ssh_dir = Path(os.environ["HOME"]) / ".ssh"
    for suffix in ("", ".pub"):
        (ssh_dir / f"id_ed25519{suffix}").write_bytes(Path(f"{ssh_client.client_key}{suffix}").read_bytes())
    (ssh_dir / "id_ed25519").chmod(0o600)
    Store(clone(ssh_remote, tmp_path / "c"), agent="a").init()
    assert ssh_remote.ref() is not None


def test_a_closed_port_is_unreachable(ssh_client: GitSshd, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"ssh://git@127.0.0.1:{port}/x.git"
    e = _reason(Store(clone(Remote(tmp_path / "x.git", url), tmp_path / "c"), agent="a"))
    assert e.details["reason"] == "unreachable", e.to_json()


def test_the_cli_exits_18_for_an_unknown_host_key_and_17_for_a_refused_key(
    ssh_client: GitSshd, ssh_remote: Remote, tmp_path: Path
) -> None:
    c = clone(ssh_remote, tmp_path / "c")
    _known_hosts().write_text("")
    r = run_cli("init", "--agent", "a", "--json", cwd=c)
    assert r.returncode == 18, r
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "untrusted_remote"
    assert err["details"]["reason"] == "host_key"
    assert "Traceback" not in r.stderr
    _known_hosts().write_text(ssh_client.known_hosts_line)
    r = run_cli("init", "--agent", "a", "--json", cwd=c, env={"GITCLAIM_SSH_KEY": str(ssh_client.other_key)})
    assert r.returncode == 17, r
    err = json.loads(r.stdout)["error"]
    assert (err["code"], err["details"]["reason"]) == ("auth_failed", "auth")
    assert "Traceback" not in r.stderr


def test_sixteen_processes_one_task_over_ssh(ssh_remote: Remote, tmp_path: Path) -> None:
    """The claim race of test_race.py, through sshd and git-receive-pack."""
    assert_one_winner_per_round(ssh_remote, tmp_path, rounds=10)


def _alias(ssh_client: GitSshd, extra: str = "") -> None:
    """A ~/.ssh/config that names the server `tasks-server`, as people set up their machines."""
    (Path(os.environ["HOME"]) / ".ssh" / "config").write_text(
        f"Host tasks-server\n  HostName 127.0.0.1\n  Port {ssh_client.port}\n  User {SSH_USER}\n"
        f"  IdentityFile {ssh_client.client_key}\n{extra}"
    )


def test_a_host_alias_from_ssh_config(
    ssh_client: GitSshd, ssh_remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tasks-server:/path` works as it does for git: libssh2 never reads
    ~/.ssh/config, so gitclaim applies HostName, Port, User and IdentityFile."""
    monkeypatch.delenv("GITCLAIM_SSH_KEY")
    _alias(ssh_client)
    for form in (f"tasks-server:{ssh_remote.path}", f"ssh://tasks-server{ssh_remote.path}"):
        path = clone(Remote(ssh_remote.path, form), tmp_path / f"c{len(form)}")
        store = Store(path, agent="a")
        store.init()
        store.add(f"via {form}", task_id=f"t{len(form)}")
    worker = Store(clone(Remote(ssh_remote.path, f"tasks-server:{ssh_remote.path}"), tmp_path / "w"), agent="w")
    r = worker.claim(f"t{len(form)}")
    assert ssh_remote.ref() == r.commit
    assert worker.heartbeat().holding


def test_an_alias_to_a_closed_port_says_where_it_went(ssh_client: GitSshd, ssh_remote: Remote, tmp_path: Path) -> None:
    (Path(os.environ["HOME"]) / ".ssh" / "config").write_text("Host tasks-server\n  HostName 127.0.0.1\n  Port 1\n")
    r = run_cli("init", "--json", cwd=clone(Remote(ssh_remote.path, f"tasks-server:{ssh_remote.path}"), tmp_path / "c"))
    assert r.returncode == 8, r.stdout + r.stderr
    err = json.loads(r.stdout)["error"]
    assert err["details"]["reason"] == "unreachable"
    assert "which ~/.ssh/config makes [127.0.0.1:1]:/" in err["message"]


def test_an_alias_with_a_path_relative_to_the_login_home(
    ssh_client: GitSshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tasks-server:name.git`, a path relative to the login's home, through an
    alias with a port: the [user@host:port]:path form libgit2 is given works.
    (That the path goes out as written, not as ~/name.git, is the unit test's
    to show: git-shell resolves both alike.)"""
    import pwd
    import shutil

    from .conftest import repo_name
    from .servers import make_bare

    monkeypatch.delenv("GITCLAIM_SSH_KEY")
    _alias(ssh_client)
    pw = pwd.getpwnam(SSH_USER)
    name = f"{repo_name(tmp_path)}.git"
    bare = make_bare(Path(pw.pw_dir) / name)
    try:
        for d, _, files in os.walk(bare):
            os.chown(d, pw.pw_uid, pw.pw_gid)
            for f in files:
                os.chown(os.path.join(d, f), pw.pw_uid, pw.pw_gid)
        store = Store(clone(Remote(bare, f"tasks-server:{name}"), tmp_path / "c"), agent="a")
        store.init()
        store.add("relative", task_id="t1")
        assert store.claim("t1").commit == Remote(bare, "").ref()
    finally:
        shutil.rmtree(bare, ignore_errors=True)
