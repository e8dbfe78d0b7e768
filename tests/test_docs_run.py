"""Every command shown in the README and docs/ is run, so the docs cannot rot.

Each ```sh block runs as one bash script in a fresh sandbox: a clone of a
bare remote with an initialised store, $PATH leading to this Python's
gitclaim, HOME in a temporary folder. Every line must exit 0, or the code
its comment names (``# exit 4: ...``). Each ```python block runs in the same
kind of sandbox with two tasks seeded. Lines that set up the tool itself
(creating a virtualenv, pip install, running pytest or ``bash scripts/test``)
are what CI runs; they are skipped here, and a path like /srv/git is moved
into the sandbox.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gitclaim import Store

from .servers import Remote, clone, make_bare

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(sh|python)\n(.*?)^```", re.M | re.S)
SKIP = re.compile(r"^(python3 -m venv|pip install|\.venv/bin/pytest|pytest|bash scripts/test)\b")


def blocks() -> list[tuple[str, int, str, str]]:
    out = []
    for path in DOCS:
        text = path.read_text()
        for m in BLOCK.finditer(text):
            line = text[: m.start()].count("\n") + 1
            out.append((path.relative_to(ROOT).as_posix(), line, m.group(1), m.group(2)))
    return out


def sandbox(tmp_path: Path, seed: bool) -> tuple[Path, dict[str, str]]:
    remote = make_bare(tmp_path / "shared.git")
    work = clone(Remote(remote, str(remote)), tmp_path / "work")
    store = Store(work, agent="planner")
    store.init()
    if seed:
        store.add_many(
            [{"id": "first", "title": "First"}, {"id": "second", "title": "Second", "depends_on": ["first"]}]
        )
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop("GITCLAIM_AGENT", None)
    return work, env


def script(body: str, srv: Path) -> str:
    lines = ["set -u"]
    for n, raw in enumerate(body.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        # the README's set-up line: keep what it runs after installing
        line = re.sub(r"^python3 -m venv \.venv && \.venv/bin/pip install -e [^&]+&& ", "", line)
        line = line.replace(".venv/bin/", "").replace("/srv/git", str(srv))
        if SKIP.match(line):
            continue
        m = re.search(r"#\s*exit (\d+)", line)
        want = int(m.group(1)) if m else 0
        lines.append(line)
        lines.append(f'rc=$?; if [ $rc -ne {want} ]; then echo "line {n}: exit $rc, expected {want}" >&2; exit 99; fi')
    return "\n".join(lines) + "\n"


def _docs() -> list[str]:
    return sorted({doc for doc, _, _, _ in blocks()})


@pytest.mark.parametrize("doc", _docs())
def test_doc_commands_run(doc: str, tmp_path: Path) -> None:
    """A document's shell blocks run in order in one sandbox: a doc is a narrative."""
    mine = [(line, body) for d, line, lang, body in blocks() if d == doc and lang == "sh"]
    if not mine:
        return
    work, env = sandbox(tmp_path, seed=False)
    (tmp_path / "srv").mkdir()
    for line, body in mine:
        text = script(body, tmp_path / "srv")
        r = subprocess.run(["bash", "-c", text], cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"{doc}:{line} failed:\n{r.stderr[-3000:]}\n{r.stdout[-2000:]}"
        assert "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize(
    ("doc", "line", "body"), [(d, n, b) for d, n, lang, b in blocks() if lang == "python"], ids=lambda v: str(v)[:30]
)
def test_doc_python_runs(doc: str, line: int, body: str, tmp_path: Path) -> None:
    work, env = sandbox(tmp_path, seed=True)
    r = subprocess.run([sys.executable, "-c", body], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{doc}:{line} failed:\n{r.stderr[-3000:]}\n{r.stdout[-2000:]}"
    done = {t.id for t in Store(work, agent="checker").list(state=["done"]).tasks}
    assert "first" in done  # each example claims the best task and finishes it


def test_every_doc_with_commands_is_covered() -> None:
    found = {doc for doc, _, _, _ in blocks()}
    assert "README.md" in found and "docs/guide-agents.md" in found and "docs/guide-reviewers.md" in found
