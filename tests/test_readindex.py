"""The read index never changes an answer: built, brought up to date from a
stale one, or rebuilt after damage, it selects what a full read of the task
files selects (random stores, hypothesis); and the fast read path prints what
the typer app prints."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pygit2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pygit2.enums import FileMode

from gitclaim import Store, fastread, readindex, rules, selection, views
from gitclaim.cli import main
from gitclaim.git import Repo
from gitclaim.ids import STORE_FILE, fanout, task_path
from gitclaim.model import STATES, Claim, State, StoreConfig, Task, dump_store_config, dump_task
from gitclaim.snapshot import Snapshot
from tests.servers import Remote, clone

IDS = [f"t{i:02d}" for i in range(24)]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@st.composite
def tasks(draw: st.DrawFn) -> Task:
    tid = draw(st.sampled_from(IDS))
    state = draw(st.sampled_from(list(State)))
    claimed = state in (State.ACTIVE, State.WAITING, State.REVIEW) or draw(st.booleans())
    holder = draw(st.sampled_from(["agent-a", "agent-b"]))
    created = draw(st.none() | st.integers(0, 5).map(lambda d: T0 + timedelta(days=d)))
    return Task(
        id=tid,
        title=draw(st.sampled_from(["one", "two\nlines", "é ünïcode"])),
        state=state,
        priority=draw(st.integers(0, 3)),
        depends_on=tuple(
            draw(st.lists(st.sampled_from(IDS), max_size=3, unique=True).map(lambda d: [x for x in d if x != tid]))
        ),
        tags=tuple(draw(st.lists(st.sampled_from(["a", "b"]), max_size=2, unique=True))),
        created_at=created,
        claim=Claim(holder, T0) if claimed else None,
        waiting_for="x" if state is State.WAITING else None,
    )


# A store: task files, some of them broken (bad TOML, a misplaced file).
stores = st.tuples(
    st.dictionaries(st.sampled_from(IDS), tasks(), max_size=20),
    st.sets(st.sampled_from(IDS), max_size=3),  # ids whose file is broken TOML
    st.booleans(),  # a misplaced file
)


def _files(store: tuple[dict[str, Task], set[str], bool]) -> dict[str, bytes]:
    by_id, broken, misplaced = store
    files = {STORE_FILE: dump_store_config(StoreConfig())}
    for tid, t in by_id.items():
        files[task_path(tid)] = dump_task(t.evolve(id=tid, depends_on=tuple(d for d in t.depends_on if d != tid)))
    for tid in broken:
        files[task_path(tid)] = b"schema = 1\nid = [oops\n"
    if misplaced:
        other = next(f for f in ("00", "ff") if f != fanout("zz"))
        files[f"tasks/{other}/zz.toml"] = dump_task(Task(id="zz", title="lost"))
    return files


def _commit(repo: pygit2.Repository, files: dict[str, bytes]) -> str:
    tree: dict[str, Any] = {}
    for path, data in files.items():
        *dirs, name = path.split("/")
        node = tree
        for d in dirs:
            node = node.setdefault(d, {})
        node[name] = data

    def write(node: dict[str, Any]) -> pygit2.Oid:
        tb = repo.TreeBuilder()
        for name, value in sorted(node.items()):
            if isinstance(value, dict):
                tb.insert(name, write(value), FileMode.TREE)
            else:
                tb.insert(name, repo.create_blob(value), FileMode.BLOB)
        return tb.write()

    sig = pygit2.Signature("t", "t@example.invalid", 0, 0)
    return str(repo.create_commit(None, sig, sig, "s", write(tree), []))


def _full(repo: Repo, commit: str) -> dict[str, Any]:
    """What ready, list and board answer from a full read of the task files (no cache)."""
    found, problems = Snapshot(repo, commit, None).scan()
    board = views.board(found, commit, problems)
    return {
        "ready": [t.id for t in rules.ready(found)],
        "list": [
            t.id
            for t in sorted(found, key=lambda t: (t.priority, t.created_at or datetime.min.replace(tzinfo=UTC), t.id))
        ],
        "held": sorted(t.id for t in found if t.holder == "agent-a"),
        "board": {s: [t.id for t in ts] for s, ts in board.columns.items()},
        "json": {t.id: json.dumps(t.to_json(), ensure_ascii=False) for t in found},
        "problems": [(p.path, p.message, p.code) for p in problems],
    }


def _answer(idx: readindex.Index) -> dict[str, Any]:
    rows = idx.rows()
    return {
        "ready": [r[0] for r in selection.ready(rows)],
        "list": [r[0] for r in selection.listed(rows, None, None, None)],
        "held": sorted(r[0] for r in selection.listed(rows, None, "agent-a", None)),
        "board": {s: [r[0] for r in rs] for s, rs in selection.columns(rows).items()},
        "json": {r[0]: r[readindex.JSON].decode() for r in rows},
        "problems": idx.problems(),
    }


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("index") / "repo.git"
    pygit2.init_repository(str(path), bare=True)
    return path


def test_the_states_are_the_models() -> None:
    assert selection.STATES == STATES


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=stores, after=stores, damage=st.integers(0, 10**9))
def test_stale_or_damaged_index_gives_the_full_reads_answer(bare: Path, before: Any, after: Any, damage: int) -> None:
    raw = pygit2.Repository(str(bare))
    repo = Repo(bare)
    a, b = _commit(raw, _files(before)), _commit(raw, _files(after))
    idx_a, _ = readindex.refresh(repo, a, None)
    assert _answer(idx_a) == _full(repo, a)
    # stale: brought up to date from the index of another tree
    idx_b, _ = readindex.refresh(repo, b, idx_a)
    assert _answer(idx_b) == _full(repo, b)
    assert idx_b.folders == readindex.refresh(repo, b, None)[0].folders
    # damaged on disk: detected, rebuilt, same answer
    path = bare / "gitclaim" / "index" / "x"
    assert readindex.save(path, idx_a)
    data = bytearray(path.read_bytes())
    i = damage % len(data)
    data[i] ^= 1 + damage % 255
    path.write_bytes(bytes(data[: len(data) - damage % 3]))
    assert readindex.load(path) is None
    path.write_bytes(b"")
    assert readindex.load(path) is None
    path.unlink()
    assert readindex.save(path, idx_a)
    assert readindex.load(path) == idx_a
    # the stored index of a (stale for b) and the tip b: the answer is b's
    assert _answer(readindex.current(repo, "origin", "x", b, readindex.load(path))) == _full(repo, b)


def test_one_change_parses_one_file(bare: Path) -> None:
    raw = pygit2.Repository(str(bare))
    repo = Repo(bare)
    files = {STORE_FILE: dump_store_config(StoreConfig())}
    files |= {task_path(f"s{i:04d}"): dump_task(Task(id=f"s{i:04d}", title="x")) for i in range(600)}
    a = _commit(raw, files)
    idx, parsed = readindex.refresh(repo, a, None)
    assert parsed == 600
    files[task_path("s0007")] = dump_task(Task(id="s0007", title="x", state=State.DONE))
    b = _commit(raw, files)
    _, parsed = readindex.refresh(repo, b, idx)
    assert parsed == 1


# --- the fast read path prints what the typer app prints --------------------------------


@pytest.fixture
def shop(path_remote: Remote, tmp_path: Path) -> Path:
    admin = Store(clone(path_remote, tmp_path / "admin"), agent="admin")
    admin.init()
    admin.add_many(
        [
            {"id": "a", "title": "first", "priority": 1, "tags": ["x"]},
            {"id": "b", "title": "second", "depends_on": ["a"]},
            {"id": "c", "title": "thïrd\nline", "priority": 0},
            {"id": "d", "title": "fourth", "tags": ["x"]},
        ]
    )
    admin.claim("a")
    agent = clone(path_remote, tmp_path / "agent")
    Store(agent).ready()  # fetch
    return agent


ARGVS = [
    ["ready", "--json"],
    ["ready", "--json", "--offline"],
    ["ready", "--offline"],
    ["ready", "--offline", "--limit", "1"],
    ["list", "--json", "--offline", "-n", "2"],
    ["list", "--offline", "--state", "todo", "--state", "active"],
    ["list", "--offline", "--tag=x", "--json"],
    ["list", "--offline", "--holder", "admin"],
    ["list", "--offline", "--limit", "0"],
    ["board", "--json", "--offline", "--limit", "1"],
    ["board", "--json"],
    ["ready", "--json", "--offline", "--all"],
]


@pytest.mark.parametrize("argv", ARGVS, ids=" ".join)
def test_the_fast_path_prints_what_the_typer_app_prints(
    shop: Path, argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["-C", str(shop), *argv]
    assert fastread.serve(args) == 0  # served here, not left to the typer app
    fast = capsys.readouterr()
    assert fastread.serve(args) == 0  # again: from the answers kept for this commit
    assert capsys.readouterr() == fast
    monkeypatch.setattr(fastread, "serve", lambda argv: None)
    assert main(args) == 0
    slow = capsys.readouterr()
    assert (fast.out, fast.err) == (slow.out, slow.err)


@pytest.mark.parametrize(
    "argv",
    [["ready", "--help"], ["ready", "--bogus"], ["list", "--limit", "x"], ["ready", "--all", "-n", "2"], ["who"]],
    ids=" ".join,
)
def test_what_the_fast_path_leaves_to_the_typer_app(argv: list[str]) -> None:
    call = fastread.parse(argv)
    assert call is None or fastread.serve(argv) is None


def test_a_claim_then_a_warm_read(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The index follows the tip; a damaged one is rebuilt; the answer never changes."""
    assert main(["-C", str(shop), "ready", "--json", "--offline"]) == 0
    before = json.loads(capsys.readouterr().out)["result"]
    Store(shop, agent="agent-z").claim("c")
    assert main(["-C", str(shop), "ready", "--json", "--offline"]) == 0
    after = json.loads(capsys.readouterr().out)["result"]
    assert [t["id"] for t in before["tasks"]] == ["c", "d"]
    assert [t["id"] for t in after["tasks"]] == ["d"]
    for f in (shop / ".git" / "gitclaim" / "index").iterdir():
        f.write_bytes(f.read_bytes()[:-10] + b"x" * 10)
    assert main(["-C", str(shop), "ready", "--json", "--offline"]) == 0
    assert json.loads(capsys.readouterr().out)["result"] == after


