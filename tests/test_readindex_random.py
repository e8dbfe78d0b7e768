"""A damaged or stale read index never changes an answer (issue 14): random
stores built through the API and by hand with plain git, on a bare remote
reached by its path; after each batch of steps, ready, list and board as the
fast read path prints them (from the index, damaged in random ways first)
equal a full read of every task file at the same tip, field for field and in
order, and the index is rebuilt, keyed by that tip."""

from __future__ import annotations

import json
import os
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gitclaim import Store, fastread, readindex, rules, views
from gitclaim.errors import GitclaimError
from gitclaim.git import Repo
from gitclaim.ids import task_path
from gitclaim.model import sort_key_ready
from gitclaim.results import Listing
from gitclaim.snapshot import Snapshot
from tests.conftest import run_cli
from tests.servers import Remote, clone, git

SEEDS = [1, 2, 3, 5, 8, 13]
COMMANDS = ("ready", "list", "board")


def _full(path: Path) -> tuple[str, dict[str, Any]]:
    """The tip this clone fetched, and what ready, list and board answer from a
    full read of every task file there (no index, no cache)."""
    repo = Repo(path)
    tip = repo.transport("origin", "gitclaim").local_tip()
    assert tip is not None
    snap = Snapshot(repo, tip, None)
    tasks, problems = snap.scan()
    by_id = {**snap.archived_deps(tasks), **{t.id: t for t in tasks}}
    ready = rules.ready(tasks, by_id)
    listed = sorted(tasks, key=sort_key_ready)
    answers = {
        "ready": Listing(tuple(ready), tuple(problems), tip, len(ready)).to_json(),
        "list": Listing(tuple(listed), tuple(problems), tip, len(listed)).to_json(),
        "board": views.board(tasks, tip, problems).to_json(),
    }
    return tip, {c: {"ok": True, "command": c, "result": a} for c, a in answers.items()}


def _fast(path: Path, command: str, capsys: pytest.CaptureFixture[str]) -> Any:
    assert fastread.serve(["-C", str(path), command, "--json", "--offline"]) == 0
    return json.loads(capsys.readouterr().out)


def _same(got: Any, want: Any) -> None:
    assert got == want
    assert json.dumps(got) == json.dumps(want)  # in order too


def _soon() -> str:
    """A time after every task finished so far: archive --done-before takes them all."""
    return f"{datetime.now(UTC) + timedelta(hours=1):%Y-%m-%dT%H:%MZ}"


def _index_dir(path: Path) -> Path:
    return path / ".git" / "gitclaim" / "index"


def _damage(rnd: random.Random, path: Path, other: Path, stale: dict[str, bytes]) -> str:
    """Damage this clone's index files in one random way; say which."""
    folder = _index_dir(path)
    files = sorted(f for f in folder.iterdir()) if folder.exists() else []
    how = rnd.choice(["truncate", "bytes", "older", "delete", "other", "unwritable", "garbage-all"])
    if how == "other" and _index_dir(other).exists():
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(_index_dir(other), folder)
        return how
    if how == "older" and stale:
        for name, data in stale.items():  # valid files, keyed by an older tip
            (folder / name).write_bytes(data)
        return how
    if how == "unwritable":
        # a file where the index's folder goes: nothing can be read or written there, even by
        # root (a mode would not stop root); answers must not change
        shutil.rmtree(folder, ignore_errors=True)
        folder.write_bytes(b"not a folder\n")
        return how
    for f in files:
        data = f.read_bytes()
        if how == "truncate":
            f.write_bytes(data[: rnd.randrange(len(data) + 1)])
        elif how in ("bytes", "garbage-all"):
            b = bytearray(data or b"\0")
            for _ in range(1 if how == "bytes" else 8):
                b[rnd.randrange(len(b))] ^= rnd.randrange(1, 256)
            f.write_bytes(bytes(b))
        else:
            f.unlink()
    return how


