"""A connection cut during a push, by a loopback TCP proxy in front of git daemon.

Two cuts: in the middle of the pack (the remote must not change and must stay
valid), and after the pack but before the server's report (the remote may
have moved: gitclaim must ask, not guess). Either way, running the same
command again converges.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitclaim import Store
from gitclaim.errors import RemoteUnreachable

from .conftest import assert_store_sound, repo_name, run_cli
from .servers import GitDaemon, Remote, clone, git
from .test_race import claims_in_history

pytestmark = pytest.mark.slow


class CuttingProxy:
    """Forwards 127.0.0.1:port to the daemon; cuts the next receive-pack connection.

    ``cut`` is "mid_pack" (drop after a few bytes of the client's commands and
    pack), "before_report" (let the whole push through, then drop the
    server's report of the result), or "mid_fetch" (drop a fetch's
    upload-pack connection part way through the server's answer), or
    "stall_report" (like before_report, but the line stays open and silent).
    One cut, then it only forwards.
    """

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.cut: str | None = None
        self.cuts = 0
        self.released = threading.Event()
        self.stalled = threading.Event()  # stall_report: the server's report arrived and is held back
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        server = socket.create_connection(("127.0.0.1", self.target))
        first = b""  # git daemon's request, one pkt-line: "0032git-receive-pack /x.git\0host=...\0"
        while len(first) < 4 or len(first) < int(first[:4], 16):
            more = client.recv(65536)
            if not more:
                break
            first += more
        service = b"git-upload-pack" if self.cut == "mid_fetch" else b"git-receive-pack"
        mode = self.cut if service in first else None
        if mode is not None:
            self.cut, self.cuts = None, self.cuts + 1
        server.sendall(first)
        sent_after_request = [0]

        def cut() -> None:  # wakes both directions; the client sees the connection drop
            for sock in (client, server):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        def up() -> None:  # client -> server
            try:
                while data := client.recv(65536):
                    if mode == "mid_pack" and sent_after_request[0] + len(data) > 60:
                        server.sendall(data[:20])
                        break
                    sent_after_request[0] += len(data)
                    server.sendall(data)
            except OSError:
                pass
            cut()

        def down() -> None:  # server -> client
            received = 0
            try:
                while data := server.recv(65536):
                    received += len(data)
                    if mode == "mid_fetch" and received > 200:
                        client.sendall(data[:50])
                        break
                    if mode in ("before_report", "stall_report") and sent_after_request[0] > 0 and b"unpack" in data:
                        if mode == "stall_report":
                            self.stalled.set()
                            self.released.wait(60)  # the line goes silent: the client must time out
                        break  # receive-pack has updated the ref; its report never arrives
                    client.sendall(data)
            except OSError:
                pass
            cut()

        t = threading.Thread(target=up, daemon=True)
        t.start()
        down()
        t.join(5)
        client.close()
        server.close()

    def close(self) -> None:
        self.released.set()
        # Wake the blocked accept before closing: closing alone lets the thread
        # call accept() again on a reused descriptor number, another test's listener.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.acceptor.join(5)
        self.listener.close()


@pytest.fixture(params=["libgit2", "git"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each fault through libgit2 and through the system's git (GITCLAIM_TRANSPORT, which CLI runs inherit)."""
    monkeypatch.setenv("GITCLAIM_TRANSPORT", request.param)
    return str(request.param)


@pytest.fixture
def proxied(git_daemon: GitDaemon, tmp_path: Path, transport: str) -> tuple[Remote, CuttingProxy]:
    r = git_daemon.remote(repo_name(tmp_path, "f"))
    proxy = CuttingProxy(git_daemon.port)
    yield Remote(r.path, r.url.replace(f":{git_daemon.port}/", f":{proxy.port}/")), proxy  # type: ignore[misc]
    proxy.close()


@pytest.mark.parametrize("cut", ["mid_pack", "before_report"])
def test_a_push_cut_by_the_network_leaves_a_valid_remote_and_a_rerun_converges(
    proxied: tuple[Remote, CuttingProxy], tmp_path: Path, cut: str
) -> None:
    remote, proxy = proxied
    admin = Store(clone(remote, tmp_path / "admin"), agent="admin")
    admin.init()
    admin.add("fragile", task_id="t1")
    before = remote.ref()
    worker = Store(clone(remote, tmp_path / "worker"), agent="worker")
    worker.list()  # warm
    proxy.cut = cut
    try:
        worker.claim("t1")
        outcome = "ok"
    except RemoteUnreachable as e:
        outcome = "unreachable"
        assert "run the same command again" in e.message
    assert proxy.cuts == 1
    git("fsck", "--no-progress", "--no-dangling", cwd=remote.path)
    if cut == "mid_pack":
        assert outcome == "unreachable"
        assert remote.ref() == before
    # The same command again: claims the task, or recognises its own claim.
    assert worker.claim("t1").task.holder == "worker"
    assert admin.show("t1").task.holder == "worker"
    git("fsck", "--no-progress", "--no-dangling", cwd=remote.path)
    assert [(t, a) for _, t, a in claims_in_history(remote)] == [("t1", "worker")]  # exactly one claim
    assert_store_sound(remote, admin)


def test_a_fetch_cut_by_the_network_changes_nothing_and_a_rerun_works(
    proxied: tuple[Remote, CuttingProxy], tmp_path: Path
) -> None:
    remote, proxy = proxied
    admin = Store(clone(remote, tmp_path / "admin"), agent="admin")
    admin.init()
    admin.add_many([{"id": f"t{i}", "title": "x" * 200} for i in range(40)])  # a fetch of some size
    before = remote.ref()
    worker = Store(clone(remote, tmp_path / "worker"), agent="worker")
    proxy.cut = "mid_fetch"
    with pytest.raises(RemoteUnreachable) as ei:
        worker.claim("t1")  # a fresh clone must fetch first
    assert proxy.cuts == 1
    assert ei.value.details["reason"] == "unreachable"
    assert remote.ref() == before
    assert worker.transport.local_tip() is None  # no half-fetched branch left behind
    assert worker.claim("t1").task.holder == "worker"
    assert [(t, a) for _, t, a in claims_in_history(remote)] == [("t1", "worker")]
    assert_store_sound(remote, admin)


def test_a_push_whose_answer_never_comes_is_found_on_the_remote(
    proxied: tuple[Remote, CuttingProxy], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server applied the push, then the line went silent (no drop): the
    client times out, asks the remote, finds its own commit, and reports the
    claim as won: a fact it checked, not a guess."""
    import pygit2
    from pygit2.enums import Option

    remote, proxy = proxied
    admin = Store(clone(remote, tmp_path / "admin"), agent="admin")
    admin.init()
    admin.add("fragile", task_id="t1")
    worker = Store(clone(remote, tmp_path / "worker"), agent="worker")
    worker.list()
    proxy.cut = "stall_report"
    monkeypatch.setenv("GITCLAIM_IO_TIMEOUT_MS", "1500")  # the system git's watchdog
    old = pygit2.option(Option.GET_SERVER_TIMEOUT)
    pygit2.option(Option.SET_SERVER_TIMEOUT, 1500)
    try:
        won = worker.claim("t1")
    finally:
        pygit2.option(Option.SET_SERVER_TIMEOUT, old)
    assert proxy.cuts == 1
    assert won.changed and won.task.holder == "worker"
    assert remote.ref() == won.commit
    assert [(t, a) for _, t, a in claims_in_history(remote)] == [("t1", "worker")]
    assert_store_sound(remote, admin)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield listener.getsockname()[1]
    stop.set()
    with contextlib.suppress(OSError):
        listener.shutdown(socket.SHUT_RDWR)
    t.join(5)
    listener.close()
    for c in held:
        c.close()


@pytest.mark.parametrize("scheme", ["git", "ssh", "http", "https"])
def test_a_server_that_never_answers_is_a_timeout_not_a_hang(
    silent_server: int, tmp_path: Path, scheme: str, transport: str
) -> None:
    user = "git@" if scheme == "ssh" else ""
    path = clone(Remote(tmp_path / "x.git", f"{scheme}://{user}127.0.0.1:{silent_server}/x.git"), tmp_path / "c")
    r = run_cli("claim", "t1", "--agent", "a", "--json", cwd=path, timeout=60,
                env={"GITCLAIM_IO_TIMEOUT_MS": "1000", "GITCLAIM_CONNECT_TIMEOUT_MS": "1000"})  # fmt: skip
    assert r.returncode == 8, r.stdout + r.stderr
    err = json.loads(r.stdout)["error"]
    assert err["details"]["reason"] == "unreachable", err
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("verb", ["claim", "done"])
def test_ctrl_c_while_the_answer_is_awaited_exits_130_and_the_rerun_converges(
    proxied: tuple[Remote, CuttingProxy], tmp_path: Path, verb: str
) -> None:
    """The push landed, its answer is stuck, the human presses Ctrl-C: exit 130
    with a JSON error (never 0 and silence), and the same command again finds
    the change its own (changed: false): nothing written twice."""
    import signal
    import subprocess
    import sys
    import time

    remote, proxy = proxied
    admin = Store(clone(remote, tmp_path / "admin"), agent="admin")
    admin.init()
    admin.add("fragile", task_id="t1")
    path = clone(remote, tmp_path / "worker")
    if verb == "done":
        Store(path, agent="worker").claim("t1")
    Store(path, agent="worker").list()
    proxy.cut = "stall_report"
    p = subprocess.Popen([sys.executable, "-m", "gitclaim", "-C", str(path), verb, "t1", "--agent", "worker",
                          "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 30
    while proxy.cuts == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proxy.cuts == 1, "the push never reached the proxy"
    # the ref has moved once the server reports: wait for that, not for a guessed time (a push
    # through the system's git takes longer to send its pack than libgit2's)
    assert proxy.stalled.wait(30), "the server never reported on the push"
    time.sleep(0.3)  # the client now waits for an answer that does not come
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, out + err
    assert json.loads(out)["error"]["code"] == "interrupted"
    assert "Traceback" not in err
    proxy.released.set()
    tip = remote.ref()
    again = run_cli(verb, "t1", "--agent", "worker", "--json", cwd=path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["result"]["changed"] is False, again.stdout  # it had landed: recognised as its own
    assert remote.ref() == tip  # and nothing was written twice
    assert [(t, a) for _, t, a in claims_in_history(remote)] == [("t1", "worker")]
    assert admin.show("t1").task.state.value == ("active" if verb == "claim" else "done")
    assert_store_sound(remote, admin)


def test_a_bad_timeout_setting_is_bad_input(tmp_path: Path) -> None:
    path = clone(Remote(tmp_path / "x.git", "git://127.0.0.1:9/x.git"), tmp_path / "c")
    for value in ("abc", "0", "-5"):
        r = run_cli("list", "--json", cwd=path, env={"GITCLAIM_IO_TIMEOUT_MS": value})
        assert r.returncode == 2, r.stdout + r.stderr
        assert "GITCLAIM_IO_TIMEOUT_MS" in json.loads(r.stdout)["error"]["message"]
