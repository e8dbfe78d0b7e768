"""HTTP(S) credentials from git's own credential helpers (gitcredentials(7)).

libgit2 does not run git's credential helpers, so gitclaim speaks their
protocol itself: it reads ``credential.helper`` (and the URL-scoped
``credential.<url>.helper``) from the clone's git config in git's order, runs
each helper with ``get`` and merges what they answer, exactly as ``git`` does.
After the server accepted a credential every helper is told ``store``; after
it refused one, ``erase``. A helper named without a path (``store``,
``cache``, ``libsecret``, ``osxkeychain`` ...) is the program
``git-credential-NAME`` on PATH or in git's exec-path. Nothing here ever
prompts: an agent has no terminal, so a helper that has no answer means no
credential, never a hang (each helper call is bounded by a timeout).

The parsing and matching are pure functions; only ``run_helper`` spawns.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

# Where git keeps its helper programs when they are not on PATH.
_EXEC_DIRS = ("/usr/lib/git-core", "/usr/libexec/git-core", "/usr/local/libexec/git-core",
              "/opt/homebrew/libexec/git-core", "/Library/Developer/CommandLineTools/usr/libexec/git-core")  # fmt: skip
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Request:
    """What the server is asked about: protocol, host[:port] and, if
    ``credential.useHttpPath`` is set, the path."""

    protocol: str
    host: str
    path: str | None = None
    username: str | None = None

    def encode(self) -> bytes:
        lines = [f"protocol={self.protocol}", f"host={self.host}"]
        if self.path:
            lines.append(f"path={self.path}")
        if self.username:
            lines.append(f"username={self.username}")
        return ("\n".join(lines) + "\n\n").encode()


@dataclass(frozen=True, slots=True)
class Credential:
    request: Request
    username: str
    password: str

    def encode(self) -> bytes:
        base = Request(self.request.protocol, self.request.host, self.request.path, self.username)
        return base.encode()[:-1] + f"password={self.password}\n\n".encode()


@dataclass(slots=True)
class Helpers:
    """The helpers that apply to one URL, in git's order, with their settings."""

    commands: list[str] = field(default_factory=list)
    username: str | None = None
    use_http_path: bool = False


def parse_answer(data: bytes) -> dict[str, str]:
    """A helper's ``key=value`` lines, up to the first blank line; anything else is ignored."""
    out: dict[str, str] = {}
    for raw in data.decode("utf-8", "replace").splitlines():
        if not raw.strip():
            break
        key, sep, value = raw.partition("=")
        if sep and key and "\x00" not in value:
            out[key.strip()] = value
    return out


def _bool(value: str) -> bool:
    return value.strip().lower() in ("true", "yes", "on", "1")


def _host_port(scheme: str, netloc_host: str | None, port: int | None) -> tuple[str, int | None]:
    return (netloc_host or "").lower(), port or _DEFAULT_PORTS.get(scheme)


def url_matches(pattern: str, url: str) -> bool:
    """Whether a config key's URL (``credential.<pattern>.*``) applies to ``url``.

    git's urlmatch rules, simplified: the scheme must be equal, the host equal
    label by label (``*`` matches one label), the port equal (default ports
    filled in), the user equal if the pattern names one, and the pattern's
    path a prefix of the URL's path at a ``/`` boundary.
    """
    try:
        p, u = urlsplit(pattern), urlsplit(url)
        p_port, u_port = p.port, u.port
    except ValueError:
        return False
    if not p.scheme or p.scheme.lower() != u.scheme.lower():
        return False
    p_host, p_port = _host_port(p.scheme.lower(), p.hostname, p_port)
    u_host, u_port = _host_port(u.scheme.lower(), u.hostname, u_port)
    p_labels, u_labels = p_host.split("."), u_host.split(".")
    if len(p_labels) != len(u_labels) or any(a not in ("*", b) for a, b in zip(p_labels, u_labels, strict=True)):
        return False
    if p_port != u_port:
        return False
    if p.username and unquote(p.username) != unquote(u.username or ""):
        return False
    p_path = p.path.rstrip("/")
    return not p_path or u.path == p_path or u.path.startswith(p_path + "/")


