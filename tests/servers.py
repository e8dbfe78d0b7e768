"""Real git servers on loopback, for the tests and the benchmarks alike.

``GitDaemon`` (git://), ``GitHttp`` (smart HTTP: nginx + fcgiwrap + ``git
http-backend``; ``tls=True`` for https with a private CA and basic auth) and
``GitSshd`` (sshd with a git-shell user), and the few helpers they need: a
free port, ``git()``, ``make_bare``, ``clone``, TLS certificates.

Plain classes, no pytest: each server starts in its constructor and stops
with ``stop()``, or at the end of a ``with`` block. Every process a server
starts runs in its own process group and is stopped by group, so the forks
(git daemon's per-connection children, fcgiwrap's workers) go with it. A
server whose tools are not installed raises ``MissingTool``, whose message
says what is missing; ``bash scripts/test`` installs them all.

tests/conftest.py wraps these in fixtures; benchmarks/bench_common.py puts
the repository root on sys.path and imports this module as ``tests.servers``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

GIT = shutil.which("git") or "git"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
FCGIWRAP = shutil.which("fcgiwrap") or "/usr/sbin/fcgiwrap"
SSH_USER = "gitclaim"  # the git-shell login GitSshd creates if it does not exist
HTTPS_USERS = {"agent": "agent-secret", "x-access-token": "the-token"}  # GitHttp(tls=True)'s basic-auth users


class MissingTool(RuntimeError):
    """A server's programs are not installed (or it needs root); the message names them."""


# --- helpers ---------------------------------------------------------------------


