"""The transport through the system's git: the user's ssh and git set-up, the same compare-and-swap.

ssh reads the passwd entry's home, not $HOME, so each ssh test gives its
client a config of its own through ``GIT_SSH_COMMAND="ssh -F CONFIG"``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gitclaim import Store
from gitclaim.errors import BadInput, PushRejected
from gitclaim.git.systemgit import SystemGitTransport

from .conftest import _serve, run_cli
from .servers import HTTPS_USERS, SSH_USER, GitHttp, GitSshd, Remote, clone, git
from .test_race import assert_one_winner_per_round

pytestmark = pytest.mark.slow


@pytest.fixture
def use_git(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every transport of this test (and of its child processes) is the system's git;
    ssh's shared connections go to a private folder of the test's own."""
    monkeypatch.setenv("GITCLAIM_TRANSPORT", "git")
    folder = Path(tempfile.mkdtemp(prefix="gcssh-", dir="/tmp"))
    monkeypatch.setenv("GITCLAIM_SSH_CONTROL_DIR", str(folder))
    yield folder
    for sock in folder.iterdir():  # end the test's shared ssh sessions
        subprocess.run(["ssh", "-O", "exit", "-o", f"ControlPath={sock}", "x"], capture_output=True, timeout=10)
    shutil.rmtree(folder, ignore_errors=True)


def ssh_config(tmp_path: Path, server: GitSshd, body: str) -> Path:
    """An ssh config trusting ``server``'s host key and logging in with its client key, plus ``body``."""
    known = tmp_path / "known_hosts"
    known.write_text(server.known_hosts_line)
    cfg = tmp_path / "ssh_config"
    cfg.write_text(f"{body}\nHost *\n  UserKnownHostsFile {known}\n  StrictHostKeyChecking yes\n"
                   f"  IdentityFile {server.client_key}\n  IdentitiesOnly yes\n")  # fmt: skip
    return cfg


@pytest.fixture
def jump_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitSshd]:
    """A second sshd: the jump host (it logs each login)."""
    yield from _serve(lambda: GitSshd(tmp_path_factory.mktemp("jump"), log_level="INFO"))


def three_tasks(remote: Remote, tmp_path: Path) -> Store:
    """The admin's Store on ``remote``, a store of three tasks t0, t1, t2."""
    admin = Store(clone(remote, tmp_path / "admin"), agent="admin")
    admin.init()
    admin.add_many([{"id": f"t{i}", "title": f"task {i}"} for i in range(3)])
    return admin