def helpers_for(url: str, config: Iterable[tuple[str, str]]) -> Helpers:
    """The ``credential.*`` settings that apply to ``url``, given the config's
    entries in git's order (system, global, local; file order within each).

    An empty ``helper`` value clears the list built so far, as in git.
    """
    out = Helpers()
    for name, value in config:
        lowered = name.lower()
        if not lowered.startswith("credential."):
            continue
        middle, _, key = name[len("credential.") :].rpartition(".")
        if middle and not url_matches(middle, url):
            continue
        key = key.lower()
        if key == "helper":
            if value == "":
                out.commands.clear()
            else:
                out.commands.append(value)
        elif key == "username":
            out.username = value
        elif key == "usehttppath":
            out.use_http_path = _bool(value)
    return out


def request_for(url: str, helpers: Helpers, username: str | None) -> Request | None:
    """The request git would send for ``url``; None for a URL helpers do not serve,
    or one whose parts hold a newline or NUL: written into the helper's
    input, those would let a URL ask about another host (git's CVE-2020-5260)."""
    try:
        u = urlsplit(url)
        u.port  # noqa: B018 - a bad port is a bad URL
    except ValueError:
        return None
    if u.scheme.lower() not in ("http", "https") or not u.hostname:
        return None
    host = u.netloc.rpartition("@")[2]  # as written, like git: brackets, case and port kept
    path = unquote(u.path.lstrip("/")) if helpers.use_http_path else None
    user = username or (unquote(u.username) if u.username else None) or helpers.username
    request = Request(u.scheme.lower(), host, path or None, user)
    if any(ch in part for part in (host, path or "", user or "") for ch in "\n\r\0"):
        return None
    return request


def _exec_dirs(env: Mapping[str, str]) -> list[str]:
    dirs = [env["GIT_EXEC_PATH"]] if env.get("GIT_EXEC_PATH") else []
    return dirs + list(_EXEC_DIRS)


def helper_name(helper: str) -> str:
    """How a helper is named in messages: its program, never its arguments (a
    ``!command`` helper may hold a password inline)."""
    if helper.startswith("!"):
        return "a shell helper (!...)"  # its text may set a token inline
    return (helper.split(None, 1) or [""])[0]


def helper_command(helper: str, action: str, env: Mapping[str, str] | None = None) -> str | None:
    """The shell command git would run for one ``credential.helper`` value.

    ``!cmd`` runs ``cmd ACTION`` in the shell; an absolute path runs that
    program; a bare name runs ``git-credential-NAME``, found on PATH or in
    git's exec-path. None if that program does not exist (or the value is blank).
    """
    env = os.environ if env is None else env
    if not helper.strip():
        return None
    if helper.startswith("!"):
        return f"{helper[1:]} {action}"
    if os.path.isabs(os.path.expanduser(helper.split(None, 1)[0])):
        return f"{helper} {action}"
    name, _, rest = helper.strip().partition(" ")
    program = f"git-credential-{name}"
    found = shutil.which(program, path=env.get("PATH"))
    if found is None:
        for d in _exec_dirs(env):
            if os.access(Path(d) / program, os.X_OK):
                found = str(Path(d) / program)
                break
    if found is None:
        return None
    return f"{shlex.quote(found)}{' ' + rest if rest else ''} {action}"


class HelperFailed(Exception):
    """A helper could not be run, exited non-zero, or timed out."""