class World:
    def __init__(self, rnd: random.Random, remote: Remote, root: Path) -> None:
        self.rnd = rnd
        self.admin = Store(clone(remote, root / "admin"), agent="admin")
        self.admin.init()
        self.agent = Store(clone(remote, root / "agent"), agent="agent-b")
        self.reader = clone(remote, root / "reader")
        self.other = clone(remote, root / "other")
        self.wc = root / "wc"
        self.remote = remote
        self.ids: list[str] = []
        self.n = 0

    def step(self) -> None:
        rnd = self.rnd
        who = rnd.choice([self.admin, self.agent])
        tid = rnd.choice(self.ids) if self.ids else None
        kinds = ["add"] * 6 + ["claim"] * 3 + ["done", "done", "release", "fail", "cancel"]
        kind = rnd.choice([*kinds, "edit", "note", "hand", "hand-rm", "reopen", "archive"])
        try:
            if kind == "add" or tid is None:
                self._add(who)
            elif kind in ("hand", "hand-rm"):
                self._hand(tid, kind == "hand-rm")
            else:
                self._verb(who, kind, tid)
        except GitclaimError:
            pass  # a refused step (held, blocked, not claimable): the store is unchanged

    def _verb(self, who: Store, kind: str, tid: str) -> None:
        rnd = self.rnd
        if kind in ("done", "fail", "release"):
            who.claim(tid)  # a re-claim by the holder changes nothing
        if kind == "archive":
            self.admin.archive(done_before=_soon())  # every done task to archive/: dependencies on them stay met
        elif kind == "edit":
            changes = [
                {"state": rnd.choice(["backlog", "todo", "someday"])},
                {"priority": str(rnd.randrange(4))},
                {"title": f"ëdit {rnd.random()}"},
                {"depends_on": ",".join(rnd.sample(self.ids, min(2, len(self.ids))))},
            ]
            who.edit(tid, rnd.choice(changes))
        elif kind == "note":
            who.note(tid, f"note {rnd.random()}")
        elif kind == "fail":
            who.fail(tid, "no luck")
        else:
            getattr(who, kind)(tid)  # claim, done, release, cancel, reopen

    def _add(self, who: Store) -> None:
        rnd = self.rnd
        self.n += 1
        tid = f"t{self.n:03d}"
        deps = rnd.sample(self.ids, min(len(self.ids), rnd.randrange(3)))
        entry: dict[str, Any] = {"id": tid, "title": rnd.choice(["one", "twö", "three\nlines"]),
                                 "priority": rnd.randrange(4), "depends_on": deps,
                                 "tags": rnd.sample(["a", "b"], rnd.randrange(3))}  # fmt: skip
        if self.ids and rnd.random() < 0.3:
            entry["parent"] = rnd.choice(self.ids)
        who.add_many([entry])
        self.ids.append(tid)
        if rnd.random() < 0.3:
            who.edit(tid, {"state": rnd.choice(["backlog", "someday"])})

    def _hand(self, tid: str, remove: bool) -> None:
        """A person's commit with plain git: a task file broken, rewritten or removed."""
        if not self.wc.exists():
            git("clone", "-q", "-b", "gitclaim", self.remote.url, str(self.wc))
        git("fetch", "-q", "origin", cwd=self.wc)
        git("reset", "-q", "--hard", "origin/gitclaim", cwd=self.wc)
        f = self.wc / task_path(tid)
        if not f.exists():
            return
        if remove:
            self.ids.remove(tid)  # its dependents now wait on a missing task
            git("rm", "-q", task_path(tid), cwd=self.wc)
        elif self.rnd.random() < 0.2:  # a copy in the wrong fan-out folder, and a file that is no task
            wrong = self.wc / "tasks" / ("00" if f.parent.name != "00" else "01") / f.name
            wrong.parent.mkdir(exist_ok=True)
            wrong.write_bytes(f.read_bytes())
            (f.parent / "README.md").write_text(f"notes {self.rnd.random()}\n")
            git("add", "-A", cwd=self.wc)
        elif self.rnd.random() < 0.5:
            f.write_text(f"schema = 1\nid = [oops {self.rnd.random()}\n")  # not TOML: a problem, not a task
        else:
            f.write_text(f.read_text() + f"# by hand {self.rnd.random()}\n")  # a new blob, the same task
        git("-c", "user.name=p", "-c", "user.email=p@x.invalid", "commit", "-qam", "by hand", cwd=self.wc)
        git("push", "-q", "origin", "gitclaim", cwd=self.wc, check=False)  # a lost race: someone pushed first