def test_the_choice_of_transport(path_remote: Remote, daemon_remote: Remote, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    c = clone(daemon_remote, tmp_path / "c")
    assert type(Store(c, agent="a").transport).__name__ == "NetworkTransport"  # the default (docs/remotes.md)
    git("config", "gitclaim.transport", "git", cwd=c)
    assert isinstance(Store(c, agent="a").transport, SystemGitTransport)
    git("config", "remote.origin.gitclaimTransport", "libgit2", cwd=c)  # the remote's own setting wins
    assert type(Store(c, agent="a").transport).__name__ == "NetworkTransport"
    monkeypatch.setenv("GITCLAIM_TRANSPORT", "git")
    assert isinstance(Store(c, agent="a").transport, SystemGitTransport)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no git on this machine: the in-process one
    assert type(Store(c, agent="a").transport).__name__ == "NetworkTransport"
    monkeypatch.setenv("GITCLAIM_TRANSPORT", "svn")
    with pytest.raises(BadInput) as ei:
        Store(c, agent="a").transport  # noqa: B018
    assert "GITCLAIM_TRANSPORT" in ei.value.message
    monkeypatch.setenv("GITCLAIM_TRANSPORT", "git")
    p = clone(path_remote, tmp_path / "p")  # a local path keeps its locked reference transaction
    assert type(Store(p, agent="a").transport).__name__ == "LocalTransport"


def test_a_claim_through_git_leaves_fetch_head_alone_and_fetches_the_tip_only(
    use_git: Path, daemon_remote: Remote, tmp_path: Path
) -> None:
    admin = three_tasks(daemon_remote, tmp_path)
    path = clone(daemon_remote, tmp_path / "worker")
    (path / ".git" / "FETCH_HEAD").write_text("user's own\n")
    worker = Store(path, agent="worker")
    assert isinstance(worker.transport, SystemGitTransport)
    won = worker.claim("t1")
    assert won.changed and daemon_remote.ref() == won.commit
    assert (path / ".git" / "FETCH_HEAD").read_text() == "user's own\n"
    assert (path / ".git" / "shallow").exists()  # a first fetch: the tip, not the history
    worker.transport.deepen()
    assert not (path / ".git" / "shallow").exists()
    assert git("rev-list", "--count", "refs/remotes/origin/gitclaim", cwd=path).strip() == "3"  # init, add, claim
    assert worker.heartbeat().holding == ("t1",)
    assert set(admin.transport.fetch_alive()) == {"worker"}


def test_a_fresh_clone_through_git_told_a_task_is_held_names_the_holder_and_since(
    use_git: Path, daemon_remote: Remote, tmp_path: Path
) -> None:
    # The first fetch makes the clone shallow behind libgit2's back; the history walk
    # that finds the holder's claim must see the new shallow edge, not a missing parent.
    admin = three_tasks(daemon_remote, tmp_path)
    admin.claim("t1")
    for i in range(3):  # the claim is no longer among the two commits a first fetch brings
        admin.note("t2", f"note {i}")
    path = clone(daemon_remote, tmp_path / "late")
    out = run_cli("claim", "t1", "--agent", "late", "--json", cwd=path)
    assert out.returncode == 4, out.stdout + out.stderr
    error = json.loads(out.stdout)["error"]
    assert error["details"]["holder"] == "admin" and "since" in error["message"], error
    assert (path / ".git" / "shallow").exists()


@pytest.mark.parametrize("transport", ["git", "libgit2"])
def test_a_rerun_that_writes_the_very_commit_that_landed_reports_no_change(
    transport: str, daemon_remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Within one second the same claim on the same tip is the same commit, byte for byte;
    # git's push then says "up to date" and skips the lease. That is the branch having moved
    # (to it), not this run's change: decided again, the claim is found already held, as
    # libgit2's own check of the advertised tip finds it.
    monkeypatch.setenv("GITCLAIM_TRANSPORT", transport)
    three_tasks(daemon_remote, tmp_path)
    path = clone(daemon_remote, tmp_path / "worker")
    now = datetime.now(UTC).replace(microsecond=0)  # one moment for both runs
    first = Store(path, agent="worker", clock=lambda: now)
    base = first.transport.fetch()
    won = first.claim("t1")
    assert won.changed and daemon_remote.ref() == won.commit
    git("update-ref", "refs/remotes/origin/gitclaim", base, cwd=path)  # as if its answer had been lost
    git("update-ref", first.transport.last_ref, base, cwd=path)
    again = Store(path, agent="worker", clock=lambda: now).claim("t1")
    assert not again.changed and again.task.holder == "worker", again
    assert daemon_remote.ref() == won.commit  # nothing written twice


def test_a_hook_refusal_is_push_rejected_with_the_servers_words(
    use_git: Path, daemon_remote: Remote, tmp_path: Path
) -> None:
    admin = Store(clone(daemon_remote, tmp_path / "admin"), agent="admin")
    admin.init()
    admin.add("t", task_id="t1")
    hook = daemon_remote.path / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'policy: no claims on Fridays' >&2\nexit 1\n")
    hook.chmod(0o755)
    tip = daemon_remote.ref()
    with pytest.raises(PushRejected) as ei:
        Store(clone(daemon_remote, tmp_path / "w"), agent="w").claim("t1")
    assert "pre-receive hook declined" in ei.value.message
    assert "policy: no claims on Fridays" in ei.value.message
    assert ei.value.details["server_output"] == "policy: no claims on Fridays"
    assert daemon_remote.ref() == tip


def test_an_ssh_remote_behind_a_proxyjump_host(
    use_git: Path, ssh_client: GitSshd, jump_sshd: GitSshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = ssh_client.remote("jumped")
    known = tmp_path / "jump_known"
    known.write_text(jump_sshd.known_hosts_line)
    cfg = ssh_config(tmp_path, ssh_client, (
        f"Host jumphost\n  HostName 127.0.0.1\n  Port {jump_sshd.port}\n  User {SSH_USER}\n"
        f"  IdentityFile {jump_sshd.client_key}\n  UserKnownHostsFile {known}\n"
        f"Host tasks-behind\n  HostName 127.0.0.1\n  Port {ssh_client.port}\n  User {SSH_USER}\n  ProxyJump jumphost\n"
    ))  # fmt: skip
    monkeypatch.setenv("GIT_SSH_COMMAND", f"ssh -F {cfg}")
    monkeypatch.delenv("GITCLAIM_SSH_KEY")
    logins = jump_sshd.log.read_text().count("Accepted publickey")
    url = f"tasks-behind:{remote.path}"
    store = Store(clone(Remote(remote.path, url), tmp_path / "c"), agent="a")
    store.init()
    store.add("behind a jump host", task_id="t1")
    assert store.claim("t1").commit == remote.ref()
    assert jump_sshd.log.read_text().count("Accepted publickey") > logins  # it went through the jump host


def test_an_ssh_remote_named_by_a_match_block_shares_one_connection(
    use_git: Path, ssh_client: GitSshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = ssh_client.remote("matched")
    cfg = ssh_config(tmp_path, ssh_client, (
        f"Match originalhost tasks-match\n  HostName 127.0.0.1\n  Port {ssh_client.port}\n  User {SSH_USER}\n"
    ))  # fmt: skip
    monkeypatch.setenv("GIT_SSH_COMMAND", f"ssh -F {cfg}")
    path = clone(Remote(remote.path, f"tasks-match:{remote.path}"), tmp_path / "c")
    store = Store(path, agent="a")
    store.init()
    store.add("via Match", task_id="t1")
    r = run_cli("claim", "t1", "--agent", "a", "--json", cwd=path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["result"]["commit"] == remote.ref()
    sockets = list(use_git.iterdir())
    assert len(sockets) == 1, sockets  # one master connection, shared by every operation since
    check = subprocess.run(["ssh", "-O", "check", "-o", f"ControlPath={sockets[0]}", "x"], capture_output=True,
                           text=True, timeout=10)  # fmt: skip
    assert check.returncode == 0 and "Master running" in check.stderr, check.stderr


def test_the_users_own_controlmaster_setting_is_left_alone(
    use_git: Path, ssh_client: GitSshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = ssh_client.remote("own")
    cfg = ssh_config(tmp_path, ssh_client, "Host *\n  ControlMaster no\n")
    monkeypatch.setenv("GIT_SSH_COMMAND", f"ssh -F {cfg}")
    store = Store(clone(remote, tmp_path / "c"), agent="a")
    store.init()
    assert remote.ref() is not None
    assert list(use_git.iterdir()) == []


def test_sixteen_processes_one_task_over_ssh_through_git(
    use_git: Path, ssh_client: GitSshd, ssh_remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim race of test_race.py, through OpenSSH (one shared connection) and git-receive-pack."""
    monkeypatch.setenv("GIT_SSH_COMMAND", f"ssh -F {ssh_config(tmp_path, ssh_client, '')}")
    assert_one_winner_per_round(ssh_remote, tmp_path, rounds=4)


def test_a_credential_helper_in_gits_config_is_used_over_https(
    use_git: Path, git_https: GitHttp, https_remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GIT_SSL_CAINFO", raising=False)  # a machine's own would beat the clone's http.sslCAInfo
    log = tmp_path / "asked"
    helper = tmp_path / "manager.sh"
    answer = f"username=agent\\npassword={HTTPS_USERS['agent']}\\n"
    helper.write_text(f'#!/bin/sh\necho "$1" >> {log}\n[ "$1" = get ] && printf "{answer}"\nexit 0\n')
    helper.chmod(0o755)
    paths = []
    for name in ("admin", "agent"):
        path = clone(https_remote, tmp_path / name)
        git("config", "credential.helper", str(helper), cwd=path)  # only in git's config: no GITCLAIM_TOKEN
        git("config", "http.sslCAInfo", str(git_https.ca), cwd=path)
        paths.append(path)
    assert run_cli("init", "--agent", "admin", cwd=paths[0]).returncode == 0
    assert run_cli("add", "over https", "--id", "t1", "--agent", "admin", cwd=paths[0]).returncode == 0
    r = run_cli("claim", "t1", "--agent", "agent-7", "--json", cwd=paths[1])
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["result"]["commit"] == https_remote.ref()
    asked = log.read_text().split()
    assert "get" in asked and "store" in asked and "erase" not in asked, asked


def test_an_unknown_host_key_and_a_closed_port_through_git(
    use_git: Path, ssh_client: GitSshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = ssh_client.remote("strict")
    cfg = ssh_config(tmp_path, ssh_client, "")
    (tmp_path / "known_hosts").write_text("")
    monkeypatch.setenv("GIT_SSH_COMMAND", f"ssh -F {cfg}")
    r = run_cli("init", "--agent", "a", "--json", cwd=clone(remote, tmp_path / "c"))
    assert r.returncode == 18, r.stdout + r.stderr
    assert json.loads(r.stdout)["error"]["details"]["reason"] == "host_key"
    closed = clone(Remote(remote.path, f"ssh://{SSH_USER}@127.0.0.1:1{remote.path}"), tmp_path / "d")
    r = run_cli("init", "--agent", "a", "--json", cwd=closed)
    assert r.returncode == 8, r.stdout + r.stderr
    err = json.loads(r.stdout)["error"]
    assert err["details"]["reason"] == "unreachable" and "Connection refused" in err["message"], err
    assert "Traceback" not in r.stderr
    assert os.environ["GITCLAIM_TRANSPORT"] == "git"


def test_the_ssh_command_keeps_the_users_own_and_adds_sharing_only_where_it_is_unsaid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gitclaim.git import sshmux

    short = Path(tempfile.mkdtemp(prefix="gcs-", dir="/tmp"))  # a socket's path is at most 104 bytes
    folder = short / "s"
    monkeypatch.setenv("GITCLAIM_SSH_CONTROL_DIR", str(folder))
    plain = tmp_path / "plain"
    plain.write_text("Host *\n  User me\n")
    own = tmp_path / "own"
    included = tmp_path / "shared.conf"
    included.write_text("ControlPath ~/.ssh/cm-%C\n")
    own.write_text(f"Include {included.name}\nHost *\n  User me\n")
    cmd = sshmux.ssh_command(f"ssh -F {plain}", key="/k/agent a", connect_ms=2500)
    assert cmd is not None and cmd.startswith(f"ssh -F {plain} ")
    assert "ConnectTimeout=3" in cmd and "BatchMode=yes" in cmd and "'/k/agent a'" in cmd
    assert f"ControlPath={folder}/%C-" in cmd and "ControlMaster=auto" in cmd
    assert (folder.stat().st_mode & 0o777) == 0o700
    other = sshmux.ssh_command(f"ssh -F {plain}", key="/k/other", connect_ms=2500)
    assert other is not None and other.split("ControlPath=")[1][:60] != cmd.split("ControlPath=")[1][:60]
    assert "ControlPersist" not in (sshmux.ssh_command(f"ssh -F {own}", key=None, connect_ms=1) or "")
    assert "ControlPersist" not in (sshmux.ssh_command("ssh -o ControlMaster=no", key=None, connect_ms=1) or "")
    assert sshmux.ssh_command("plink -batch", key=None, connect_ms=1) is None  # not OpenSSH: left alone
    monkeypatch.setenv("GIT_SSH", "/usr/local/bin/my-ssh")
    assert sshmux.ssh_command(None, key=None, connect_ms=1) is None
    folder.chmod(0o755)
    monkeypatch.setenv("GITCLAIM_SSH_CONTROL_DIR", str(short / "link"))
    (short / "link").symlink_to(folder)
    assert sshmux.socket_dir() is None  # a symlink may be someone else's trap: no sharing
    monkeypatch.setenv("GITCLAIM_SSH_CONTROL_DIR", str(folder))
    assert sshmux.socket_dir() == folder and (folder.stat().st_mode & 0o777) == 0o700
    monkeypatch.setenv("GITCLAIM_SSH_CONTROL_DIR", str(tmp_path / ("long" * 20)))
    assert sshmux.socket_dir() is None  # too long a path for a socket: no sharing, no failure
    shutil.rmtree(short)
