"""Behind gitolite, where the host authenticates the pusher: a refusal is a refusal
(auth_failed, nothing sent), never "check the network", and the server's words
are kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .servers import GITOLITE_USER, Gitolite, Remote, git


class Agents:
    def __init__(self, server: Gitolite, remote: Remote, home: Path, root: Path) -> None:
        self.server, self.remote, self.home, self.root = server, remote, home, root

    def clone(self, who: str) -> Path:
        c = self.root / who
        if not c.exists():
            git("init", "-q", "-b", "main", str(c))
            git("remote", "add", "origin", self.remote.url, cwd=c)
        return c

    def run(self, who: str, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
        env = dict(os.environ, HOME=str(self.home), GITCLAIM_SSH_KEY=str(self.server.keys[who]), GITCLAIM_AGENT=who)
        env.pop("SSH_AUTH_SOCK", None)
        p = subprocess.run(
            [sys.executable, "-m", "gitclaim", "-C", str(self.clone(who)), *args, "--json"],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        return p.returncode, json.loads(p.stdout)


@pytest.fixture
def agents(gitolite: Gitolite, tmp_path: Path) -> Agents:
    name = f"r{abs(hash(str(tmp_path))) % 10**9}"
    remote = gitolite.allow(name, {"agent-a": "RW+", "agent-b": "R"})
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text(gitolite.known_hosts_line)
    a = Agents(gitolite, remote, home, tmp_path)
    assert a.run("agent-a", "init")[0] == 0
    assert a.run("agent-a", "add", "One", "--id", "one")[0] == 0
    return a


@pytest.mark.parametrize("args", [["claim", "one"], ["heartbeat"], ["add", "Two", "--id", "two"]], ids=" ".join)
def test_a_push_gitolite_denies_is_auth_failed_with_its_words(agents: Agents, args: list[str]) -> None:
    code, out = agents.run("agent-b", *args)
    assert code == 17, out
    err = out["error"]
    assert err["code"] == "auth_failed" and err["details"]["reason"] == "forbidden"
    assert "DENIED" in err["message"]
    assert "whether the push landed is unknown" not in err["message"]
    code, listing = agents.run("agent-a", "list")
    assert [(t["id"], t["claim"]) for t in listing["result"]["tasks"]] == [("one", None)]  # nothing changed


def test_reads_and_the_allowed_agent_work(agents: Agents) -> None:
    assert agents.run("agent-b", "ready")[0] == 0
    code, out = agents.run("agent-a", "claim", "one")
    assert code == 0 and out["result"]["task"]["claim"]["holder"] == "agent-a"


def test_a_heartbeat_a_hook_refuses_keeps_the_hooks_words(daemon_remote: Remote, tmp_path: Path) -> None:
    hook = daemon_remote.path / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\nwhile read old new ref; do case $ref in refs/gitclaim/alive/*)"
        " echo 'heartbeats are switched off on this server' >&2; exit 1;; esac; done\n"
    )
    hook.chmod(0o755)
    c = tmp_path / "c"
    git("init", "-q", "-b", "main", str(c))
    git("remote", "add", "origin", daemon_remote.url, cwd=c)
    env = dict(os.environ, GITCLAIM_AGENT="agent-a")
    run = [sys.executable, "-m", "gitclaim", "-C", str(c)]
    assert subprocess.run([*run, "init"], env=env, capture_output=True).returncode == 0
    p = subprocess.run([*run, "heartbeat", "--json"], env=env, capture_output=True, text=True)
    err = json.loads(p.stdout)["error"]
    assert p.returncode == 15 and err["code"] == "push_rejected"
    assert "heartbeats are switched off on this server" in err["message"]


@pytest.fixture
def ssh_agent_with(tmp_path: Path) -> object:
    """A real ssh-agent holding some keys; its SSH_AUTH_SOCK."""
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if sock.exists():
            break
        import time

        time.sleep(0.02)

    def add(key: Path) -> str:
        subprocess.run(["ssh-add", str(key)], env=dict(os.environ, SSH_AUTH_SOCK=str(sock)), check=True,
                       capture_output=True)  # fmt: skip
        return str(sock)

    yield add
    proc.terminate()
    proc.wait(5)


def test_the_key_named_for_gitclaim_is_the_identity_not_the_agents_first_key(
    agents: Agents, ssh_agent_with: object
) -> None:
    """agent-b's key has read access only; ssh-agent holds agent-a's, which may write.
    Offered first, the agent's key used to push as agent-a."""
    sock = ssh_agent_with(agents.server.keys["agent-a"])  # type: ignore[operator]
    os.environ["SSH_AUTH_SOCK"] = sock
    try:
        code, out = agents.run("agent-b", "claim", "one")
    finally:
        del os.environ["SSH_AUTH_SOCK"]
    assert code == 17 and "agent-b DENIED" in out["error"]["message"], out


def test_identities_only_in_ssh_config_offers_the_named_key_alone(agents: Agents, ssh_agent_with: object) -> None:
    sock = ssh_agent_with(agents.server.keys["agent-a"])  # type: ignore[operator]
    key = agents.server.keys["agent-b"]
    (agents.home / ".ssh" / "config").write_text(
        f"Host gl-store\n  HostName 127.0.0.1\n  Port {agents.server.port}\n  User {GITOLITE_USER}\n"
        f"  IdentityFile {key}\n  IdentitiesOnly yes\n"
    )
    c = agents.clone("agent-b")
    repo = agents.remote.url.rsplit("/", 1)[1]
    git("remote", "set-url", "origin", f"gl-store:{repo}", cwd=c)
    env = dict(os.environ, HOME=str(agents.home), SSH_AUTH_SOCK=sock, GITCLAIM_AGENT="agent-b")
    env.pop("GITCLAIM_SSH_KEY", None)
    p = subprocess.run([sys.executable, "-m", "gitclaim", "-C", str(c), "claim", "one", "--json"],
                       capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    err = json.loads(p.stdout)["error"]
    assert p.returncode == 17 and "agent-b DENIED" in err["message"], err


def test_keys_are_offered_in_openssh_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pygit2

    from gitclaim.git.callbacks import key_options

    key = tmp_path / "named"
    key.write_text("not really a key")
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "sock"))

    def kinds(opts: list[object]) -> list[str]:
        return ["agent" if isinstance(o, pygit2.KeypairFromAgent) else "file" for o in opts]

    monkeypatch.delenv("GITCLAIM_SSH_KEY", raising=False)
    assert kinds(key_options("git", [str(key)])) == ["file", "agent"]  # the named key first
    assert kinds(key_options("git", [str(key)], identities_only=True)) == ["file"]
    assert kinds(key_options("git", [])) == ["agent"]  # nothing named, no default keys in this HOME
    monkeypatch.setenv("GITCLAIM_SSH_KEY", str(key))
    assert kinds(key_options("git", [])) == ["file"]  # named for gitclaim: that key is the identity
