"""SSH-signed commits: signers resolved from git's configuration, and commits that real
``git verify-commit`` accepts.

Keys come from ``ssh-keygen``, the agent is a real ``ssh-agent`` each test
starts on its own socket (and stops), and every check of a commit is git's own.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gitclaim import sshsig
from gitclaim.errors import BadInput
from gitclaim.git.repo import Repo, init_repository
from gitclaim.signing import KeyFileSigner, ProgramSigner, signer_from_config

from .keys import KEY_KINDS, Agent, allowed_file, keygen, public
from .servers import git, stop_group

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def agent(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Agent]:
    a = Agent(tmp_path_factory.mktemp("agent") / "sock")  # a short path: a unix socket's is at most 107 bytes
    monkeypatch.setenv("SSH_AUTH_SOCK", str(a.sock))
    try:
        yield a
    finally:
        stop_group(a.proc)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    top = init_repository(tmp_path / "clone")
    git("config", "gpg.format", "ssh", cwd=top)
    git("config", "commit.gpgsign", "true", cwd=top)
    return Repo(top)


def configure(repo: Repo, **settings: str) -> Callable[[str], str | None]:
    for key, value in settings.items():
        git("config", key.replace("__", "."), value, cwd=repo.top)
    return Repo(repo.top).config_get


def commit_with(repo: Repo, sign: Callable[[bytes], str] | None) -> str:
    files = {"tasks/t1.toml": b'state = "open"\n'}
    return repo.write_commit(None, files, "add t1\n", "agent", "a@test", WHEN, sign=sign)


def git_verifies(repo: Repo, sha: str, allowed: Path) -> bool:
    r = subprocess.run(["git", "-c", f"gpg.ssh.allowedSignersFile={allowed}", "verify-commit", sha],
                       cwd=repo.top, capture_output=True, text=True)  # fmt: skip
    return r.returncode == 0


# --- commits signed by each kind of signer, checked by git -------------------------------------


@pytest.mark.parametrize("kind", sorted(KEY_KINDS))
def test_a_key_file_signs_in_process_and_git_verifies(kind: str, repo: Repo, tmp_path: Path) -> None:
    key = keygen(tmp_path / "keys" / "id", kind)
    signer = signer_from_config(configure(repo, user__signingkey=str(key)), cwd=repo.top)
    assert isinstance(signer, KeyFileSigner) and signer.public_key == public(key)
    sha = commit_with(repo, signer.sign)
    assert git_verifies(repo, sha, allowed_file(tmp_path, public(key)))
    assert not git_verifies(repo, sha, allowed_file(tmp_path, public(keygen(tmp_path / "other", kind))))
    found = repo.commit_signature(sha)
    assert found is not None
    armored, payload = found
    verified = sshsig.verify(payload, armored, sshsig.AllowedSigners().with_added("agent@test", public(key)))
    assert verified is not None and verified.principals == ("agent@test",)
    assert git("cat-file", "commit", sha, cwd=repo.top).startswith(payload.decode().split("\n", 1)[0])
    assert repo.commit_signature(commit_with(repo, None)) is None


def test_the_signed_commit_is_byte_identical_to_git_commit_tree_s(repo: Repo, tmp_path: Path) -> None:
    key = keygen(tmp_path / "id")
    signer = signer_from_config(configure(repo, user__signingkey=str(key)), cwd=repo.top)
    assert signer is not None
    ours = commit_with(repo, signer.sign)
    tree = git("rev-parse", f"{ours}^{{tree}}", cwd=repo.top).strip()
    stamp = f"@{int(WHEN.timestamp())} +0000"
    env = {**os.environ, "GIT_AUTHOR_NAME": "agent", "GIT_AUTHOR_EMAIL": "a@test", "GIT_AUTHOR_DATE": stamp,
           "GIT_COMMITTER_NAME": "agent", "GIT_COMMITTER_EMAIL": "a@test", "GIT_COMMITTER_DATE": stamp}  # fmt: skip
    theirs = subprocess.run(["git", "commit-tree", "-S", "-m", "add t1", tree], cwd=repo.top, env=env,
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert ours == theirs


def test_a_pub_file_signs_through_the_agent(agent: Agent, repo: Repo, tmp_path: Path) -> None:
    key = keygen(tmp_path / "keys" / "id")
    agent.add(key)
    hidden = key.rename(tmp_path / "elsewhere")  # only the agent holds the private half now
    signer = signer_from_config(configure(repo, user__signingkey=f"{key}.pub"), cwd=repo.top)
    assert isinstance(signer, ProgramSigner) and signer.agent and signer.key_file == Path(f"{key}.pub")
    sha = commit_with(repo, signer.sign)
    assert git_verifies(repo, sha, allowed_file(tmp_path, public(key)))
    # with the private half beside it, the .pub file signs in-process: the same bytes, no ssh-keygen
    hidden.rename(key)
    fast = signer_from_config(configure(repo), cwd=repo.top)
    assert isinstance(fast, KeyFileSigner)
    assert fast.sign(b"commit") == signer.sign(b"commit")


@pytest.mark.parametrize("kind", sorted(KEY_KINDS))
def test_a_literal_key_signs_through_the_agent(kind: str, agent: Agent, repo: Repo, tmp_path: Path) -> None:
    key = keygen(tmp_path / "id", kind)
    agent.add(key)
    literal = "key::" + Path(f"{key}.pub").read_text().strip()
    signer = signer_from_config(configure(repo, user__signingkey=literal), cwd=repo.top)
    assert isinstance(signer, ProgramSigner) and signer.key_file is None and signer.public_key == public(key)
    sha = commit_with(repo, signer.sign)
    assert git_verifies(repo, sha, allowed_file(tmp_path, public(key)))
    if literal.startswith("key::ssh-"):  # git's older bare form, which git knows by its "ssh-" only
        old_form = signer_from_config(configure(repo, user__signingkey=literal[len("key::") :]), cwd=repo.top)
        assert isinstance(old_form, ProgramSigner) and old_form.public_key == public(key)


def test_agent_faults_say_what_to_do(agent: Agent, repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = keygen(tmp_path / "id")
    get = configure(repo, user__signingkey="key::" + Path(f"{key}.pub").read_text().strip())
    signer = signer_from_config(get, cwd=repo.top)
    assert signer is not None
    with pytest.raises(BadInput, match="ssh-agent does not hold it") as e:
        signer.sign(b"commit")
    assert "ssh-add" in e.value.hint and public(key).fingerprint() in e.value.message
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "no-agent-here"))
    with pytest.raises(BadInput, match="no ssh-agent answers"):
        signer.sign(b"commit")
    monkeypatch.delenv("SSH_AUTH_SOCK")
    with pytest.raises(BadInput, match="no agent runs"):
        signer_from_config(get, cwd=repo.top)


def test_an_encrypted_key_file_needs_the_agent(agent: Agent, repo: Repo, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    key = keygen(tmp_path / "id", passphrase="correct horse")
    Path(f"{key}.pub").unlink()  # the public half comes from the key file itself
    get = configure(repo, user__signingkey=str(key))
    signer = signer_from_config(get, cwd=repo.top)
    assert isinstance(signer, ProgramSigner)
    with pytest.raises(BadInput, match="ssh-agent does not hold it"):
        signer.sign(b"commit")  # and no passphrase prompt: -U
    agent.add(key, passphrase="correct horse")
    sha = commit_with(repo, signer.sign)
    assert git_verifies(repo, sha, allowed_file(tmp_path, signer.public_key))
    monkeypatch.delenv("SSH_AUTH_SOCK")
    with pytest.raises(BadInput, match="protected by a passphrase") as e:
        signer_from_config(get, cwd=repo.top)
    assert "ssh-add" in e.value.hint


# --- git's configuration ------------------------------------------------------------------------


def test_signing_is_off_unless_asked_for(tmp_path: Path) -> None:
    top = init_repository(tmp_path / "c")
    key = keygen(tmp_path / "id")
    get = configure(Repo(top), gpg__format="ssh", user__signingkey=str(key))
    assert signer_from_config(get, cwd=top) is None
    assert isinstance(signer_from_config(configure(Repo(top), gitclaim__sign="yes"), cwd=top), KeyFileSigner)
    assert signer_from_config(configure(Repo(top), gitclaim__sign="off", commit__gpgsign="true"), cwd=top) is None
    git("config", "--unset", "gitclaim.sign", cwd=top)
    assert isinstance(signer_from_config(Repo(top).config_get, cwd=top), KeyFileSigner)
    with (top / ".git" / "config").open("a") as f:
        f.write("[gitclaim]\n\tsign\n")  # no value: git reads it as true
    assert Repo(top).config_get("gitclaim.sign") == "true"
    with pytest.raises(BadInput, match="boolean"):
        signer_from_config(configure(Repo(top), gitclaim__sign="maybe"), cwd=top)


@pytest.mark.parametrize(("fmt", "said"), [(None, "'openpgp' \\(git's default\\)"), ("openpgp", "'openpgp'"),
                                           ("x509", "'x509'"), ("pgp", "'pgp', which git does not know")])  # fmt: skip
def test_gpg_and_x509_signing_is_refused_clearly(fmt: str | None, said: str, tmp_path: Path) -> None:
    top = init_repository(tmp_path / "c")
    settings = {"commit__gpgsign": "true", "user__signingkey": "ABCDEF0123456789"}
    if fmt is not None:
        settings["gpg__format"] = fmt
    with pytest.raises(BadInput, match=f"gitclaim signs with ssh keys only; gpg.format is {said}") as e:
        signer_from_config(configure(Repo(top), **settings), cwd=top)
    assert "gitclaim.sign=false" in e.value.hint


def test_key_paths_resolve_as_git_resolves_them(repo: Repo, tmp_path: Path) -> None:
    home_key = keygen(Path(os.environ["HOME"]) / ".ssh" / "id_ed25519")
    signer = signer_from_config(configure(repo, user__signingkey="~/.ssh/id_ed25519"), cwd=repo.top)
    assert isinstance(signer, KeyFileSigner) and signer.path == home_key
    relative = keygen(repo.top / "keys" / "id")
    signer = signer_from_config(configure(repo, user__signingkey="keys/id"), cwd=repo.top)
    assert isinstance(signer, KeyFileSigner) and signer.path == relative  # from the top of the clone
    for value, said in [("keys/missing", "does not exist"), ("", "needs to be set"),
                        ("key::ssh-ed25519 AAAA", "user.signingKey: not a valid")]:  # fmt: skip
        with pytest.raises(BadInput, match=said):
            signer_from_config(configure(repo, user__signingkey=value), cwd=repo.top)
    (repo.top / "keys" / "junk").write_text("not a key\n")
    with pytest.raises(BadInput, match=r"the signing key .*junk"):
        signer_from_config(configure(repo, user__signingkey="keys/junk"), cwd=repo.top)


def test_the_default_key_command_names_the_key(agent: Agent, repo: Repo, tmp_path: Path) -> None:
    key = keygen(tmp_path / "id")
    agent.add(key)
    script = tmp_path / "first-key.sh"
    script.write_text(f"#!/bin/sh\necho 'key::{Path(f'{key}.pub').read_text().strip()}'\necho 'key::ignored'\n")
    script.chmod(0o700)
    get = configure(repo, gpg__ssh__defaultKeyCommand=str(script))
    signer = signer_from_config(get, cwd=repo.top)
    assert isinstance(signer, ProgramSigner) and signer.public_key == public(key)
    assert git_verifies(repo, commit_with(repo, signer.sign), allowed_file(tmp_path, public(key)))
    git("config", "--unset", "gpg.ssh.defaultKeyCommand", cwd=repo.top)
    with pytest.raises(BadInput, match=r"neither user\.signingKey nor gpg\.ssh\.defaultKeyCommand"):
        signer_from_config(Repo(repo.top).config_get, cwd=repo.top)
    with pytest.raises(BadInput, match="gave no key"):
        signer_from_config(configure(repo, gpg__ssh__defaultKeyCommand="echo nothing"), cwd=repo.top)


def test_gpg_ssh_program_is_run_with_gits_arguments(repo: Repo, tmp_path: Path) -> None:
    key = keygen(tmp_path / "id")
    log = tmp_path / "args.log"
    program = tmp_path / "my-ssh-keygen"
    program.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec ssh-keygen "$@"\n')
    program.chmod(0o700)
    signer = signer_from_config(configure(repo, user__signingkey=str(key), gpg__ssh__program=str(program)),
                                cwd=repo.top)  # fmt: skip
    assert isinstance(signer, ProgramSigner) and not signer.agent
    sha = commit_with(repo, signer.sign)
    assert git_verifies(repo, sha, allowed_file(tmp_path, public(key)))
    args = log.read_text().splitlines()[0].split()  # then git verify-commit ran it too, with -Y verify
    assert args[:6] == ["-Y", "sign", "-n", "git", "-f", str(key)] and len(args) == 7  # then the buffer file
    missing = signer_from_config(configure(repo, gpg__ssh__program=str(tmp_path / "absent")), cwd=repo.top)
    assert missing is not None
    with pytest.raises(BadInput, match="not installed"):
        missing.sign(b"commit")


def test_signing_a_commit_keeps_the_store_commit_otherwise_the_same(repo: Repo, tmp_path: Path) -> None:
    key = keygen(tmp_path / "id")
    signer = signer_from_config(configure(repo, user__signingkey=str(key)), cwd=repo.top)
    assert signer is not None
    first = commit_with(repo, None)
    signed = repo.write_commit(first, {"tasks/t2.toml": b"x = 1\n"}, "add t2\n", "agent", "a@test",
                               WHEN + timedelta(seconds=1), sign=signer.sign)  # fmt: skip
    info = repo.commit_info(signed)
    assert info.parents == (first,) and info.message == "add t2\n" and info.author == "agent"
    assert repo.read_path(repo.commit_tree(signed), "tasks/t1.toml") == b'state = "open"\n'
    assert repo.read_path(repo.commit_tree(signed), "tasks/t2.toml") == b"x = 1\n"
    git("fsck", "--no-progress", cwd=repo.top)
