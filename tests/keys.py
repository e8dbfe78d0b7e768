"""ssh keys and a real ssh-agent for the tests: made with ssh-keygen in temporary folders."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from gitclaim import sshsig
from gitclaim.sshkeys import parse_public_key

KEY_KINDS = {"ed25519": ["-t", "ed25519"], "rsa": ["-t", "rsa", "-b", "2048"], "ecdsa": ["-t", "ecdsa", "-b", "256"]}
DETERMINISTIC = {"ed25519", "rsa"}  # ECDSA signatures are randomised, by ssh-keygen too


def keygen(path: Path, kind: str = "ed25519", passphrase: str = "", comment: str = "agent@test") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", *KEY_KINDS[kind], "-N", passphrase, "-C", comment, "-f", str(path)],
                   check=True, capture_output=True)  # fmt: skip
    return path


def public(path: Path) -> sshsig.PublicKey:
    return parse_public_key(Path(f"{path}.pub").read_text())


def keygen_sign(key: Path, payload: bytes, namespace: str = "git") -> str:
    r = subprocess.run(["ssh-keygen", "-Y", "sign", "-n", namespace, "-f", str(key)], input=payload,
                       capture_output=True, check=True)  # fmt: skip
    return r.stdout.decode()


def keygen_verify(allowed: Path, principal: str, signature: str, payload: bytes, tmp: Path) -> bool:
    sig = tmp / "checked.sig"
    sig.write_text(signature)
    r = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", principal, "-n", "git",
                        "-s", str(sig)], input=payload, capture_output=True)  # fmt: skip
    return r.returncode == 0


class Agent:
    """A real ssh-agent on its own socket; SSH_AUTH_SOCK points at it while the test runs."""

    def __init__(self, sock: Path) -> None:
        self.sock = sock
        self.proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline and self.proc.poll() is None, "ssh-agent did not start"
            time.sleep(0.01)

    def add(self, key: Path, passphrase: str = "") -> None:
        env = {**os.environ, "SSH_AUTH_SOCK": str(self.sock)}
        if passphrase:  # ssh-add asks through SSH_ASKPASS when told to, never on a terminal here
            askpass = key.parent / "askpass.sh"
            askpass.write_text(f"#!/bin/sh\necho '{passphrase}'\n")
            askpass.chmod(0o700)
            env |= {"SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}
        subprocess.run(["ssh-add", "-q", str(key)], env=env, check=True, capture_output=True,
                       stdin=subprocess.DEVNULL)  # fmt: skip


def allowed_file(tmp: Path, *keys: sshsig.PublicKey, name: str = "agent@test") -> Path:
    signers = sshsig.AllowedSigners()
    for k in keys:
        signers = signers.with_added(name, k)
    path = tmp / "allowed_signers"
    path.write_text(signers.text())
    return path
