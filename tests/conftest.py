"""Shared fixtures: real repositories, real remotes, a real git daemon.

No mocks of git anywhere. Every test runs with HOME pointed at a temporary
folder, so nothing can read or write the developer's own git config.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

GIT = shutil.which("git") or "git"


def git(*args: str, cwd: Path | str | None = None, check: bool = True) -> str:
    r = subprocess.run([GIT, *args], cwd=cwd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r.stdout


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "test")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "test@example.invalid")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "test")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "test@example.invalid")
    monkeypatch.delenv("GITCLAIM_AGENT", raising=False)
    monkeypatch.delenv("GITCLAIM_DEBUG", raising=False)
    for name in ("GITCLAIM_TOKEN", "GITCLAIM_CA_BUNDLE", "GITCLAIM_SSH_KEY", "SSH_AUTH_SOCK"):
        monkeypatch.delenv(name, raising=False)


@dataclass
class Remote:
    """A shared bare repository and the URL clones use to reach it."""

    path: Path
    url: str

    def ref(self, branch: str = "gitclaim") -> str | None:
        out = git("for-each-ref", "--format=%(objectname)", f"refs/heads/{branch}", cwd=self.path).strip()
        return out or None


def assert_store_sound(remote: Remote, checker: object) -> None:
    """The shared repository passes ``git fsck`` and its whole store history
    passes the validator (``checker``: any Store on a clone of ``remote``)."""
    from datetime import UTC, datetime

    from gitclaim import Store
    from gitclaim.enforce import check_push

    assert isinstance(checker, Store)
    git("fsck", "--no-progress", "--no-dangling", cwd=remote.path)
    tip = checker.transport.fetch()
    assert tip is not None
    bad = check_push(checker.repo, None, tip, branch="gitclaim", now=datetime.now(UTC), seen={})
    assert bad == [], bad


def make_bare(path: Path) -> Path:
    git("init", "-q", "--bare", str(path))
    return path


@pytest.fixture
def path_remote(tmp_path: Path) -> Remote:
    return make_remote_path(tmp_path)


class GitDaemon:
    def __init__(self, base: Path, port: int | None = None) -> None:
        """Start serving ``base`` (on ``port``, e.g. to bring a stopped server back)."""
        base.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.port = port or _free_port()
        self.proc = subprocess.Popen(
            [
                GIT, "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={self.port}",
                f"--base-path={base}", "--export-all", "--enable=receive-pack", "--informative-errors",
                str(base),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("git daemon exited at start") from None
                time.sleep(0.02)
        raise RuntimeError("git daemon did not start listening")

    def remote(self, name: str) -> Remote:
        bare = make_bare(self.base / f"{name}.git")
        return Remote(bare, f"git://127.0.0.1:{self.port}/{name}.git")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def git_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitDaemon]:
    d = GitDaemon(tmp_path_factory.mktemp("daemon"))
    yield d
    d.stop()


@pytest.fixture
def daemon_remote(git_daemon: GitDaemon, tmp_path: Path) -> Remote:
    return git_daemon.remote(repo_name(tmp_path))


@pytest.fixture(params=["path", "daemon"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Remote:
    """The same test over a local-path remote and over git daemon on loopback."""
    if request.param == "path":
        return make_remote_path(tmp_path)
    daemon: GitDaemon = request.getfixturevalue("git_daemon")
    return daemon.remote(repo_name(tmp_path))


def repo_name(tmp_path: Path, prefix: str = "r") -> str:
    """A name for a test's repository on a shared server, unique per test."""
    return f"{prefix}{abs(hash(str(tmp_path))) % 10**12}"


def make_remote_path(tmp_path: Path) -> Remote:
    bare = make_bare(tmp_path / "remote.git")
    return Remote(bare, str(bare))


def clone(remote: Remote, dest: Path) -> Path:
    """A clone acting as one agent's machine. The shared repo may still be empty."""
    dest.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=dest)
    git("remote", "add", "origin", remote.url, cwd=dest)
    return dest


@pytest.fixture
def make_clone(tmp_path: Path) -> Callable[[Remote, str], Path]:
    def make(remote: Remote, name: str) -> Path:
        return clone(remote, tmp_path / "clones" / name)

    return make


