"""Issue 12, acceptance: a store that requires signed commits.

alice makes the store with ``gitclaim init --require-signed`` from a clone
that signs (``gpg.format ssh``, ``user.signingkey``, ``gitclaim.sign true``)
and lists bob's key with ``gitclaim signers add``; bob's clone signs with his
own key. The shared repository is served by git daemon with the server hook,
and trusts alice from outside the branch (``git config gitclaim.admin``, set
before the store existed). gitclaim's own signed commits pass the hook and
real ``git verify-commit``; plain-git commits that are unsigned, signed by the
wrong key, by a key the store does not know, or with lying trailers are
refused by the hook naming the rule, and where no hook runs ``gitclaim
verify`` names each. Only an admin changes the policy.

Keys come from ssh-keygen; every signature git makes is git's own (``git
commit -S``, ``git merge -S``); nothing is mocked.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import isolate_home, run_cli
from tests.keys import keygen, public
from tests.servers import GIT, GitDaemon, Remote, clone, copy_remote, git, make_bare
from tests.test_enforce import cli_json, edit, git_as, remote_lines, violation_lines

NAMES = ("alice", "bob", "carol")  # carol's key is in no store


@dataclass
class Base:
    served: Path  # the bare store: server hook, gitclaim.admin alice
    clones: dict[str, Path]  # alice's and bob's gitclaim clones, each signing with its own key
    keys: dict[str, Path]  # private key files; the .pub beside each
    root: str  # the store's first commit


def signing(clone_dir: Path, agent: str, key: Path) -> None:
    for k, v in (("gpg.format", "ssh"), ("user.signingkey", str(key)), ("gitclaim.sign", "true")):
        git("config", k, v, cwd=clone_dir)
    git("config", "gitclaim.agent", agent, cwd=clone_dir)


def ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, r.stdout + r.stderr
    return r


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, git_daemon: GitDaemon) -> Iterator[Base]:
    root = tmp_path_factory.mktemp("signed-base")
    with pytest.MonkeyPatch.context() as mp:  # module scope: before the per-test HOME exists
        isolate_home(mp, root / "home")
        mp.delenv("SSH_AUTH_SOCK", raising=False)
        keys = {name: keygen(root / "keys" / name, comment=f"{name}@test") for name in NAMES}
        name = f"s{uuid.uuid4().hex[:12]}.git"
        bare = make_bare(git_daemon.base / name)
        remote = Remote(bare, git_daemon.url(name))
        ok(run_cli("hooks", "install", "--server", str(bare), cwd=root))
        git("config", "gitclaim.admin", f"alice {public(keys['alice']).line()}", cwd=bare)  # the anchor, first
        clones = {}
        for agent in ("alice", "bob"):
            clones[agent] = clone(remote, root / agent)
            signing(clones[agent], agent, keys[agent])
        ok(run_cli("init", "--require-signed", cwd=clones["alice"]))
        ok(run_cli("signers", "add", "bob", f"{keys['bob']}.pub", cwd=clones["alice"]))
        batch = root / "tasks.toml"
        batch.write_text("".join(f'[[task]]\nid = "t{i}"\ntitle = "Task {i}"\n\n' for i in (1, 2, 3)))
        ok(run_cli("add", "--file", str(batch), cwd=clones["alice"]))
        (first,) = git("rev-list", "--max-parents=0", "refs/heads/gitclaim", cwd=bare).split()
    yield Base(bare, clones, keys, first)


@dataclass
class Setup:
    remote: Remote
    clones: dict[str, Path]  # copies of alice's and bob's clones, pointing at this remote
    keys: dict[str, Path]
    root: str
    tip: str
    tmp: Path

    def cli(self, agent: str, *args: str) -> tuple[int, dict[str, Any]]:
        return cli_json(*args, cwd=self.clones[agent])

    def checkout(self, name: str = "wc") -> Path:
        """A human's `git clone -b gitclaim` working copy (no signing configured)."""
        wc = self.tmp / name
        git("clone", "-q", "-b", "gitclaim", self.remote.url, str(wc))
        return wc

    def push(self, wc: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([GIT, "push"], cwd=wc, capture_output=True, text=True, timeout=60)


Make = Callable[..., Setup]


@pytest.fixture
def make(base: Base, git_daemon: GitDaemon, tmp_path: Path) -> Make:
    """make(hook=True): a copy of the store served by git daemon with the server
    hook and its anchor; make(hook=False): a copy reached by its path, no hook."""

    def _make(*, hook: bool) -> Setup:
        remote = copy_remote(base.served, tmp_path / "remote.git", git_daemon if hook else None)
        if not hook:
            (remote.path / "hooks" / "pre-receive").unlink()
        clones = {}
        for agent, src in base.clones.items():
            clones[agent] = tmp_path / agent
            shutil.copytree(src, clones[agent], symlinks=True)
            git("remote", "set-url", "origin", remote.url, cwd=clones[agent])
        tip = remote.ref()
        assert tip is not None
        return Setup(remote, clones, base.keys, base.root, tip, tmp_path)

    return _make


def signed_by(key: Path) -> tuple[str, ...]:
    """git's own options for an ssh signature by ``key`` (with commit -S, merge -S)."""
    return ("-c", "gpg.format=ssh", "-c", f"user.signingkey={key}")


def rename(title: str) -> Callable[[str], str]:
    def run(text: str) -> str:
        old = next(line for line in text.splitlines() if line.startswith("title = "))
        return text.replace(old, f'title = "{title}"', 1)

    return run


def git_verifies(wc: Path, sha: str) -> subprocess.CompletedProcess[str]:
    """Real git checking ``sha`` against the allowed_signers of the checkout ``wc``."""
    allowed = wc / "allowed_signers"
    assert allowed.is_file()
    return subprocess.run(
        [GIT, "-c", f"gpg.ssh.allowedSignersFile={allowed}", "verify-commit", sha],
        cwd=wc,
        capture_output=True,
        text=True,
    )


def rules_of(lines: list[str]) -> set[str]:
    return {m.group(1) for line in lines for m in [re.search(r"\[([a-z-]+)\]", line)] if m}


def found(obj: dict[str, Any]) -> set[tuple[str, str]]:
    """(commit, rule) of every violation a failed `verify --json` reports."""
    assert obj["ok"] is False and obj["error"]["code"] == "verify_failed", obj
    return {(v["commit"], v["rule"]) for v in obj["error"]["details"]["violations"]}


# --- 1. gitclaim's own signed commits ------------------------------------------------------


def test_signed_claims_pass_the_hook_git_verify_commit_and_verify_with_the_anchor(make: Make) -> None:
    s = make(hook=True)
    claims = {}
    for agent, task in (("alice", "t1"), ("bob", "t2")):
        code, obj = s.cli(agent, "claim", task)
        assert code == 0, obj  # through the server hook
        claims[agent] = obj["result"]["commit"]
    assert s.remote.ref() == claims["bob"]
    assert git("rev-parse", f"{claims['bob']}^", cwd=s.remote.path).strip() == claims["alice"]

    wc = s.checkout()
    listed = [line.split()[0] for line in (wc / "allowed_signers").read_text().splitlines() if line.strip()]
    assert listed == ["alice", "bob"]
    for agent, sha in claims.items():
        r = git_verifies(wc, sha)
        assert r.returncode == 0, r.stderr
        assert f'Good "git" signature for {agent} with ED25519 key' in r.stderr
    plain = git_as("bob", "commit", "-q", "--allow-empty", "-m", "unsigned", cwd=wc)
    assert git_verifies(wc, plain).returncode != 0  # the control: git does check

    code, obj = s.cli("alice", "verify", "--admin", f"alice={s.keys['alice']}.pub")
    assert code == 0, obj
    assert obj["result"]["ok"] is True and obj["result"]["tip"] == claims["bob"]

    code, obj = s.cli("bob", "verify")  # nothing outside the branch vouches for its first policy
    assert code == 21, obj
    assert found(obj) == {(s.root, "trust")}

    code, obj = s.cli("bob", "verify", "--admin", f"alice={s.keys['bob']}.pub")  # a wrong anchor
    assert code == 21, obj
    assert found(obj) == {(s.root, "trust")}, obj  # the root is signed by a key it lists: only unanchored


# --- 2, 3. plain-git commits that break the identity rules ---------------------------------

# Each case makes one commit in a working copy on t3 and names the rule that refuses it.


def unsigned(wc: Path, keys: dict[str, Path]) -> tuple[str, str]:
    edit(wc, "t3", rename("Renamed, unsigned"))
    git("add", "-A", cwd=wc)
    return git_as("bob", "commit", "-q", "-m", "rename t3", cwd=wc), "unsigned"


def wrong_signer(wc: Path, keys: dict[str, Path]) -> tuple[str, str]:
    edit(wc, "t3", rename("Renamed as bob, signed by alice"))
    git("add", "-A", cwd=wc)
    return git_as("bob", *signed_by(keys["alice"]), "commit", "-S", "-q", "-m", "rename t3", cwd=wc), "wrong-signer"


def unknown_key(wc: Path, keys: dict[str, Path]) -> tuple[str, str]:
    edit(wc, "t3", rename("Renamed, signed by a stranger"))
    git("add", "-A", cwd=wc)
    return git_as("bob", *signed_by(keys["carol"]), "commit", "-S", "-q", "-m", "rename t3", cwd=wc), "unknown-key"


def lying_trailers(wc: Path, keys: dict[str, Path]) -> tuple[str, str]:
    edit(wc, "t3", rename("Renamed, said to be done"))
    git("add", "-A", cwd=wc)
    msg = (
        "done t3 by bob\n\nGitclaim-Op: done\nGitclaim-Task: t3\nGitclaim-Agent: bob\n"
        "Gitclaim-From: active\nGitclaim-To: done\n"
    )
    return git_as("bob", *signed_by(keys["bob"]), "commit", "-S", "-q", "-m", msg, cwd=wc), "trailers"


BAD = [unsigned, wrong_signer, unknown_key, lying_trailers]


@pytest.mark.parametrize("case", BAD, ids=lambda f: f.__name__)
def test_the_server_hook_refuses_each_plain_git_commit_naming_its_rule(
    make: Make, case: Callable[[Path, dict[str, Path]], tuple[str, str]]
) -> None:
    s = make(hook=True)
    wc = s.checkout()
    sha, rule = case(wc, s.keys)
    r = s.push(wc)
    assert r.returncode != 0, r.stderr
    said = remote_lines(r.stderr)
    assert "gitclaim: push refused" in said, r.stderr
    lines = violation_lines(said)
    said_by = [line.split("remote:", 1)[1].strip() for line in lines]
    assert said_by and all(x.startswith(f"{sha[:10]} commit: ") for x in said_by), lines
    assert rules_of(lines) == {rule}, lines
    assert s.remote.ref() == s.tip


def test_where_no_hook_runs_verify_names_each_of_the_four(make: Make) -> None:
    s = make(hook=False)
    wc = s.checkout()
    expected = {case(wc, s.keys) for case in BAD}  # one after another on the branch
    r = s.push(wc)
    assert r.returncode == 0, r.stderr  # nothing stops them here
    code, obj = s.cli("alice", "verify", "--admin", f"alice={s.keys['alice']}.pub")
    assert code == 21, obj
    assert found(obj) == expected
    by_commit = {v["commit"]: v for v in obj["error"]["details"]["violations"]}
    assert {v["author"] for v in by_commit.values()} == {"bob"}
    assert all("edit t3 (todo -> todo)" in v["did"] for v in by_commit.values())


# --- 4. a signed merge made with plain git --------------------------------------------------


def test_a_clean_history_with_a_signed_plain_git_merge_verifies(make: Make) -> None:
    s = make(hook=True)
    wc = s.checkout()  # alice's own working copy, from before bob's claim
    edit(wc, "t2", rename("Task 2, renamed by alice"))
    git("add", "-A", cwd=wc)
    mine = git_as("alice", *signed_by(s.keys["alice"]), "commit", "-S", "-q", "-m", "rename t2", cwd=wc)
    code, obj = s.cli("bob", "claim", "t1")
    assert code == 0, obj
    claim = obj["result"]["commit"]
    git("fetch", "-q", "origin", cwd=wc)
    merge = git_as("alice", *signed_by(s.keys["alice"]), "merge", "-S", "-q", "--no-edit", "origin/gitclaim", cwd=wc)
    assert git("rev-list", "--parents", "-n", "1", merge, cwd=wc).split() == [merge, mine, claim]
    r = git_verifies(wc, merge)
    assert r.returncode == 0 and 'Good "git" signature for alice' in r.stderr, r.stderr

    r = s.push(wc)
    assert r.returncode == 0, r.stderr  # the server hook takes it
    assert s.remote.ref() == merge
    code, obj = s.cli("alice", "verify", "--admin", f"alice={s.keys['alice']}.pub")
    assert code == 0, obj
    assert obj["result"]["tip"] == merge

    code, obj = s.cli("bob", "show", "t1")
    assert code == 0, obj
    assert obj["result"]["task"]["claim"]["holder"] == "bob"
    assert [e["commit"] for e in obj["result"]["history"] if e["op"] == "claim"] == [claim]


# --- 5. only an admin changes the policy ----------------------------------------------------


def test_bob_cannot_change_the_policy_with_gitclaim_or_with_plain_git(make: Make) -> None:
    s = make(hook=True)
    carol = f"{s.keys['carol']}.pub"
    code, obj = s.cli("bob", "signers", "add", "carol", carol)
    assert code == 22, obj
    assert obj["error"]["code"] == "not_allowed" and obj["error"]["details"]["rule"] == "admin", obj
    assert s.remote.ref() == s.tip

    wc = s.checkout()
    with (wc / "allowed_signers").open("a") as f:
        f.write(f"carol {public(s.keys['carol']).line()}\n")
    git("add", "-A", cwd=wc)
    sha = git_as("bob", *signed_by(s.keys["bob"]), "commit", "-S", "-q", "-m", "let carol in", cwd=wc)
    r = s.push(wc)
    assert r.returncode != 0, r.stderr
    lines = violation_lines(remote_lines(r.stderr))
    assert rules_of(lines) == {"admin"}, lines
    assert any(f"{sha[:10]} commit: [admin] only an admin (alice)" in line for line in lines), lines
    assert s.remote.ref() == s.tip

    code, obj = s.cli("alice", "signers", "add", "carol", carol)  # the control: the admin may
    assert code == 0, obj
    assert s.remote.ref() == obj["result"]["commit"]


def test_signers_require_by_an_admin_whose_key_is_not_listed_is_bad_input(tmp_path: Path) -> None:
    remote = Remote(make_bare(tmp_path / "unsigned.git"), str(tmp_path / "unsigned.git"))
    dave = clone(remote, tmp_path / "dave")
    git("config", "gitclaim.agent", "dave", cwd=dave)
    bob_pub = tmp_path / "bob.pub"
    bob_pub.write_text(f"{public(keygen(tmp_path / 'bob')).line()} bob@test\n")
    assert cli_json("init", cwd=dave)[0] == 0
    code, obj = cli_json("signers", "add", "bob", str(bob_pub), cwd=dave)  # the first policy: dave its admin
    assert code == 0, obj
    assert obj["result"]["admins"] == ["dave"]
    tip = remote.ref()

    code, obj = cli_json("signers", "require", cwd=dave)
    assert code == 2, obj
    err = obj["error"]
    assert err["code"] == "bad_input"
    assert "dave has no key in the store's allowed_signers" in err["message"], err
    assert "signers add dave" in (err["hint"] or ""), err
    assert remote.ref() == tip
    code, obj = cli_json("signers", "list", cwd=dave)
    assert code == 0 and obj["result"]["require_signed"] is False, obj


def test_a_heartbeat_must_be_signed_by_its_agent(make: Make) -> None:
    """Where signatures are required, a liveness ref moves only with its agent's signed heartbeat:
    otherwise anyone could keep another agent's lease alive over git daemon, which names no pusher."""
    s = make(hook=True)
    code, obj = s.cli("bob", "heartbeat")
    assert code == 0, obj
    wc = s.checkout()
    unsigned = git("commit-tree", "-m", "heartbeat", git("hash-object", "-t", "tree", "/dev/null").strip(), cwd=wc)
    r = subprocess.run(
        [GIT, "push", "origin", f"{unsigned.strip()}:refs/gitclaim/alive/alice"],
        cwd=wc, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode != 0, r.stderr
    assert "[liveness]" in r.stderr and "alice" in r.stderr, r.stderr
    assert git("for-each-ref", "refs/gitclaim/alive/alice", cwd=s.remote.path).strip() == ""


# --- compaction on a store that requires signatures ---------------------------------------


def test_a_signed_compaction_by_the_operator_passes_the_hook_and_others_are_refused(make: Make) -> None:
    s = make(hook=True)
    code, obj = s.cli("bob", "compact")
    assert code == 22 and obj["error"]["details"]["rule"] == "operator", obj  # bob is no operator
    assert s.remote.ref() == s.tip

    # An honest shape in alice's name, by plain git, unsigned: the hook wants her signature.
    wc = s.checkout()
    archive = f"refs/gitclaim/archive/gitclaim/2026-01-01-{s.tip[:12]}"
    msg = (
        f"compact gitclaim by alice\n\nGitclaim-Op: compact\nGitclaim-Agent: alice\n"
        f"Gitclaim-Compacts: {s.tip}\nGitclaim-Archive: {archive}\n"
    )
    tree = git("rev-parse", f"{s.tip}^{{tree}}", cwd=wc).strip()
    forged = git(
        "-c", "user.name=alice", "-c", "user.email=alice@agents.invalid", "commit-tree", tree, "-m", msg, cwd=wc
    ).strip()
    p = subprocess.run(
        [GIT, "push", "origin", f"{s.tip}:{archive}", f"+{forged}:refs/heads/gitclaim"],
        cwd=wc, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert p.returncode != 0 and "unsigned" in p.stderr, p.stderr
    assert s.remote.ref() == s.tip

    code, obj = s.cli("alice", "compact")
    assert code == 0, obj
    tip = s.remote.ref()
    assert tip == obj["result"]["tip"] != s.tip
    fresh = s.checkout("after")
    assert git_verifies(fresh, tip).returncode == 0
    code, obj = cli_json("verify", "--admin", f"alice={s.keys['alice']}.pub", cwd=s.clones["bob"])
    assert code == 0, obj
    code, obj = s.cli("bob", "claim", "t1")
    assert code == 0, obj
