"""Human output with rich. Only the CLI calls this; JSON output never does."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from rich.table import Table

from . import plain, render_agents, render_history
from .errors import GitclaimError
from .model import _iso
from .operations import BY_NAME

if TYPE_CHECKING:
    from .audit import Entry
    from .demo import DemoResult
    from .install import Installed
    from .model import Problem, Task
    from .results import (
        AddResult,
        DoneResult,
        HeartbeatResult,
        History,
        InitResult,
        Listing,
        OpResult,
        PolicyResult,
        ReapResult,
        RestoreResult,
        StaleClaim,
        StaleReport,
        TaskView,
        VerifyResult,
    )
    from .views import BlockedView, Board, Graph, Who


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich would exit 1, the status of a bug; the CLI's handler stops quietly instead
        raise BrokenPipeError

    def _size(self) -> ConsoleDimensions:
        # Output that goes to a file or a pipe is not cut or wrapped to a terminal's
        # width (rich asks stdin's and stderr's terminal too), unless COLUMNS says so:
        # a view must not cut the value it exists to show.
        size = Console.size.fget(self)  # type: ignore[attr-defined]
        if self._width is None and not self.is_terminal and "COLUMNS" not in self._environ:
            return ConsoleDimensions(_UNBOUNDED, size.height)
        return size  # type: ignore[no-any-return]

    size = property(_size, Console.size.fset)  # type: ignore[attr-defined]


_UNBOUNDED = 100_000
out = _Console(highlight=False, emoji=False, soft_wrap=False)
err = _Console(stderr=True, highlight=False, emoji=False)

_STATE_STYLE = {
    "todo": "cyan",
    "backlog": "blue",
    "active": "bold yellow",
    "waiting": "magenta",
    "review": "bright_magenta",
    "done": "green",
    "cancelled": "dim",
    "someday": "dim cyan",
    "failed": "bold red",
}


def _state(s: str) -> str:
    # a state read from a hand-made commit's trailers may be any text
    return f"[{_STATE_STYLE.get(s, 'white')}]{escape(s)}[/]"


def _short(commit: str | None) -> str:
    return commit[:10] if commit else "-"


def error(e: GitclaimError) -> None:
    err.print(f"[bold red]error[/] [dim]({e.code}, exit {int(e.exit_code)})[/]: {escape(e.message)}")
    if e.hint:
        err.print(f"[dim]hint: {escape(e.hint)}[/]")


def init(r: InitResult) -> None:
    verb = "created" if r.created else "attached to"
    out.print(f"{verb} store branch [bold]{escape(r.branch)}[/] on {escape(r.remote)} at {_short(r.commit)}")


def restore(r: RestoreResult) -> None:
    if r.restored:
        out.print(f"put back store branch [bold]{escape(r.branch)}[/] on {escape(r.remote)} at {_short(r.commit)}")
    else:
        out.print(
            f"{escape(r.remote)} has store branch [bold]{escape(r.branch)}[/] at {_short(r.commit)}; nothing to do"
        )


def added(r: AddResult) -> None:
    for t in r.tasks:
        out.print(f"added [bold]{t.id}[/] ({_state(t.state.value)}, p{t.priority}) {escape(t.title)}")
    out.print(f"[dim]commit {_short(r.commit)}" + (f", {r.retries} retries" if r.retries else "") + "[/]")


def op(r: OpResult) -> None:
    t = r.task
    op = BY_NAME[r.op]
    if not r.changed:
        since = _iso(t.claim.claimed_at) if t.claim else None
        out.print(escape(op.unchanged.format(task=t.id, state=t.state.value, since=since, op=r.op)))
        return
    who = f" {op.names_holder} {escape(t.holder)}" if op.names_holder and t.holder else ""
    out.print(
        f"{op.past} [bold]{t.id}[/]{who}: {_state(r.previous_state)} → {_state(t.state.value)}"
        f"  [dim]commit {_short(r.commit)}" + (f", {r.retries} retries" if r.retries else "") + "[/]"
    )
    if r.previous_holder:
        out.print(f"  [dim]taken from {escape(r.previous_holder)}[/]")
    for other in r.also:
        out.print(f"  also: [bold]{other.id}[/] → {_state(other.state.value)} (claim cleared)")
    if op.shows_title:
        out.print(f"  {escape(t.title)}")


def done(r: DoneResult) -> None:
    """done, and with --next the task claimed in the same commit."""
    op(r)
    if r.next is not None:
        op(r.next)
    elif r.nothing_ready:
        out.print("[dim]nothing was ready to claim next[/]")


def heartbeat(r: HeartbeatResult) -> None:
    held = ", ".join(r.holding) or "nothing"
    out.print(f"heartbeat of [bold]{escape(r.agent)}[/] at {_iso(r.at)}; holding {held}")


def stale(r: StaleReport) -> None:
    _skipped(r.problems)
    if not r.claims:
        out.print("[dim]no stale claims[/]")
    for c in r.claims:
        _stale_line(c)
    if r.cut and r.total is not None:
        _more(len(r.claims), r.total)


def _stale_line(c: StaleClaim) -> None:
    out.print(
        f"  [bold]{c.task.id}[/] held by {escape(c.holder)} since {_iso(c.claimed_at)}: {c.reason}"
        f" (lease until {_iso(c.lease_expires) or '-'}, last seen {_iso(c.last_seen) or 'never'})"
    )


def reaped(r: ReapResult) -> None:
    if not r.reaped:
        out.print("[dim]nothing to reap[/]")
        return
    out.print(f"returned {len(r.reaped)} claims to the queue  [dim]commit {_short(r.commit)}[/]")
    for c in r.reaped:
        _stale_line(c)


def _table(tasks: tuple[Task, ...] | list[Task]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("ID", "STATE", "P", "HOLDER", "DEPENDS", "TITLE"):
        table.add_column(col, overflow="fold")
    for t in tasks:
        table.add_row(
            t.id,
            _state(t.state.value),
            str(t.priority),
            escape(t.holder or ""),
            ",".join(t.depends_on),
            escape(t.title),
        )
    return table


def listing(r: Listing) -> None:
    if not r.tasks:
        out.print("[dim]no tasks[/]" if not r.cut else "")
    elif out.is_terminal:
        out.print(_table(r.tasks))  # a page: rich costs what it shows
    else:
        rows = [
            (t.id, t.state.value, str(t.priority), t.holder or "", ",".join(t.depends_on), plain.cell(t.title))
            for t in r.tasks
        ]
        out.file.write(plain.aligned(plain.LISTING, rows))
    if r.cut and r.total is not None:
        _more(len(r.tasks), r.total)
    _skipped(r.problems)


def _more(shown: int, total: int) -> None:
    """Under a cut listing: part of the page on a terminal, on stderr when piped."""
    (out if out.is_terminal else err).print(f"[dim]{escape(plain.more(shown, total))}[/]")


def _skipped(problems: tuple[Problem, ...]) -> None:
    """Every view says which files it could not read, on stderr."""
    for p in problems:
        err.print(f"[yellow]warning[/]: skipped {escape(p.message)}")


def task_view(v: TaskView) -> None:
    _fetched(v.fetched)
    t = v.task
    out.print(f"[bold]{t.id}[/]  {escape(t.title)}")
    rows: list[tuple[str, Any]] = [
        ("state", _state(t.state.value)),
        ("priority", t.priority),
        ("holder", f"{escape(t.claim.holder)} since {_iso(t.claim.claimed_at)}" if t.claim else "-"),
        ("lease", f"{t.claim.lease_seconds}s, renewed by heartbeats" if t.claim and t.claim.lease_seconds else "-"),
        ("depends on", ", ".join(t.depends_on) or "-"),
        ("tags", escape(", ".join(t.tags)) or "-"),
        ("created", f"{_iso(t.created_at) or '?'} by {escape(t.created_by or '?')}"),
    ]
    if t.parent:
        rows.append(("parent", t.parent))
    if t.waiting_for:
        rows.append(("waiting for", escape(t.waiting_for)))
    if t.fail_reason:
        rows.append(("failed", escape(t.fail_reason)))
    if v.archived:
        rows.append(("archived", "moved out of the live store (gitclaim archive); never claimed or changed again"))
    if v.blockers:
        rows.append(("blocked by", ", ".join(f"{b['id']} ({b['state']})" for b in v.blockers)))
    for k, val in rows:
        out.print(f"  [dim]{k:<11}[/] {val}")
    if t.description:
        out.print()
        out.print(escape(t.description))
    if t.acceptance:
        out.print("\n[bold]acceptance[/]")
        for a in t.acceptance:
            out.print(f"  - {escape(a)}")
    if t.extra:
        out.print("\n[bold]other fields[/]")
        for k, val in t.extra.items():
            out.print(f"  {escape(k)} = {escape(repr(val))}")
    _schema2(v)
    if v.history:
        out.print("\n[bold]history[/]")
        if v.history_cut:
            out.print("  [dim](older changes left out)[/]")
        for e in reversed(v.history):
            _entry_line(e)


def _schema2(v: TaskView) -> None:
    """show's result, children and notes."""
    t = v.task
    if t.result is not None:
        out.print(f"\n[bold]result[/] [dim]by {escape(t.result.by)} at {_iso(t.result.at)}[/]")
        out.print("".join(f"  {escape(line)}\n" for line in t.result.text.splitlines()), end="")
    if v.children:
        done = sum(1 for c in v.children if c["state"] in ("done", "cancelled"))
        out.print(f"\n[bold]children[/] [dim]({done} of {len(v.children)} done or cancelled)[/]")
        for c in v.children:
            out.print(f"  [bold]{c['id']}[/] {_state(c['state'])} {escape(c['title'])}")
    if t.notes:
        out.print("\n[bold]notes[/]")
        for n in t.notes:
            lines = n.text.splitlines() or [""]
            out.print(f"  {_iso(n.at)}  [dim]{escape(n.by)}[/]  {escape(lines[0])}")
            for line in lines[1:]:
                out.print(f"      {escape(line)}")