def git(*args: str, cwd: Path | str | None = None, check: bool = True, timeout: float | None = 600) -> str:
    """Run the git CLI; its stdout. A failure raises AssertionError with git's stderr."""
    r = subprocess.run([GIT, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        said = "\n".join(x for x in (r.stderr.strip(), r.stdout.strip()) if x)  # fsck reports on stdout
        raise AssertionError(f"git {' '.join(args)} failed ({r.returncode}): {said}")
    return r.stdout


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Remote:
    """A shared bare repository and the URL clones use to reach it."""

    path: Path
    url: str

    def ref(self, branch: str = "gitclaim") -> str | None:
        out = git("for-each-ref", "--format=%(objectname)", f"refs/heads/{branch}", cwd=self.path).strip()
        return out or None


def make_bare(path: Path) -> Path:
    git("init", "-q", "--bare", str(path))
    return path


def make_remote_path(root: Path) -> Remote:
    """A bare repository reached by its path (no server at all)."""
    bare = make_bare(root / "remote.git")
    return Remote(bare, str(bare))


def copy_remote(source: Path, dest: Path, daemon: GitDaemon | None = None) -> Remote:
    """A copy of the bare repository ``source``: served by ``daemon`` (under its
    base, a fresh name; ``dest`` unused), or reached by the path ``dest``."""
    if daemon is not None:
        name = f"c{uuid.uuid4().hex[:12]}.git"
        shutil.copytree(source, daemon.base / name, symlinks=True)
        return Remote(daemon.base / name, daemon.url(name))
    shutil.copytree(source, dest, symlinks=True)
    return Remote(dest, str(dest))


def clone(remote: Remote | str, dest: Path) -> Path:
    """A clone acting as one agent's machine (``git init`` + ``remote add``); the remote may still be empty."""
    dest.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=dest)
    git("remote", "add", "origin", remote.url if isinstance(remote, Remote) else remote, cwd=dest)
    return dest


def stop_group(p: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """Stop a child started with ``start_new_session=True`` and everything in its process group:
    SIGTERM, then SIGKILL after ``grace`` seconds. Also kills the group of a leader already gone."""

    def signal_group(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, sig)  # start_new_session: the group id is the child's pid

    if p.poll() is not None:
        signal_group(signal.SIGKILL)  # the leader is gone; its children may not be
        return
    signal_group(signal.SIGTERM)
    try:
        p.wait(grace)
    except subprocess.TimeoutExpired:
        signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(grace)


def make_tls_certs(root: Path) -> tuple[Path, Path, Path]:
    """A private CA and a certificate it signed for 127.0.0.1: (ca.pem, server.pem, server.key)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise MissingTool("https needs openssl (bash scripts/test installs it)")
    ca, ca_key, cert, key, csr = (root / n for n in ("ca.pem", "ca.key", "server.pem", "server.key", "server.csr"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for args in (
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=gitclaim test CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
    ):  # fmt: skip
        subprocess.run([openssl, *map(str, args)], check=True, capture_output=True)
    ext = root / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    subprocess.run([openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
                    "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext)],
                   check=True, capture_output=True)  # fmt: skip
    return ca, cert, key


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "gitclaim-test", "-f", str(path)],
                   check=True, capture_output=True)  # fmt: skip


# --- servers ---------------------------------------------------------------------


class Server:
    """What every server shares: its processes (each in its own group), the wait
    for its port, ``stop()`` and the ``with`` block. Subclasses start in ``__init__``."""

    port: int

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[Any]] = []

    def _spawn(self, args: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        p = subprocess.Popen(list(args), start_new_session=True, **kw)
        self._procs.append(p)  # before anything can raise: stop() will find it
        return p

    def _await_port(self, what: str, *, ready: Callable[[], bool] = lambda: True, log: Path | None = None) -> None:
        """Wait (10 s at most) until the port takes connections and ``ready()``; else stop and raise."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    if ready():
                        return
            except OSError:
                pass
            if any(p.poll() is not None for p in self._procs):
                detail = f": {log.read_text()}" if log is not None and log.exists() else ""
                self.stop()
                raise RuntimeError(f"{what} exited at start{detail}")
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{what} did not start listening within 10 s")

    def stop(self) -> None:
        """Stop every process, the last started first; stopping twice is harmless."""
        while self._procs:
            stop_group(self._procs.pop())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _start_sshd(self, root: Path, authorized_keys: Path, user: str, log_level: str = "ERROR") -> None:
        """sshd on a free port of 127.0.0.1 with a host key of its own, letting ``user``
        in by the keys in ``authorized_keys``; sets ``host_key``, ``port``, ``log`` and
        ``known_hosts_line``."""
        self.host_key = root / "ssh_host_ed25519_key"
        _keygen(self.host_key)
        self.port = free_port()
        config = root / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"PidFile {root / 'sshd.pid'}\nAuthorizedKeysFile {authorized_keys}\nStrictModes no\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            f"AllowUsers {user}\nUsePAM no\nMaxStartups 100:30:200\nMaxSessions 100\nLogLevel {log_level}\n"
        )
        self.log = root / "sshd.log"
        with self.log.open("w") as log:
            self._spawn([SSHD, "-D", "-e", "-f", str(config)], stderr=log)
        self._await_port("sshd", log=self.log)
        pub = Path(f"{self.host_key}.pub").read_text().split()
        self.known_hosts_line = f"[127.0.0.1]:{self.port} {pub[0]} {pub[1]}\n"


class GitDaemon(Server):
    """``git daemon`` on 127.0.0.1 serving (and taking pushes to) every repository under ``base``."""

    def __init__(self, base: Path, port: int | None = None) -> None:
        """Start serving ``base`` (on ``port``, e.g. to bring a stopped server back)."""
        super().__init__()
        base.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.port = port or free_port()
        self._spawn([
            GIT, "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={self.port}",
            f"--base-path={base}", "--export-all", "--enable=receive-pack", "--informative-errors",
            str(base),
        ])  # fmt: skip
        self._await_port("git daemon")

    def url(self, name: str) -> str:
        """The URL of ``base/name`` (a folder name, ``.git`` included)."""
        return f"git://127.0.0.1:{self.port}/{name}"

    def remote(self, name: str) -> Remote:
        """A new empty bare repository ``base/name.git``."""
        bare = make_bare(self.base / f"{name}.git")
        return Remote(bare, self.url(bare.name))


class GitSshd(Server):
    """sshd on 127.0.0.1 with its own config, host key and one authorised client key
    (``client_key``; ``other_key`` is never authorised), logging in as the git-shell
    user SSH_USER. Needs root: it creates that user if it does not exist.

    The repositories live under a folder in /tmp that the git-shell user owns
    (pytest's own temporary folders are private to root); ``stop()`` removes it.
    """

    def __init__(self, root: Path, log_level: str = "ERROR") -> None:
        """``log_level`` INFO logs each login (``Accepted publickey``) in ``self.log``."""
        import pwd

        super().__init__()
        if os.geteuid() != 0 or not os.path.exists(SSHD) or not shutil.which("git-shell"):
            raise MissingTool(
                "the ssh server needs root, openssh-server and git-shell (bash scripts/test installs them, as root)"
            )
        try:
            pw = pwd.getpwnam(SSH_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--create-home", "--shell", shutil.which("git-shell") or "/usr/bin/git-shell", SSH_USER],
                check=True, capture_output=True,
            )  # fmt: skip
            pw = pwd.getpwnam(SSH_USER)
        subprocess.run(["usermod", "-p", "*", SSH_USER], check=True, capture_output=True)  # unlock for key login
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.dir = root
        # Readable by the git-shell user: sshd reads authorized_keys with its privileges.
        self.shared = Path(tempfile.mkdtemp(prefix="gitclaim-sshd-", dir="/tmp"))
        self.shared.chmod(0o755)
        self.repos = self.shared / "repos"
        self.repos.mkdir()
        os.chown(self.repos, self.uid, self.gid)
        self.client_key = root / "client_ed25519"
        _keygen(self.client_key)
        self.other_key = root / "other_ed25519"  # never authorised
        _keygen(self.other_key)
        auth = self.shared / "authorized_keys"
        auth.write_text(Path(f"{self.client_key}.pub").read_text())
        auth.chmod(0o644)
        self._start_sshd(root, auth, SSH_USER, log_level)

    def remote(self, name: str) -> Remote:
        """A new empty bare repository owned by the git-shell user."""
        bare = make_bare(self.repos / f"{name}.git")
        for d, _, files in os.walk(bare):
            os.chown(d, self.uid, self.gid)
            for f in files:
                os.chown(os.path.join(d, f), self.uid, self.gid)
        return Remote(bare, f"ssh://{SSH_USER}@127.0.0.1:{self.port}{bare}")

    def stop(self) -> None:
        super().stop()
        if hasattr(self, "shared"):
            shutil.rmtree(self.shared, ignore_errors=True)


class GitHttp(Server):
    """nginx on 127.0.0.1 in front of fcgiwrap running ``git http-backend``.

    With ``tls``: https only, with a certificate from a private CA
    (``self.ca``) and basic auth for HTTPS_USERS, whose names reach
    http-backend as REMOTE_USER.
    """

    def __init__(self, root: Path, *, tls: bool = False) -> None:
        super().__init__()
        if not (os.path.exists(NGINX) and os.path.exists(FCGIWRAP) and os.path.exists("/etc/nginx/fastcgi_params")):
            raise MissingTool("smart HTTP needs nginx and fcgiwrap (bash scripts/test installs them)")
        self.base = root / "repos"
        self.base.mkdir()
        self.port = free_port()
        self.scheme = "https" if tls else "http"
        listen, auth = f"listen 127.0.0.1:{self.port};\n", ""
        if tls:
            self.ca, cert, key = make_tls_certs(root)
            users = root / "users"
            users.write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in HTTPS_USERS.items()))
            listen = f"listen 127.0.0.1:{self.port} ssl;\n    ssl_certificate {cert};\n    ssl_certificate_key {key};\n"
            auth = (f'      auth_basic "gitclaim";\n      auth_basic_user_file {users};\n'
                    "      fastcgi_param REMOTE_USER $remote_user;\n")  # fmt: skip
        sock = root / "fcgiwrap.sock"
        backend = Path(git("--exec-path").strip())
        user = "user root root;\n" if os.geteuid() == 0 else ""
        conf = root / "nginx.conf"
        conf.write_text(
            f"daemon off;\nworker_processes 2;\npid {root / 'nginx.pid'};\nerror_log {root / 'error.log'};\n{user}"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"  access_log off;\n  client_body_temp_path {root / 'body'};\n  fastcgi_temp_path {root / 'fcgi'};\n"
            f"  proxy_temp_path {root / 'proxy'};\n  uwsgi_temp_path {root / 'uwsgi'};\n"
            f"  scgi_temp_path {root / 'scgi'};\n"
            f"  server {{\n    {listen}    client_max_body_size 0;\n"
            f"    location / {{\n      include /etc/nginx/fastcgi_params;\n{auth}"
            f"      fastcgi_param SCRIPT_FILENAME {backend / 'git-http-backend'};\n"
            f"      fastcgi_param GIT_PROJECT_ROOT {self.base};\n      fastcgi_param GIT_HTTP_EXPORT_ALL 1;\n"
            "      fastcgi_param PATH_INFO $uri;\n      fastcgi_buffering off;\n"
            f"      fastcgi_pass unix:{sock};\n    }}\n  }}\n}}\n"
        )
        self._spawn([FCGIWRAP, "-c", "4", "-s", f"unix:{sock}"])  # -c 4: workers, stopped with its group
        self._spawn([NGINX, "-c", str(conf), "-p", str(root), "-e", str(root / "error.log")])
        self._await_port("nginx or fcgiwrap", ready=sock.exists, log=root / "error.log")

    def remote(self, name: str) -> Remote:
        """A new empty bare repository that takes pushes over http(s)."""
        bare = make_bare(self.base / f"{name}.git")
        git("config", "http.receivepack", "true", cwd=bare)
        return Remote(bare, f"{self.scheme}://127.0.0.1:{self.port}/{name}.git")