@pytest.fixture
def store_factory(make_clone: Callable[[Remote, str], Path]) -> Callable[..., object]:
    """Store objects on separate clones of one remote: store_factory(remote, "agent-1")."""
    from gitclaim import Store

    def make(remote: Remote, agent: str, **kw: object) -> Store:
        path = make_clone(remote, agent)
        return Store(path, agent=agent, **kw)  # type: ignore[arg-type]

    return make


@pytest.fixture
def initialized(remote: Remote, store_factory: Callable[..., object]) -> tuple[Remote, object]:
    """A remote with an initialised store, and the store of the agent that made it."""
    s = store_factory(remote, "admin")
    s.init()  # type: ignore[attr-defined]
    return remote, s


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m gitclaim`` as its own process, as an agent would."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "gitclaim", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


# --- ssh: a real sshd on loopback with a git-shell user ------------------------

SSH_USER = "gitclaim"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


class GitSshd:
    """sshd on 127.0.0.1 with its own config, host key and one authorised client key.

    The repositories live under a folder in /tmp that the git-shell user owns
    (pytest's own temporary folders are private to root).
    """

    def __init__(self, root: Path) -> None:
        import pwd
        import tempfile

        if os.geteuid() != 0 or not os.path.exists(SSHD) or not shutil.which("git-shell"):
            # No test passes by skipping: .ci/run installs these; say what is missing.
            pytest.fail("the ssh tests need root, openssh-server and git-shell (installed by .ci/run)")
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
        self.host_key = root / "ssh_host_ed25519_key"
        _keygen(self.host_key)
        self.client_key = root / "client_ed25519"
        _keygen(self.client_key)
        self.other_key = root / "other_ed25519"  # never authorised
        _keygen(self.other_key)
        auth = self.shared / "authorized_keys"
        auth.write_text(Path(f"{self.client_key}.pub").read_text())
        auth.chmod(0o644)
        self.port = _free_port()
        config = root / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"PidFile {root / 'sshd.pid'}\nAuthorizedKeysFile {auth}\nStrictModes no\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            f"AllowUsers {SSH_USER}\nUsePAM no\nMaxStartups 100:30:200\nMaxSessions 100\nLogLevel ERROR\n"
        )
        self.log = root / "sshd.log"
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                                     stderr=self.log.open("w"))  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"sshd exited at start: {self.log.read_text()}") from None
                time.sleep(0.02)
        else:
            raise RuntimeError("sshd did not start listening")
        pub = Path(f"{self.host_key}.pub").read_text().split()
        self.known_hosts_line = f"[127.0.0.1]:{self.port} {pub[0]} {pub[1]}\n"

    def remote(self, name: str) -> Remote:
        bare = make_bare(self.repos / f"{name}.git")
        for d, _, files in os.walk(bare):
            os.chown(d, self.uid, self.gid)
            for f in files:
                os.chown(os.path.join(d, f), self.uid, self.gid)
        return Remote(bare, f"ssh://{SSH_USER}@127.0.0.1:{self.port}{bare}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.shared, ignore_errors=True)


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "gitclaim-test", "-f", str(path)],
                   check=True, capture_output=True)  # fmt: skip


@pytest.fixture(scope="session")
def git_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitSshd]:
    d = GitSshd(tmp_path_factory.mktemp("sshd"))
    yield d
    d.stop()


@pytest.fixture
def ssh_client(git_sshd: GitSshd, monkeypatch: pytest.MonkeyPatch) -> Iterator[GitSshd]:
    """This test's HOME trusts the server's host key and logs in with the authorised key.

    libgit2 reads ~/.ssh/known_hosts of the home folder it cached when it was
    loaded, so point it at this test's HOME too (and back afterwards).
    """
    import pygit2
    from pygit2.enums import Option

    home = Path(os.environ["HOME"])
    (home / ".ssh").mkdir(mode=0o700, exist_ok=True)
    (home / ".ssh" / "known_hosts").write_text(git_sshd.known_hosts_line)
    monkeypatch.setenv("GITCLAIM_SSH_KEY", str(git_sshd.client_key))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    # The bare repositories belong to the git-shell user; let this process's git read them.
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "safe.directory")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "*")
    old = pygit2.option(Option.GET_HOMEDIR)
    pygit2.option(Option.SET_HOMEDIR, str(home))
    try:
        yield git_sshd
    finally:
        pygit2.option(Option.SET_HOMEDIR, old)


