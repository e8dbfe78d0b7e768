"""The package keeps its layers: git access in one place, a pure domain, thin surfaces.

Read from the source with ``ast`` (every import, also those inside functions
and under TYPE_CHECKING), so a shortcut taken anywhere fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gitclaim"
MODULES = sorted(p for p in PACKAGE.rglob("*.py"))

# The domain: no I/O, no clock, no git (docs/architecture.md).
PURE = {
    "model", "ids", "rules", "audit", "validate", "views", "errors", "operations", "units", "refnames", "results",
    "sshkeys", "sshsig",
}  # fmt: skip
IO = {"subprocess", "socket", "pygit2", "os", "shutil", "tempfile"}
HIGHER = {
    "api", "cas", "snapshot", "cache", "ops", "cli", "mcp_server", "render", "demo", "git",
    "enforce", "install", "gitolite", "hook",
}  # fmt: skip


def _name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return ".".join(p for p in rel.parts if p != "__init__") or "gitclaim"


def _imports(path: Path, *, typing_only: bool = True) -> set[str]:
    """Every module ``path`` imports, as absolute names (relative ones resolved);
    without ``typing_only``, not those under ``if TYPE_CHECKING:`` (no run-time dependency)."""
    here = ["gitclaim", *path.relative_to(PACKAGE).with_suffix("").parts]
    out: set[str] = set()
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    if not typing_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                skip |= {id(n) for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def _top(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def _ours(names: set[str]) -> set[str]:
    return {n.split(".")[1] for n in names if n.startswith("gitclaim.")}


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_only_the_git_package_imports_pygit2(path: Path) -> None:
    inside = path.is_relative_to(PACKAGE / "git")
    assert ("pygit2" in _top(_imports(path))) is False or inside, f"{_name(path)} imports pygit2"


@pytest.mark.parametrize("path", sorted((PACKAGE / "git").glob("*.py")), ids=_name)
def test_the_git_package_imports_only_leaves_of_the_package(path: Path) -> None:
    assert _ours(_imports(path)) <= {"errors", "ids", "git"}, _name(path)


@pytest.mark.parametrize("name", sorted(PURE))
def test_the_domain_is_pure(name: str) -> None:
    found = _imports(PACKAGE / f"{name}.py", typing_only=False)
    assert not (_top(found) & IO), (name, _top(found) & IO)
    assert not (_ours(found) & HIGHER), (name, _ours(found) & HIGHER)


@pytest.mark.parametrize("name", ["cli", "commands", "mcp_server", "render", "plain"])
def test_the_surfaces_never_touch_git(name: str) -> None:
    assert "git" not in _ours(_imports(PACKAGE / f"{name}.py")), name


def test_the_pygit2_rule_can_fail() -> None:
    assert "pygit2" in _top(_imports(PACKAGE / "git" / "repo.py"))


@pytest.mark.parametrize("path", [p for p in MODULES if not p.is_relative_to(PACKAGE / "git")], ids=_name)
def test_nothing_above_git_reaches_into_the_pygit2_repository(path: Path) -> None:
    assert ".repo.repo" not in path.read_text(), f"{_name(path)} opens Repo.repo, the pygit2 object"
