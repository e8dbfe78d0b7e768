"""The ssh command the system's git runs: the user's own, bounded, and sharing one
connection between an agent's successive operations.

OpenSSH's ``ControlMaster=auto`` with ``ControlPersist`` keeps the first
operation's session open in the background; the next fetch or push to the same
host goes through its socket and skips the handshake. gitclaim adds that only
where the user's own ssh set-up says nothing about it (no ``ControlMaster`` or
``ControlPath`` in their ssh config or ssh command), and keeps the sockets in a
private folder (mode 0700, owned by this user, a short path: a unix socket's
path is at most 104 bytes).
"""

from __future__ import annotations

import glob
import hashlib
import math
import os
import re
import shlex
import stat
from pathlib import Path

CONTROL_PERSIST_S = 120  # an agent's next operation usually comes within seconds; idle masters end themselves
_CONTROL_WORD = re.compile(r"^\s*(ControlMaster|ControlPath)\b", re.IGNORECASE | re.MULTILINE)
_INCLUDE = re.compile(r"^\s*Include\s+(.+)$", re.IGNORECASE | re.MULTILINE)


def passwd_home() -> Path:
    """The home OpenSSH reads ~/.ssh from: the passwd entry's, not $HOME."""
    try:
        import pwd

        return Path(pwd.getpwuid(os.getuid()).pw_dir)
    except (KeyError, ImportError):
        return Path(os.path.expanduser("~"))


def ssh_command(configured: str | None, *, key: str | None, connect_ms: int, multiplex: bool = True) -> str | None:
    """The ``GIT_SSH_COMMAND`` for one git process, or None to leave git's choice alone.

    ``configured`` is the user's own command (GIT_SSH_COMMAND or core.sshCommand).
    A command that is not OpenSSH's ``ssh`` (a wrapper script, plink) is left as
    it is, as is a GIT_SSH program: options appended to those could break them.
    ``key`` (GITCLAIM_SSH_KEY) is the one identity to offer.
    """
    if configured is None and os.environ.get("GIT_SSH"):
        return None
    base = configured if configured is not None else "ssh"
    try:
        words = shlex.split(base)
    except ValueError:
        return None
    if not words or os.path.basename(words[0]) != "ssh":
        return None
    opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, math.ceil(connect_ms / 1000))}"]
    if key:
        opts += ["-i", key, "-o", "IdentitiesOnly=yes"]
    if multiplex and not user_controls(words):
        folder = socket_dir()
        if folder is not None:
            # The socket's name holds what the session was opened with: a session
            # opened with one agent's key must never carry another agent's push.
            who = hashlib.sha1(f"{base}\0{key or ''}".encode()).hexdigest()[:10]
            opts += ["-o", "ControlMaster=auto", "-o", f"ControlPath={folder}/%C-{who}",
                     "-o", f"ControlPersist={CONTROL_PERSIST_S}",
                     "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3"]  # fmt: skip
    return " ".join([base, *(shlex.quote(o) for o in opts)])


def user_controls(words: list[str]) -> bool:
    """Does the user's ssh set-up already say how to share connections?"""
    for n, w in enumerate(words):
        if w in ("-M", "-S") or w.startswith("-S"):
            return True
        if w.startswith("-o") and _CONTROL_WORD.match(w[2:] or (words[n + 1] if n + 1 < len(words) else "")):
            return True
    if "-F" in words[:-1]:
        files = [Path(words[words.index("-F") + 1]).expanduser()]
    else:
        files = [passwd_home() / ".ssh" / "config", Path("/etc/ssh/ssh_config")]
    return any(_mentions_control(f, 0) for f in files)


def _mentions_control(path: Path, depth: int) -> bool:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return False
    if _CONTROL_WORD.search(text):
        return True
    if depth >= 4:
        return False
    for line in _INCLUDE.findall(text):
        for pattern in line.split():
            pattern = os.path.expanduser(pattern)
            if not os.path.isabs(pattern):  # relative: to ~/.ssh for a user's file, /etc/ssh for the system's
                pattern = str(path.parent / pattern)
            if any(_mentions_control(Path(p), depth + 1) for p in glob.glob(pattern)):
                return True
    return False


def socket_dir() -> Path | None:
    """A private folder for the control sockets, or None when no safe one can be had
    (then every operation opens its own session, as without gitclaim's sharing)."""
    named = os.environ.get("GITCLAIM_SSH_CONTROL_DIR")
    if named:
        folder = Path(named)
    else:
        runtime = os.environ.get("XDG_RUNTIME_DIR")
        parent = Path(runtime) if runtime and os.path.isdir(runtime) else Path("/tmp")
        folder = parent / f"gitclaim-ssh-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        st = folder.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        return None  # a symlink or someone else's folder: never put our sockets there
    if st.st_mode & 0o077:
        try:
            folder.chmod(0o700)
        except OSError:
            return None
    if len(str(folder)) > 50:  # the socket's name adds 51 bytes (and ssh a temporary 17)
        return None
    return folder