@pytest.fixture
def ssh_remote(ssh_client: GitSshd, tmp_path: Path) -> Remote:
    return ssh_client.remote(repo_name(tmp_path))


# --- smart HTTP: nginx + fcgiwrap + git http-backend on loopback -------------

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
FCGIWRAP = shutil.which("fcgiwrap") or "/usr/sbin/fcgiwrap"


HTTPS_USERS = {"agent": "agent-secret", "x-access-token": "the-token"}


def make_tls_certs(root: Path) -> tuple[Path, Path, Path]:
    """A private CA and a certificate it signed for 127.0.0.1: (ca.pem, server.pem, server.key)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the https tests need openssl (installed by .ci/run)")
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


class GitHttp:
    """nginx on 127.0.0.1 in front of fcgiwrap running ``git http-backend``.

    With ``tls``: https only, with a certificate from a private CA
    (``self.ca``) and basic auth for HTTPS_USERS, whose names reach
    http-backend as REMOTE_USER.
    """

    def __init__(self, root: Path, *, tls: bool = False) -> None:
        if not (os.path.exists(NGINX) and os.path.exists(FCGIWRAP) and os.path.exists("/etc/nginx/fastcgi_params")):
            pytest.fail("the smart-HTTP tests need nginx and fcgiwrap (installed by .ci/run)")
        self.base = root / "repos"
        self.base.mkdir()
        self.port = _free_port()
        sock = root / "fcgiwrap.sock"
        backend = Path(subprocess.run([GIT, "--exec-path"], capture_output=True, text=True).stdout.strip())
        # Its own process group: fcgiwrap -c forks workers that outlive a plain terminate.
        self.fcgi = subprocess.Popen([FCGIWRAP, "-c", "4", "-s", f"unix:{sock}"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        user = "user root root;\n" if os.geteuid() == 0 else ""
        self.scheme = "https" if tls else "http"
        listen, auth = f"listen 127.0.0.1:{self.port};\n", ""
        if tls:
            self.ca, cert, key = make_tls_certs(root)
            users = root / "users"
            users.write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in HTTPS_USERS.items()))
            listen = f"listen 127.0.0.1:{self.port} ssl;\n    ssl_certificate {cert};\n    ssl_certificate_key {key};\n"
            auth = (f'      auth_basic "gitclaim";\n      auth_basic_user_file {users};\n'
                    "      fastcgi_param REMOTE_USER $remote_user;\n")  # fmt: skip
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
        self.proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(root), "-e", str(root / "error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    if sock.exists():
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or self.fcgi.poll() is not None:
                self.stop()
                raise RuntimeError(f"nginx or fcgiwrap exited at start: {(root / 'error.log').read_text()}")
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("nginx did not start listening")

    def remote(self, name: str) -> Remote:
        bare = make_bare(self.base / f"{name}.git")
        git("config", "http.receivepack", "true", cwd=bare)
        return Remote(bare, f"{self.scheme}://127.0.0.1:{self.port}/{name}.git")

    def stop(self) -> None:
        import signal

        self.proc.terminate()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.fcgi.pid, signal.SIGTERM)
        for p in (self.proc, self.fcgi):
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture(scope="session")
def git_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHttp]:
    d = GitHttp(tmp_path_factory.mktemp("http"))
    yield d
    d.stop()


@pytest.fixture
def http_remote(git_http: GitHttp, tmp_path: Path) -> Remote:
    return git_http.remote(repo_name(tmp_path))


@pytest.fixture(scope="session")
def git_https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHttp]:
    d = GitHttp(tmp_path_factory.mktemp("https"), tls=True)
    yield d
    d.stop()


@pytest.fixture
def https_remote(git_https: GitHttp, tmp_path: Path) -> Remote:
    return git_https.remote(repo_name(tmp_path))