def _entry_line(e: Entry) -> None:
    change = f"{_state(e.from_state)} → {_state(e.to_state)}" if e.from_state and e.to_state else ""
    tasks = escape(", ".join(e.tasks[:3]))
    if 1 < len(e.moves) <= 3 and all(m.from_state and m.to_state for m in e.moves):  # each task's own move
        tasks = "; ".join(
            f"{escape(m.task)} {_state(m.from_state or '')} → {_state(m.to_state or '')}" for m in e.moves
        )
        change = ""
    out.print(
        f"  {_iso(e.time)}  [dim]{e.commit[:10]}[/]  {escape(e.op or '?'):<8} "
        f"{escape(e.agent or e.author):<16} {tasks} {change}"
    )
    rec = e.record
    if rec is not None and rec.op == "note" and rec.note:
        out.print(f"      [dim]note:[/] {escape(rec.note)}")
    if rec is not None and rec.result:
        out.print(f"      [dim]result:[/] {escape(rec.result)}")
    for problem in e.violations:  # what the change broke, or what its trailers got wrong
        out.print(f"      [red]![/] {escape(problem)}")


def _fetched(what: tuple[str, ...]) -> None:
    for line in what:
        err.print(f"[dim]fetched {escape(line)}[/]")


def history(h: History) -> None:
    _fetched(h.fetched)
    if not h.entries:
        out.print("[dim]no history[/]")
    for e in h.entries:
        _entry_line(e)
    if h.cut:
        out.print(f"[dim]older entries left out by --limit {len(h.entries)}[/]")