def run_helper(helper: str, action: str, payload: bytes, timeout: float) -> dict[str, str]:
    """Run one helper once; its answer (empty for ``store`` and ``erase``).

    Raises HelperFailed with a one-line reason.
    """
    cmd = helper_command(helper, action)
    name = helper_name(helper)
    if cmd is None:
        raise HelperFailed(f"credential helper {name!r}: program git-credential-{name} not found")
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    try:
        # Its own process group, so that a timeout kills whatever the shell started too.
        proc = subprocess.Popen(cmd, shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=env, start_new_session=True)  # fmt: skip
    except OSError as e:
        raise HelperFailed(f"credential helper {name!r} could not start: {e.strerror}") from None
    try:
        out, _ = proc.communicate(payload, timeout=timeout)
    except BaseException as e:  # a timeout, or Ctrl-C: its own session never sees our SIGINT
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        if isinstance(e, subprocess.TimeoutExpired):
            raise HelperFailed(f"credential helper {name!r} did not answer within {timeout:g} s") from None
        raise
    if proc.returncode != 0:
        # Its stderr is not kept: a helper may print what it knows there; run it by hand to see.
        raise HelperFailed(f"credential helper {name!r} exited with {proc.returncode} on {action!r}")
    return parse_answer(out) if action == "get" else {}


# Credentials a server accepted in this process, so that a long-lived process
# (the MCP server, an API user) asks its helpers once, not on every fetch and
# push. Keyed by the request and the helpers that answered it.
_ACCEPTED: dict[tuple[Request, tuple[str, ...]], Credential] = {}


@dataclass
class Session:
    """The helpers for one network operation: fill once, then approve or reject."""

    helpers: Helpers
    request: Request
    timeout: float
    problems: list[str] = field(default_factory=list)
    remembered: bool = False

    @property
    def _key(self) -> tuple[Request, tuple[str, ...]]:
        return self.request, tuple(self.helpers.commands)

    def fill(self) -> Credential | None:
        """The credential accepted earlier in this process, or else ask each
        helper in turn until one gives a username and a password (or says quit)."""
        remembered = _ACCEPTED.get(self._key)
        self.remembered = remembered is not None
        if remembered is not None:
            return remembered
        username = self.request.username
        password: str | None = None
        for helper in self.helpers.commands:
            req = Request(self.request.protocol, self.request.host, self.request.path, username)
            try:
                answer = run_helper(helper, "get", req.encode(), self.timeout)
            except HelperFailed as e:
                self.problems.append(str(e))
                continue
            username = answer.get("username") or username
            password = answer.get("password") or password
            if (username and password) or _bool(answer.get("quit", "")):
                break
        if username and password:
            return Credential(self.request, username, password)
        return None

    def tell(self, cred: Credential, action: str) -> None:
        """``store`` (the server accepted it) or ``erase`` (refused) to every helper; best effort.

        A remembered credential that is refused is only forgotten, never erased
        from the helpers: they may hold a newer one by now (git-credential-store
        erases by host and user, whatever the password), and the next fill asks them.
        """
        if action == "store":
            _ACCEPTED[self._key] = cred
            if self.remembered:
                return  # the helpers were told when it was first accepted
        else:
            _ACCEPTED.pop(self._key, None)
            if self.remembered:
                self.remembered = False
                return
        for helper in self.helpers.commands:
            try:
                run_helper(helper, action, cred.encode(), self.timeout)
            except HelperFailed as e:
                self.problems.append(str(e))


def http_setting(url: str, config: Iterable[tuple[str, str]], key: str) -> str | None:
    """``http.<url>.KEY`` for the most specific matching URL, else ``http.KEY`` (last one wins)."""
    key = key.lower()
    best: tuple[int, str] | None = None
    for name, value in config:
        lowered = name.lower()
        if not lowered.startswith("http.") or not lowered.endswith("." + key):
            continue
        middle = name[len("http.") : -len(key) - 1]
        if middle and not url_matches(middle, url):
            continue
        rank = len(middle)
        if best is None or rank >= best[0]:
            best = (rank, value)
    return None if best is None else best[1]