# One hosting user per test process: two test runs at once (two worktrees on one
# machine) would otherwise move one user's home under each other's gitolite.
GITOLITE_USER = f"gitclaim-gl{os.getpid()}"


class Gitolite(Server):
    """gitolite3 (Debian's package) behind its own sshd on 127.0.0.1: one hosting user,
    an admin key, and a key per agent. ``allow(repo, rules)`` writes a repository's
    rules (``{"agent-a": "RW+", "agent-b": "R"}``) and compiles them. Needs root.

    What an admin does by hand: ``add_rc`` edits ``~/.gitolite.rc``, ``add_conf``
    adds lines to gitolite.conf, ``compile`` is what each push of gitolite-admin
    runs, and ``run_as`` runs a command as the hosting user (``hosting_python``:
    a Python that user can run, with this checkout of gitclaim on its path)."""

    def __init__(self, root: Path, agents: tuple[str, ...] = ("agent-a", "agent-b")) -> None:
        import pwd

        super().__init__()
        gitolite = shutil.which("gitolite") or "/usr/bin/gitolite"
        if os.geteuid() != 0 or not os.path.exists(SSHD) or not os.path.exists(gitolite):
            raise MissingTool("gitolite needs root, openssh-server and gitolite3 (bash scripts/test installs them)")
        self.home = Path(tempfile.mkdtemp(prefix="gitclaim-gitolite-", dir="/tmp"))
        self.home.chmod(0o755)
        try:
            pw = pwd.getpwnam(GITOLITE_USER)
        except KeyError:
            subprocess.run(["useradd", "--shell", "/bin/sh", GITOLITE_USER], check=True, capture_output=True)
            pw = pwd.getpwnam(GITOLITE_USER)
        subprocess.run(["usermod", "-p", "*", "-d", str(self.home), GITOLITE_USER], check=True, capture_output=True)
        os.chown(self.home, pw.pw_uid, pw.pw_gid)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.dir = root
        self.keys: dict[str, Path] = {}
        for name in ("admin", *agents):
            key = root / f"{name}_ed25519"
            _keygen(key)
            self.keys[name] = key
        admin_pub = self.home / "admin.pub"
        shutil.copy(f"{self.keys['admin']}.pub", admin_pub)
        os.chown(admin_pub, self.uid, self.gid)
        self.run_as(gitolite, "setup", "-pk", str(admin_pub), check=True)
        keydir = self.home / ".gitolite" / "keydir"
        for name in agents:
            shutil.copy(f"{self.keys[name]}.pub", keydir / f"{name}.pub")
        self.rules: dict[str, dict[str, str]] = {}
        self.conf: list[str] = []  # lines after the rules of allow(), in order
        self._python: Path | None = None
        self.compile()
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self._start_sshd(root, self.home / ".ssh" / "authorized_keys", GITOLITE_USER)

    def run_as(self, *args: str, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a command as the hosting user, in its home, with a bare environment (as sshd gives it).

        Through ``sh``: setpriv itself can start a program that the user could not
        (it ran /root/.pyenv's python, which the user cannot reach); the shell's exec cannot."""
        env = {"HOME": str(self.home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "USER": GITOLITE_USER}
        user = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups"]
        r = subprocess.run(
            [*user, "/bin/sh", "-c", 'exec "$0" "$@"', *args],
            capture_output=True, text=True, env=env, cwd=self.home, timeout=timeout,
        )  # fmt: skip
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(args)} as {GITOLITE_USER} failed ({r.returncode}): {r.stderr}{r.stdout}")
        return r

    def compile(self) -> None:
        """Write gitolite.conf and compile it, as each push of gitolite-admin does."""
        conf = ["repo gitolite-admin", "    RW+ = admin", ""]
        for repo, rules in self.rules.items():
            conf.append(f"repo {repo}")
            conf += [f"    {perm} = {who}" for who, perm in rules.items()]
            conf.append("")
        path = self.home / ".gitolite" / "conf" / "gitolite.conf"
        path.write_text("\n".join([*conf, *self.conf]) + "\n")
        for d, _, files in os.walk(self.home / ".gitolite"):
            os.chown(d, self.uid, self.gid)
            for f in files:
                os.chown(os.path.join(d, f), self.uid, self.gid)
        self.run_as("gitolite", "compile", check=True)
        self.run_as("gitolite", "trigger", "POST_COMPILE", check=True)

    def allow(self, repo: str, rules: dict[str, str]) -> Remote:
        """Create (or re-rule) ``repo``: a Remote whose URL is reached as the hosting user."""
        self.rules[repo] = rules
        self.compile()
        bare = self.home / "repositories" / f"{repo}.git"
        return Remote(bare, f"ssh://{GITOLITE_USER}@127.0.0.1:{self.port}/{repo}")

    def add_conf(self, lines: Sequence[str]) -> None:
        """Add lines at the end of gitolite.conf (after every repository's rules) and compile."""
        self.conf += [*lines, ""]
        self.compile()

    def add_rc(self, settings: Sequence[str] = (), enable: Sequence[str] = ()) -> None:
        """Edit ``~/.gitolite.rc`` as its comments say: ``settings`` inside ``%RC = (``,
        ``enable`` at the top of its ENABLE list. Takes effect with the next gitolite command."""
        rc = self.home / ".gitolite.rc"
        text = rc.read_text()
        for anchor, lines in (("%RC = (\n", settings), ("    ENABLE => [\n", enable)):
            if lines:
                assert anchor in text, f"no {anchor.strip()!r} in {rc}"
                text = text.replace(anchor, anchor + "".join(f"        {line}\n" for line in lines), 1)
        rc.write_text(text)  # in place: it stays the hosting user's

    def hosting_python(self) -> Path:
        """A Python the hosting user can run that imports this checkout of gitclaim and
        the test interpreter's packages: the interpreter running the tests may live where
        that user cannot read (pyenv under /root). A venv (no pip) on the first Python
        of the same version that the user can run, with a .pth naming both, or with a copy of
        both where the checkout is out of that user's reach."""
        if self._python is None:
            import site
            import sys

            version = f"python{sys.version_info.major}.{sys.version_info.minor}"
            candidates = [os.path.realpath(sys.executable), f"/usr/bin/{version}", f"/usr/local/bin/{version}"]
            base = next((c for c in candidates if self.run_as(c, "-c", "pass").returncode == 0), None)
            if base is None:
                raise MissingTool(f"the gitolite hook tests need a {version} the user {GITOLITE_USER} can run")
            venv = self.home / "gitclaim-venv"
            subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
            (site_packages,) = (venv / "lib").glob("python*/site-packages")
            root = Path(__file__).resolve().parents[1]
            pth = site_packages / "gitclaim-tests.pth"
            pth.write_text("\n".join([str(root), *site.getsitepackages()]) + "\n")
            python = venv / "bin" / "python"
            if self.run_as(str(python), "-c", "import gitclaim.hook, pygit2").returncode != 0:
                # The checkout (and its .venv) lies where that user cannot read, under a folder
                # of mode 0700 (a home, mktemp -d): the venv gets a copy of both instead.
                pth.unlink()
                skip = shutil.ignore_patterns("__editable__*", "__pycache__", "*.pth")
                for packages in site.getsitepackages():
                    shutil.copytree(packages, site_packages, ignore=skip, dirs_exist_ok=True)
                shutil.copytree(root / "gitclaim", site_packages / "gitclaim", ignore=skip, dirs_exist_ok=True)
            self.run_as(str(python), "-c", "import gitclaim.hook, pygit2", check=True)
            self._python = python
        return self._python

    def stop(self) -> None:
        super().stop()
        if hasattr(self, "home"):
            shutil.rmtree(self.home, ignore_errors=True)
            subprocess.run(["userdel", GITOLITE_USER], capture_output=True)  # this run's own user