def test_the_fast_paths_flags_are_the_tables() -> None:
    from gitclaim.operations import BY_NAME, JSON, SHOW_ALL
    from gitclaim.refnames import DEFAULT_BRANCH, DEFAULT_REMOTE

    def kind(p: Any) -> str:
        text = str(p.type)
        return "bool" if p.type is bool else "list" if "list[" in text else "int" if text.startswith("int") else "str"

    for name in fastread.SERVED:
        table = tuple((p.name, kind(p), p.default, p.flags) for p in (*BY_NAME[name].params, SHOW_ALL, JSON))
        assert fastread.PARAMS[name] == table, name
    assert fastread.DEFAULTS == (DEFAULT_REMOTE, DEFAULT_BRANCH)


# --- pages and the pager -------------------------------------------------------------------


def test_the_pager_is_chosen_like_gits() -> None:
    from gitclaim.render import pager_command

    assert pager_command({}) == "less"
    assert pager_command({"PAGER": "more"}) == "more"
    assert pager_command({"PAGER": "more", "GITCLAIM_PAGER": "most"}) == "most"
    assert pager_command({"GITCLAIM_PAGER": ""}) is None
    assert pager_command({"PAGER": "cat"}) is None


def test_a_page_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from gitclaim.commands import page_limit
    from gitclaim.errors import BadInput
    from gitclaim.operations import BY_NAME

    ready, board = BY_NAME["ready"], BY_NAME["board"]
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert page_limit(ready, None, False, False) == 50
    assert page_limit(board, None, False, False) == 20
    assert page_limit(ready, None, True, False) is None  # --all
    assert page_limit(ready, 7, False, False) == 7
    assert page_limit(ready, None, False, True) is None  # --json: complete
    with pytest.raises(BadInput):
        page_limit(ready, 7, True, False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert page_limit(ready, None, False, False) is None  # piped: every row


def test_a_cut_listing_says_how_many_more(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(shop), "list", "--offline", "--limit", "1"]) == 0
    got = capsys.readouterr()
    assert len(got.out.splitlines()) == 2  # the header and one row
    assert "3 more of 4" in got.err
    assert main(["-C", str(shop), "list", "--offline", "--limit", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["result"]
    assert (len(result["tasks"]), result["total"], result["cut"]) == (1, 4, True)


def test_a_warm_read_loads_neither_libgit2_nor_typer(shop: Path) -> None:
    import subprocess
    import sys

    code = (
        "import io, json, sys\n"
        "from gitclaim.cli import main\n"
        "out, sys.stdout = sys.stdout, io.TextIOWrapper(io.BytesIO())\n"
        "code = main(['ready', '--json', '--offline'])\n"
        "sys.stdout = out\n"
        "print(json.dumps([code, [m for m in ('pygit2', 'typer', 'rich', 'gitclaim.api') if m in sys.modules]]))\n"
    )
    runs = [subprocess.run([sys.executable, "-c", code], cwd=shop, capture_output=True, text=True) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr
    assert json.loads(runs[0].stdout)[0] == 0
    assert json.loads(runs[1].stdout) == [0, []]  # the first wrote the route and the answers; the second is warm
