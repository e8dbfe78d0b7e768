"""Host aliases from ``~/.ssh/config``, which libgit2's ssh (libssh2) never reads.

People reach their git server as ``git@tasks:org/repo.git`` with a ``Host
tasks`` block naming the real host, port, user and key. ``git`` works there
because it runs OpenSSH; gitclaim, which connects in-process, reads the same
block: ``HostName``, ``Port``, ``User`` and ``IdentityFile``, with ssh's
rules (the first value found wins, ``IdentityFile`` adds up, ``Host``
patterns with ``*``, ``?`` and ``!``, ``Include``). ``Match`` blocks and all
other keywords are ignored (documented in docs/remotes.md).

Parsing and resolving are pure; ``load`` reads the files.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

KEYS = ("hostname", "port", "user", "identityfile", "identitiesonly")
_MAX_INCLUDE_DEPTH = 8
_NEVER = ("!*",)  # the patterns of a Match block: gitclaim cannot evaluate its criteria


@dataclass(frozen=True, slots=True)
class Entry:
    """One setting, and the Host pattern lists that must all match for it to apply
    (none: it came before any Host line; two: a Host block in a file included
    from inside another Host block)."""

    guards: tuple[tuple[str, ...], ...]
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class SshTarget:
    """Where an ssh remote really is."""

    host: str
    port: int | None
    user: str | None
    path: str  # as the URL wrote it: the scp form's path goes to the server untouched
    identity_files: tuple[str, ...] = ()
    identities_only: bool = False  # IdentitiesOnly yes: offer the named keys only, never the agent's others
    moved: bool = False  # the config changed the host, port or user of the URL
    scp: bool = False  # written [user@]host:path, not ssh://

    def url(self) -> str:
        """The URL to connect to, in the form it was written: an scp-like path
        relative to the login's home stays relative (gitolite and forges parse it)."""
        # libgit2 reads [user@host:port]:path by its last ':' and first '@': an IPv6
        # host with a port, or a user with '@' or ':', needs the ssh:// form.
        awkward = (":" in self.host and self.port) or any(c in (self.user or "") for c in "@:")
        if self.scp and not awkward:
            user = f"{self.user}@" if self.user else ""
            if self.port:  # git's and libgit2's form for a port: [user@host:port]:path
                return f"[{user}{self.host}:{self.port}]:{self.path}"
            return f"{user}[{self.host}]:{self.path}" if ":" in self.host else f"{user}{self.host}:{self.path}"
        user = f"{quote(self.user, safe='')}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port else ""
        path = self.path if not self.scp or self.path.startswith("/") else "/~/" + self.path.removeprefix("~/")
        return f"ssh://{user}{host}{port}{path}"


_SCP = re.compile(r"^(?:([^@/\[]+)@)?(\[[^\]/]+\]|[^:/\[\]]+):(.*)$")
_LINE = re.compile(r"\s*([A-Za-z]+)\s*(?:=\s*|\s+)(.*)$")


def _words(line: str) -> tuple[str, list[str]] | None:
    """``Keyword value ...`` or ``Keyword=value``; None for a comment, a blank or a bare word."""
    if line.lstrip().startswith("#"):
        return None
    m = _LINE.match(line)
    if m is None:
        return None
    try:
        values = shlex.split(m.group(2))
    except ValueError:  # an unbalanced quote: take the words as they are
        values = m.group(2).split()
    return m.group(1).lower(), values


def parse(text: str, include: Callable[[str], list[Entry]] | None = None) -> list[Entry]:
    """The entries of one config file; ``include(pattern)`` gives the entries of
    the files an ``Include`` names (applied under the Host block it sits in)."""
    out: list[Entry] = []
    guards: tuple[tuple[str, ...], ...] = ()
    for line in text.splitlines():
        words = _words(line)
        if words is None:
            continue
        key, values = words
        if key == "host":
            guards = (tuple(values) or _NEVER,)
        elif key == "match":
            guards = (_NEVER,)
        elif key == "include" and include is not None:
            for value in values:
                out += [Entry(guards + e.guards, e.key, e.value) for e in include(value)]
        elif key in KEYS and values:
            out.append(Entry(guards, key, values[0]))
    return out


