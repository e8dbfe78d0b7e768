"""The documentation cannot drift from the code it describes."""

from __future__ import annotations

import os
import re
from pathlib import Path

from gitclaim.errors import ExitCode, GitclaimError
from gitclaim.rules import MOVES

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_lifecycle_table_matches_rules() -> None:
    text = (DOCS / "lifecycle.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \| (\w+) \| (\w+) \| (\w+) \| ([^|]+) \|$", text, re.M)
    documented = [(v, frm.strip(), to, who, claim, doc.strip()) for v, frm, to, who, claim, doc in rows]
    actual = [
        (m.verb, ", ".join(sorted(s.value for s in m.sources)), m.target.value, m.who.value, m.claim.value, m.doc)
        for m in MOVES
    ]
    assert documented == actual


def test_every_exit_code_is_documented() -> None:
    text = (DOCS / "cli.md").read_text()
    codes = {}
    for cls in [GitclaimError, *_subclasses(GitclaimError)]:
        codes[cls.code] = int(cls.exit_code)
    for code, number in codes.items():
        assert re.search(rf"^\| {number} \| `{code}` \|", text, re.M), f"{code} ({number}) missing from docs/cli.md"
    assert {int(c) for c in ExitCode} == {0, int(ExitCode.PIPE_CLOSED), *codes.values()}


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def test_ci_runs_the_readme_test_command() -> None:
    """The README's second command (the one that sets up and runs the tests) is what CI runs."""
    first_block = re.search(r"^```sh\n(.*?)^```", (ROOT / "README.md").read_text(), re.M | re.S)
    assert first_block is not None
    command = first_block.group(1).splitlines()[1]
    assert command in (ROOT / ".ci" / "run").read_text().splitlines()
    script = ROOT / command.split()[-1]  # bash scripts/test
    assert script.is_file() and os.access(script, os.X_OK)