def demo(r: DemoResult) -> None:
    from .demo import print_report

    print_report(r, out)


def installed(r: Installed) -> None:
    verb = "updated" if r.updated else "installed"
    out.print(f"{verb} {escape(r.path)}")
    if r.chained:
        out.print(f"  your own hook is kept as {escape(r.chained)} and runs after the check")
    g = r.gitolite
    if g is None:
        return
    how = "a repo-specific pre-receive hook" if g.mode == "hook" else "a VREF"
    out.print(f"  gitolite manages {escape(g.repo)}: gitclaim's check is {how}; gitolite's own hooks are untouched")
    for note in g.notes:
        out.print(f"  [yellow]note[/]: {escape(note)}")
    if g.rc_settings:
        out.print(f"  add to {escape(g.rc_file)}, inside %RC = ( ... ):")
        out.print("".join(f"      {escape(line)}\n" for line in g.rc_settings), end="")
    if g.rc_enable:
        out.print(f"  add to the ENABLE list of {escape(g.rc_file)}:")
        out.print("".join(f"      {escape(line)}\n" for line in g.rc_enable), end="")
    if g.active:
        out.print(f"  in effect: gitolite.conf switches it on for {escape(g.repo)} ({escape(g.conf[-1].strip())})")
        return
    where = ", after the repository's own rules," if g.mode == "vref" else ""
    out.print(f"  add to gitolite.conf{where} and push gitolite-admin:")
    out.print("".join(f"      {escape(line)}\n" for line in g.conf), end="")


