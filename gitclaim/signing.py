"""Signing gitclaim's commits as git signs them: git's configuration resolved into a signer.

git's rules (``git help config``: gpg.format, gpg.ssh.program,
gpg.ssh.defaultKeyCommand, user.signingKey, commit.gpgSign), for ssh only:

* ``user.signingKey`` is a literal key (``key::ssh-ed25519 AAAA...``, or the
  older bare ``ssh-...`` form) whose private half ssh-agent holds, or else a
  path (``~`` expanded; a relative one from the top of the clone, where git
  runs ssh-keygen) to a private key file or to a ``.pub`` file.
* Unset, the first line of ``gpg.ssh.defaultKeyCommand``'s output is the key
  (a literal one); with neither, git refuses, and so does gitclaim.

An unencrypted private key file (or a ``.pub`` file next to one) signs
in-process with :mod:`gitclaim.sshsig`, unless ``gpg.ssh.program`` is set;
everything else runs the program as git does: ``PROGRAM -Y sign -n git -f KEY
-U FILE``. ``-U`` (the key is in ssh-agent: git 2.40 passes it for a literal
key) stops ssh-keygen from falling back to a passphrase prompt that nobody
would answer; a set ``gpg.ssh.program`` gets exactly git's arguments.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .errors import BadInput

if TYPE_CHECKING:  # the keys load cryptography (tens of ms): only when signing is on
    from .sshkeys import PublicKey, SigningKey

DEFAULT_PROGRAM = "ssh-keygen"
_TIMEOUT = 120.0  # seconds for the signing program: an agent may wait for a touch or a confirmation
_TRUE, _FALSE = {"true", "yes", "on"}, {"false", "no", "off", ""}
_KEY_FORMS = "an ssh key: a private key file, its .pub with the key in ssh-agent, or key::TYPE BASE64"
_SET_KEY = f"set user.signingKey to {_KEY_FORMS}"


class Signer(Protocol):
    """What signs a commit: the armoured signature of its bytes, and the key that makes it."""

    @property
    def public_key(self) -> PublicKey: ...

    def sign(self, payload: bytes) -> str: ...


@dataclass(frozen=True)
class KeyFileSigner:
    """An unencrypted private key file, loaded once, signing in-process (no ssh-keygen)."""

    path: Path
    key: SigningKey

    @property
    def public_key(self) -> PublicKey:
        return self.key.public_key

    def sign(self, payload: bytes) -> str:
        from .sshsig import sign_with

        return sign_with(self.key, payload, "git")


@dataclass(frozen=True)
class ProgramSigner:
    """Signs by running ``gpg.ssh.program`` the way git does. ``key_file`` None: a literal key,
    written to a temporary file for the program, as git writes it."""

    public_key: PublicKey
    program: str
    key_file: Path | None
    agent: bool  # pass -U: the private key is in ssh-agent
    source: str  # what named the key, for messages

    def sign(self, payload: bytes) -> str:
        """Raises :class:`BadInput` with what to do (no agent, the key not in it, no program)."""
        with tempfile.TemporaryDirectory(prefix="gitclaim-sign-") as tmp:
            key_file = self.key_file
            if key_file is None:
                key_file = Path(tmp) / "signing_key.pub"
                key_file.write_text(self.public_key.line() + "\n")
            buffer = Path(tmp) / "buffer"
            buffer.write_bytes(payload)
            args = [self.program, "-Y", "sign", "-n", "git", "-f", str(key_file), *(["-U"] if self.agent else [])]
            try:
                r = subprocess.run(
                    [*args, str(buffer)], capture_output=True, stdin=subprocess.DEVNULL, timeout=_TIMEOUT
                )
            except FileNotFoundError:
                raise BadInput(
                    f"cannot sign: the ssh signing program {self.program!r} is not installed",
                    hint="install OpenSSH's ssh-keygen, or set gpg.ssh.program to it",
                ) from None
            except subprocess.TimeoutExpired:
                raise BadInput(f"cannot sign: {self.program} did not answer in {_TIMEOUT:.0f} s") from None
            signature = buffer.with_name("buffer.sig")
            if r.returncode != 0 or not signature.exists():
                raise self._failure(r.stderr.decode("utf-8", "replace"))
            return signature.read_text()

    def _failure(self, stderr: str) -> BadInput:
        what = f"the key {self.public_key.fingerprint()} ({self.source})"
        if "Couldn't get agent socket" in stderr:
            return BadInput(
                f"cannot sign with {what}: no ssh-agent answers (SSH_AUTH_SOCK={os.environ.get('SSH_AUTH_SOCK')})",
                hint="start ssh-agent and `ssh-add` the key, or point user.signingKey at an unencrypted private key",
            )
        if "Couldn't find key in agent" in stderr:
            return BadInput(
                f"cannot sign with {what}: ssh-agent does not hold it",
                hint="`ssh-add` its private key (`ssh-add -l` lists the keys the agent holds)",
            )
        said = " ".join(stderr.split())[-300:]
        return BadInput(f"cannot sign with {what}: {self.program} -Y sign failed: {said}", program=self.program)


def _bool(get: Callable[[str], str | None], key: str) -> bool | None:
    value = get(key)
    if value is None:
        return None
    low = value.strip().lower()
    if low in _TRUE or low in _FALSE:
        return low in _TRUE
    try:
        return int(low, 0) != 0
    except ValueError:
        raise BadInput(f"{key} is {value!r}, which git does not read as a boolean", key=key) from None


def signing_on(get: Callable[[str], str | None]) -> bool:
    """``gitclaim.sign`` when set (true or false), else ``commit.gpgSign``. Raises :class:`BadInput`."""
    own = _bool(get, "gitclaim.sign")
    return own if own is not None else bool(_bool(get, "commit.gpgsign"))


def signer_from_config(get: Callable[[str], str | None], *, cwd: str | os.PathLike[str]) -> Signer | None:
    """The signer git's configuration asks for (``get`` reads one key, None when unset), or None
    when signing is off (:func:`signing_on`). ``cwd`` is the top of the clone: where git resolves a
    relative key path and runs its commands.

    Raises :class:`BadInput`: gpg.format openpgp (git's default) or x509 (gitclaim signs with ssh
    keys only), no key configured, a key file missing or unreadable, a passphrase-protected key with
    no ssh-agent running.
    """
    if not signing_on(get):
        return None
    fmt = get("gpg.format") or "openpgp"
    if fmt != "ssh":
        known = fmt in ("openpgp", "x509")
        raise BadInput(
            f"signing is on, and gitclaim signs with ssh keys only; gpg.format is {fmt!r}"
            + (" (git's default)" if get("gpg.format") is None else "" if known else ", which git does not know"),
            hint=f"set gpg.format=ssh and user.signingKey to {_KEY_FORMS}; or gitclaim.sign=false for unsigned commits",
            format=fmt,
        )
    program = get("gpg.ssh.program")
    key, source = get("user.signingkey"), "user.signingKey"
    if key is None:
        key, source = _default_key(get("gpg.ssh.defaultkeycommand"), Path(cwd)), "gpg.ssh.defaultKeyCommand"
    if not key.strip():
        raise BadInput("user.signingKey needs to be set for ssh signing (it is empty)", hint=_SET_KEY)
    return _signer_for(key.strip(), program, Path(cwd), source)


def _default_key(command: str | None, cwd: Path) -> str:
    if not command:
        raise BadInput(
            "ssh signing is on, but neither user.signingKey nor gpg.ssh.defaultKeyCommand is set", hint=_SET_KEY
        )
    try:
        r = subprocess.run(
            shlex.split(command), cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=_TIMEOUT
        )
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        raise BadInput(f"gpg.ssh.defaultKeyCommand {command!r} did not run: {e}") from None
    first = (r.stdout.splitlines() or [""])[0].strip()
    if r.returncode != 0 or not (first.startswith("key::") or first.startswith("ssh-")):
        said = " ".join(r.stderr.split())[-200:]
        raise BadInput(
            f"gpg.ssh.defaultKeyCommand {command!r} gave no key (exit {r.returncode}){': ' + said if said else ''}",
            hint="its first line of output must be a public key, `key::TYPE BASE64` or `ssh-...`",
        )
    return first


def _signer_for(key: str, program: str | None, cwd: Path, source: str) -> Signer:
    from .sshkeys import looks_private, parse_public_key

    literal = key.removeprefix("key::") if key.startswith(("key::", "ssh-")) else None
    if literal is not None:
        try:
            public = parse_public_key(literal)
        except BadInput as e:
            raise BadInput(f"{source}: {e.message}", hint=_SET_KEY) from None
        return _agent_signer(public, program, None, source)
    path = Path(os.path.expanduser(key))
    path = path if path.is_absolute() else cwd / path
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"user.signingKey names {path}, which does not exist", hint=_SET_KEY, path=str(path)) from None
    except OSError as e:
        raise BadInput(f"cannot read the signing key {path}: {e.strerror}", path=str(path)) from None
    if looks_private(data):
        return _private_file(path, data, program)
    try:
        public = parse_public_key(data.decode("utf-8", "replace"))
    except BadInput as e:
        raise BadInput(f"the signing key {path}: {e.message}", hint=_SET_KEY, path=str(path)) from None
    private = path.with_suffix("") if path.suffix == ".pub" else None
    if program is None and private is not None and private.is_file():
        beside = _try_load(private)
        if beside is not None and beside.public_key == public:
            return KeyFileSigner(private, beside)
    return _agent_signer(public, program, path, str(path))


def _private_file(path: Path, data: bytes, program: str | None) -> Signer:
    from .sshkeys import load_signing_key, private_key_encrypted

    if not private_key_encrypted(data):
        if program is None:
            try:
                return KeyFileSigner(path, load_signing_key(data))
            except BadInput as e:
                raise BadInput(f"the signing key {path}: {e.message}", hint=e.hint, path=str(path)) from None
        found = _public_of(path, data) or load_signing_key(data).public_key
        return ProgramSigner(found, program, path, agent=False, source=str(path))
    public = _public_of(path, data)
    if public is None or (program is None and not os.environ.get("SSH_AUTH_SOCK")):
        raise BadInput(
            f"the signing key {path} is protected by a passphrase, which gitclaim cannot ask for",
            hint=f"load it into ssh-agent (`ssh-add {path}`), with SSH_AUTH_SOCK set for gitclaim",
            path=str(path),
        )
    return _agent_signer(public, program, path, str(path))


def _agent_signer(public: PublicKey, program: str | None, key_file: Path | None, source: str) -> ProgramSigner:
    if program is None and not os.environ.get("SSH_AUTH_SOCK"):
        raise BadInput(
            f"the signing key {public.fingerprint()} ({source}) is to be in ssh-agent, and no agent runs"
            " (SSH_AUTH_SOCK is not set)",
            hint="start ssh-agent and `ssh-add` the key, or point user.signingKey at an unencrypted private key",
        )
    # -U for ssh-keygen itself; a program of one's own gets git's arguments (-U only for a literal key)
    agent = program is None or key_file is None
    return ProgramSigner(public, program or DEFAULT_PROGRAM, key_file, agent=agent, source=source)


def _public_of(path: Path, data: bytes) -> PublicKey | None:
    from .sshkeys import openssh_public_half, parse_public_key

    """The public half of a private key file: carried in an OpenSSH file, else the .pub beside it."""
    found = openssh_public_half(data)
    if found is not None:
        return found
    try:
        return parse_public_key(Path(f"{path}.pub").read_text())
    except (OSError, BadInput):
        return None


def _try_load(path: Path) -> SigningKey | None:
    from .sshkeys import load_signing_key, private_key_encrypted

    try:
        data = path.read_bytes()
        return None if private_key_encrypted(data) else load_signing_key(data)
    except (OSError, BadInput):
        return None
