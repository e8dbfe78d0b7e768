"""The parts of docs/cli.md that are made from the code: the commands from the
table of operations, the exit codes from the error catalogue, the result
shapes. ``python -m gitclaim.docs`` rewrites them in place (and the table of moves in docs/lifecycle.md); a
test fails when the file and the code disagree.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from .errors import markdown_table
from .operations import AGENT, OFFLINE, OPERATIONS, RESULTS, TERMS, Operation, Param, Surface

_REGION = re.compile(r"(<!-- generated: (\w+) -->\n)(.*?)(<!-- end of generated \2 -->)", re.S)


def _synopsis(p: Param) -> str:
    if not p.flags:
        return p.metavar or p.name.upper()
    value = "" if p.type is bool else f" {p.metavar or p.name.upper()}"
    text = f"{p.flags[0]}{value}"
    many = "..." if "list[" in str(p.type) else ""
    return f"{text}{many}" if p.required else f"[{text}]{many}"


def usage(op: Operation) -> str:
    if op.usage:
        return op.usage
    words = [_synopsis(p) for p in op.params if p not in (AGENT, OFFLINE)]
    return " ".join([op.command, *words])


def commands_table() -> str:
    rows = ["| command | what it does |", "| --- | --- |"]
    for op in OPERATIONS:
        if Surface.CLI in op.surfaces or op.usage:
            synopsis = usage(op).replace("|", "\\|")
            rows.append(f"| `{synopsis}` | {op.summary} |")
    return "\n".join(rows) + "\n"


def results_list() -> str:
    lines = []
    for key, (shape, _) in RESULTS.items():
        names = ", ".join(f"`{op.name}`" for op in OPERATIONS if op.result == key)
        if names:
            lines.append(f"- {names} → `{shape}`")
    lines += [f"- where {term} is `{text}`" for term, text in TERMS.items()]
    return "\n".join(lines) + "\n"


def moves_table() -> str:
    """docs/lifecycle.md's table of legal moves, from :data:`gitclaim.rules.MOVES`."""
    from .rules import MOVES

    rows = ["| verb | from | to | who | claim | what it is for |", "| --- | --- | --- | --- | --- | --- |"]
    for m in MOVES:
        sources = ", ".join(sorted(s.value for s in m.sources))
        rows.append(f"| `{m.verb}` | {sources} | {m.target.value} | {m.who.value} | {m.claim.value} | {m.doc} |")
    return "\n".join(rows) + "\n"


GENERATORS = {"commands": commands_table, "errors": markdown_table, "results": results_list, "moves": moves_table}
DOCS = ("docs/cli.md", "docs/lifecycle.md")


def render(text: str) -> str:
    """``text`` with every generated region made anew."""
    return _REGION.sub(lambda m: m.group(1) + GENERATORS[m.group(2)]() + m.group(4), text)


def main(argv: list[str]) -> int:
    for name in argv or DOCS:
        path = Path(name)
        path.write_text(render(path.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