def policy(r: PolicyResult) -> None:
    p = r.policy
    if r.changed:
        out.print(f"changed the store's policy in {r.commit[:10] if r.commit else '?'}")
    elif r.commit is not None and not p.defined and not p.signers:
        out.print("[dim]the store has no policy: unsigned commits, anyone may reset (docs/identity.md)[/]")
    required = "[bold]required[/]" if p.require_signed else "not required"
    out.print(f"signatures: {required}")
    out.print(f"admins:     {escape(', '.join(p.admins) or '-')}")
    out.print(f"operators:  {escape(', '.join(p.operators) or '-')}")
    for pusher, agents in sorted(p.pushers.items()):
        out.print(f"pusher {escape(pusher)} acts as {escape(', '.join(agents))}")
    for s in r.signers():
        out.print(f"  {escape(s['name']):<16} {escape(s['fingerprint'])}")


def verified(r: VerifyResult) -> None:
    _fetched(r.fetched)
    since = f" after {r.since[:10]}" if r.since else " from the root"
    out.print(f"[green]ok[/]: {r.commits} commits{since} to {r.tip[:10]} keep the store's rules")


def board(b: Board) -> None:
    _skipped(b.problems)
    from rich.columns import Columns
    from rich.panel import Panel

    panels = []
    for state, tasks in b.columns.items():
        if not b.total(state) and state in ("someday", "cancelled", "failed", "backlog", "waiting", "review"):
            continue
        body = _column(tasks)
        total = b.total(state)
        if total > len(tasks):
            body += f"\n[dim]... {total - len(tasks):,} more[/]"
        panels.append(Panel(body or "[dim]-[/]", title=f"{_state(state)} ({total})", width=30))
    out.print(Columns(panels))
    if b.cut:
        (out if out.is_terminal else err).print("[dim]--all shows every task, --limit N the first N of each state[/]")


def _column(tasks: tuple[Task, ...]) -> str:
    """One board column: tasks without a parent first, then each parent's children under its id."""
    groups: dict[str | None, list[Task]] = {}
    for t in tasks:
        groups.setdefault(t.parent, []).append(t)
    lines = []
    for parent, members in sorted(groups.items(), key=lambda kv: (kv[0] is not None, kv[0] or "")):
        if parent is not None:
            lines.append(f"[dim]{parent}:[/]")
        pad = "  " if parent is not None else ""
        lines += [
            f"{pad}[bold]{t.id}[/] p{t.priority}" + (f" [dim]{escape(t.holder)}[/]" if t.holder else "")
            for t in members
        ]
    return "\n".join(lines)