@pytest.mark.parametrize("seed", SEEDS)
def test_a_damaged_or_stale_index_never_changes_an_answer(
    seed: int, path_remote: Remote, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rnd = random.Random(seed)
    w = World(rnd, path_remote, tmp_path)
    stale: dict[str, bytes] = {}
    cli_checked = False
    for batch in range(5):
        for _ in range(rnd.randrange(6, 14)):
            w.step()
        for reader in (w.reader, w.other):
            git("fetch", "-q", "origin", cwd=reader)
        if batch == 0:
            # an index at the first tip, kept to be copied in later (valid, keyed by an older tree)
            for c in COMMANDS:
                _fast(w.reader, c, capsys)
            stale = {f.name: f.read_bytes() for f in _index_dir(w.reader).iterdir()}
        tip, full = _full(w.reader)
        for c in rnd.sample(COMMANDS, 3):
            _same(_fast(w.reader, c, capsys), full[c])
            _same(_fast(w.other, c, capsys), full[c])
        how = _damage(rnd, w.reader, w.other, stale)
        try:
            for c in rnd.sample(COMMANDS, 3):
                _same(_fast(w.reader, c, capsys), full[c])
            _same(Store(w.reader).ready(offline=True).to_json(), full["ready"]["result"])
            _same(Store(w.reader).board(offline=True).to_json(), full["board"]["result"])
        finally:
            if _index_dir(w.reader).is_file():
                _index_dir(w.reader).unlink()
        if how != "unwritable":
            idx = readindex.load(readindex.index_path(w.reader / ".git", "origin", "gitclaim"))
            assert idx is not None and idx.commit == tip, how  # rebuilt, keyed by the current tip
        if not cli_checked or batch == 4:
            cli_checked = True
            for c in COMMANDS:
                p = run_cli(c, "--json", "--offline", cwd=w.reader)
                assert p.returncode == 0, p.stderr
                _same(json.loads(p.stdout), full[c])
    # stale: the other clone's index was built many pushes ago; brought up to date, it equals the full read
    for _ in range(15):
        w.step()
    git("fetch", "-q", "origin", cwd=w.other)
    _, full = _full(w.other)
    for c in COMMANDS:
        _same(_fast(w.other, c, capsys), full[c])
    assert os.access(_index_dir(w.other), os.W_OK)


def test_a_stale_index_across_an_archive(
    path_remote: Remote, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The index remembers that a dependency is nowhere; many pushes later it is
    back, done and archived: the stale index is brought up to date, not trusted."""
    admin = Store(clone(path_remote, tmp_path / "admin"), agent="admin")
    admin.init()
    admin.add_many([{"id": "y", "title": "dependency"}, {"id": "x", "title": "waits", "depends_on": ["y"]}])
    admin.add("first archived", task_id="z")  # so that archive/ exists when the reader first reads
    admin.claim("z")
    admin.done("z")
    admin.archive(done_before=_soon())
    wc = tmp_path / "wc"
    git("clone", "-q", "-b", "gitclaim", path_remote.url, str(wc))
    git("rm", "-q", task_path("y"), cwd=wc)
    git("-c", "user.name=p", "-c", "user.email=p@x.invalid", "commit", "-qm", "rm y", cwd=wc)
    git("push", "-q", "origin", "gitclaim", cwd=wc)
    reader = clone(path_remote, tmp_path / "reader")
    git("fetch", "-q", "origin", cwd=reader)
    assert _fast(reader, "ready", capsys)["result"]["tasks"] == []  # x waits on a missing task
    git("revert", "--no-edit", "HEAD", cwd=wc, check=True)  # y is back
    git("push", "-q", "origin", "gitclaim", cwd=wc)
    admin.claim("y")
    admin.done("y")
    admin.archive(done_before=_soon())
    git("fetch", "-q", "origin", cwd=reader)
    _, full = _full(reader)
    assert [t["id"] for t in full["ready"]["result"]["tasks"]] == ["x"]
    for c in COMMANDS:
        _same(_fast(reader, c, capsys), full[c])