def host_matches(patterns: tuple[str, ...], host: str) -> bool:
    """ssh's Host rule: some pattern matches and no negated one does (case-insensitive)."""
    host = host.lower()
    hit = False
    for p in patterns:
        negated = p.startswith("!")
        if fnmatch.fnmatchcase(host, (p[1:] if negated else p).lower()):
            if negated:
                return False
            hit = True
    return hit


def split_ssh_url(url: str) -> tuple[str | None, str, int | None, str, bool] | None:
    """(user, host, port, path, scp) of an ``ssh://`` or scp-like
    ``[user@]host:path`` (or ``[host:port]:path``) remote; None for anything else."""
    if url.startswith(("ssh://", "ssh+git://", "git+ssh://")):
        try:
            u = urlsplit(url)
            port = u.port
        except ValueError:
            return None
        if not u.hostname:
            return None
        return (unquote(u.username) if u.username else None), u.hostname, port, u.path or "/", False
    m = None if "://" in url else _SCP.match(url)
    if m is None:
        return None  # a local path (perhaps with a colon in it), or another scheme
    user, host, path = m.group(1), m.group(2), m.group(3)
    scp_port: int | None = None
    if host.startswith("["):
        host = host[1:-1]
        inner_user, at, rest = host.rpartition("@")  # [user@host:port]:path
        if at:
            user, host = user or inner_user, rest
        name, _, digits = host.rpartition(":")
        if name and ":" not in name and digits.isdigit():
            host, scp_port = name, int(digits)
    return user, host, scp_port, path, True


def resolve(url: str, entries: list[Entry], *, home: str, local_user: str) -> SshTarget | None:
    """Where ``url`` really leads once ``~/.ssh/config`` is applied; None if it is not ssh."""
    parts = split_ssh_url(url)
    if parts is None:
        return None
    user, alias, port, path, scp = parts
    given = (user, alias, port)
    found: dict[str, str] = {}
    identities: list[str] = []
    for e in entries:
        if not all(host_matches(g, alias) for g in e.guards):
            continue
        if e.key == "identityfile":
            identities.append(e.value)
        else:
            found.setdefault(e.key, e.value)
    host = found.get("hostname", alias).replace("%h", alias)
    if port is None and found.get("port", "").isdigit():
        port = int(found["port"])
    user = user or found.get("user")
    keys = tuple(_expand(i, home=home, host=host, user=user or local_user, local_user=local_user) for i in identities)
    only = found.get("identitiesonly", "no").lower() in ("yes", "true")
    return SshTarget(host, port, user, path, keys, only, moved=(user, host, port) != given, scp=scp)


def _expand(value: str, *, home: str, host: str, user: str, local_user: str) -> str:
    if value.startswith("~/") or value == "~":
        value = home + value[1:]
    out, i = [], 0
    tokens = {"d": home, "h": host, "r": user, "u": local_user, "%": "%"}
    while i < len(value):
        if value[i] == "%" and i + 1 < len(value) and value[i + 1] in tokens:
            out.append(tokens[value[i + 1]])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def load(home: str | None = None) -> list[Entry]:
    """The entries of ``~/.ssh/config`` and what it includes; [] if there is none
    or it cannot be read (then ssh:// URLs are taken as they are)."""
    home = home or os.path.expanduser("~")
    ssh_dir = Path(home) / ".ssh"

    def read(path: Path, depth: int) -> list[Entry]:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []

        def include(pattern: str) -> list[Entry]:
            if depth >= _MAX_INCLUDE_DEPTH:
                return []
            pattern = os.path.expanduser(pattern) if pattern.startswith("~") else pattern
            full = pattern if os.path.isabs(pattern) else str(ssh_dir / pattern)
            out: list[Entry] = []
            for name in sorted(glob.glob(full)):
                out += read(Path(name), depth + 1)
            return out

        return parse(text, include)

    return read(ssh_dir / "config", 0)