def who(w: Who) -> None:
    _skipped(w.problems)
    if not w.holdings:
        out.print("[dim]nobody holds anything[/]")
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("HOLDER", "TASK", "STATE", "CLAIMED AT", "LEASE", "LAST SEEN"):
        table.add_column(col, overflow="fold")
    for h in w.holdings:
        lease = {
            "none": "-",
            "live": f"until {_iso(h.lease_expires)}",
            "expired": f"[red]expired {_iso(h.lease_expires)}[/]",
        }
        table.add_row(
            escape(h.holder), h.task.id, _state(h.task.state.value), _iso(h.claimed_at) or "", lease[h.lease],
            _iso(h.last_seen) or "never",
        )  # fmt: skip
    out.print(table)
    if w.cut and w.total is not None:
        _more(len(w.holdings), w.total)


def blocked(v: BlockedView) -> None:
    _skipped(v.problems)
    if not v.tasks:
        out.print("[dim]nothing is blocked[/]")
    for b in v.tasks:
        what = ", ".join(f"{x['id']} ({x['state']})" for x in b.blockers)
        if b.waiting_for:
            what = (what + "; " if what else "") + f"outside: {escape(b.waiting_for)}"
        out.print(f"[bold]{b.task.id}[/] ({_state(b.task.state.value)}) waits for {what}")
    if v.cut and v.total is not None:
        _more(len(v.tasks), v.total)


def graph(g: Graph) -> None:
    _skipped(g.problems)
    import sys

    sys.stdout.write(g.text)


def pager_command(env: Mapping[str, str]) -> str | None:
    """The pager, as git chooses one: GITCLAIM_PAGER, then PAGER, then less; none for "" or cat."""
    cmd = env.get("GITCLAIM_PAGER", env.get("PAGER", "less"))
    return None if cmd.strip() in ("", "cat") else cmd


def paged(show: Callable[[], None], env: Mapping[str, str]) -> None:
    """Run ``show``; on a terminal, through the pager when it is longer than the screen."""
    cmd = pager_command(env)
    if cmd is None or not out.is_terminal:
        show()
        return
    with out.capture() as captured:
        show()
    text = captured.get()
    if text.count("\n") < out.height:
        out.file.write(text)
        return
    import subprocess

    try:
        proc = subprocess.Popen(cmd, shell=True, stdin=subprocess.PIPE, env={"LESS": "FRX", **env})
    except OSError:
        out.file.write(text)
        return
    try:
        assert proc.stdin is not None
        proc.stdin.write(text.encode("utf-8", "replace"))
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the reader quit the pager early
    proc.wait()


#: The renderer of each result named in the table of operations (``Operation.result``).
RENDERERS: dict[str, Callable[[Any], None]] = {
    "init": init,
    "restore": restore,
    "added": added,
    "op": op,
    "done": done,
    "listing": listing,
    "task_view": task_view,
    "history": history,
    "heartbeat": heartbeat,
    "stale": stale,
    "reaped": reaped,
    "board": board,
    "who": who,
    "blocked": blocked,
    "graph": graph,
    "installed": installed,
    "policy": policy,
    "verified": verified,
    "compacted": render_history.compacted,
    "archived": render_history.archived,
    "demo": demo,
    "ran": render_agents.ran,
    "watched": render_agents.watched,
}


def progress_sink() -> Any:
    """A (stage, done, total) callback drawing a bar on stderr once work takes long."""
    import time

    from rich.progress import Progress

    bar = Progress(console=err, transient=True)
    tasks: dict[str, Any] = {}
    started = time.monotonic()

    def report(stage: str, done: int, total: int) -> None:
        if time.monotonic() - started < 0.5 and stage not in tasks:
            return  # short work: no flicker
        if stage not in tasks:
            if not tasks:
                bar.start()
            tasks[stage] = bar.add_task({"fetch": "fetching", "add": "adding tasks"}.get(stage, stage), total=total)
        bar.update(tasks[stage], completed=done, total=total)
        if done >= total and all(t.finished for t in bar.tasks):
            bar.stop()

    return report
