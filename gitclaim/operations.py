"""The table of operations: every surface (CLI, MCP, Python API) is built from it.

For each operation: its name, the one summary used for ``--help``, the MCP
description and docs/cli.md, its parameters (type, help, default, CLI flags),
whether it reads or changes the store, the shape of its result and the
renderer that prints it, the errors it may raise, and the surfaces that
carry it. The CLI and the MCP server register their commands and tools from
it in a loop (``custom`` names the surfaces where one is hand-written
because it is genuinely different); the Python API is :class:`gitclaim.api.Store`,
whose method of the same name takes the parameters as keywords, and a test
holds the two in step.

This module is data: importing it costs no more than the error classes, so
``gitclaim --help`` and every ``--json`` call stay fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Any

from . import errors as E

if TYPE_CHECKING:
    from .api import Store
    from .envelope import Jsonable

_REQUIRED: Any = ...  # a parameter without a default


class Surface(Enum):
    CLI = "cli"
    MCP = "mcp"
    API = "api"


ALL = frozenset(Surface)
NOT_MCP = frozenset({Surface.CLI, Surface.API})


class Effect(Enum):
    READ = "read"  # reads the store, changes nothing
    CHANGE = "change"  # writes, and can be undone by another verb
    DROP = "drop"  # writes and ends someone's work (cancel, reset, reap)


@dataclass(frozen=True, eq=False)  # compared by identity: each is defined once
class Param:
    """One argument of an operation, as the Store method's keyword ``name``."""

    name: str
    type: Any  # the annotation, e.g. ``str | None``
    help: str
    default: Any = _REQUIRED
    flags: tuple[str, ...] = ()  # CLI option names; none: a positional argument
    metavar: str | None = None
    mcp_help: str | None = None  # where the MCP wording must differ (the agent's default)
    wire: str | None = None  # the MCP argument's name, where the keyword would read oddly
    mcp_type: Any = None  # the MCP argument's type, where JSON allows more than the command line

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    @property
    def mcp_name(self) -> str:
        return self.wire or self.name


@dataclass(frozen=True, eq=False)  # compared by identity: each is defined once
class Operation:
    name: str
    summary: str  # one line: --help, MCP, docs/cli.md
    params: tuple[Param, ...] = ()
    effect: Effect = Effect.READ
    result: str = ""  # a key of RESULTS, and the name of its renderer in gitclaim.render
    errors: tuple[type[E.GitclaimError], ...] = ()  # besides bad_input and E.ANY_OPERATION
    details: str = ""  # what else an agent or a person should know, after the summary
    surfaces: frozenset[Surface] = ALL
    custom: frozenset[Surface] = frozenset()  # surfaces where it is written by hand
    commits: bool = True  # a change that is one commit on the store branch (it may meet a busy store)
    past: str = ""  # the human output's verb: "claimed"
    names_holder: str = ""  # the human output names the new holder after this word ("as", "to")
    shows_title: bool = False  # the human output prints the task's title (next: you did not name it)
    # what the human output says when nothing changed: str.format with task, state, since, op
    unchanged: str = "your {op} of {task} had already landed ({state}); nothing changed"
    usage: str = ""  # docs/cli.md's synopsis, where the parameters do not say it
    cli: str = ""  # the CLI's words where they are not the name: "signers add"

    @property
    def command(self) -> str:
        """The CLI command's words."""
        return self.cli or self.name

    @property
    def help(self) -> str:
        return f"{self.summary}\n\n{self.details}" if self.details else self.summary

    @property
    def mutates(self) -> bool:
        return self.effect is not Effect.READ

    def all_errors(self) -> tuple[type[E.GitclaimError], ...]:
        """The errors this operation names: bad_input first, then its own, then a busy store."""
        own: tuple[type[E.GitclaimError], ...] = (E.BadInput, *self.errors)
        return own + (E.ANY_CHANGE if self.mutates and self.commits else ())


# --- parameters shared by many operations -------------------------------------------

TASK_ID = Param("task_id", str, "The task's id (a slug such as fix-login, or a generated id).", metavar="ID")
AGENT = Param(
    "agent",
    str | None,
    "Agent name (default: $GITCLAIM_AGENT, git config gitclaim.agent, else a name made once for this clone).",
    None,
    ("--agent", "-a"),
    mcp_help="Act as this agent (default: the server's agent, given by `gitclaim mcp --agent`).",
)
OFFLINE = Param("offline", bool, "Read the clone's local copy; do not fetch first.", False, ("--offline",))
TTL = Param(
    "ttl",
    str | None,
    "Lease: 90, 90s, 15m, 2h or 1d (0: no lease; default: the store's); renew it with heartbeat.",
    None,
    ("--ttl",),
    "DURATION",
    mcp_type=int | str | None,
)
SILENT_AFTER = Param(
    "silent_after",
    str | None,
    "Also count claims whose holder has sent no heartbeat for this long: 90, 90s, 15m, 2h or 1d.",
    None,
    ("--silent-after",),
    "DURATION",
    mcp_type=int | str | None,
)

LIMIT = Param(
    "limit",
    int | None,
    "Show at most N (board: per column). Default: everything, except a page on a terminal (docs/cli.md).",
    None,
    ("--limit", "-n"),
    "N",
)
#: The listings: each takes LIMIT, says its total and whether it was cut; on a
#: terminal the CLI shows this many rows (a page) unless --all or --limit.
PAGES: dict[str, int] = {"list": 50, "ready": 50, "board": 20, "who": 50, "stale": 50, "blocked": 50, "log": 50}

# Two options of the CLI alone, beside each operation's own.
JSON = Param("as_json", bool, "Print one JSON object (stable shape) on stdout.", False, ("--json",))
SHOW_ALL = Param("show_all", bool, "Show everything, also on a terminal (no page).", False, ("--all",))

WAIT = Param(
    "wait",
    bool,
    "Wait until a task is claimable, then claim it (looks at the remote's tip; fetches only when it moved).",
    False,
    ("--wait",),
)
TIMEOUT = Param(
    "timeout",
    str | None,
    "With --wait: give up after this long (90, 90s, 15m, 2h): nothing_ready, exit 7. Default: wait for ever.",
    None,
    ("--timeout",),
    "DURATION",
    mcp_help="With wait: give up after this long (seconds, or 90s, 2m); default 30 s, at most 120 s.",
    mcp_type=int | str | None,
)

_POLICY_ERRORS = (E.NotAllowed,)
SIGNER_NAME = Param("name", str, "The agent the key signs as.", metavar="NAME")
ROLE = Param("role", str, "admin, operator or pusher.", metavar="ROLE")
ROLE_NAME = Param("name", str, "The agent (admin, operator), or the host's user name (pusher).", metavar="NAME")
AS_AGENTS = Param("as_agents", list[str] | None, "pusher: an agent it may act as; * for any.", None, ("--as",), "AGENT")


def _policy(name: str, cli: str, summary: str, *params: Param, details: str = "") -> Operation:
    """An admin operation on the store's policy (:mod:`gitclaim.ops.signers`)."""
    return Operation(
        name,
        summary,
        (*params, AGENT),
        Effect.CHANGE,
        "policy",
        _POLICY_ERRORS,
        details or "An admin operation (docs/identity.md): one commit, signed where the store requires it.",
        surfaces=NOT_MCP,
        cli=cli,
        past="changed the policy",
    )


_HELD = "you already hold {task} since {since}; nothing changed"
_CLAIM_ERRORS = (E.NotFound, E.LostRace, E.NotClaimable, E.Blocked)
_VERB_ERRORS = (E.NotFound, E.NotClaimable, E.NotHolder)


def _verb(
    name: str,
    summary: str,
    past: str,
    *extra: Param,
    effect: Effect = Effect.CHANGE,
    details: str = "",
    names_holder: str = "",
) -> Operation:
    """A lifecycle verb on one task (:mod:`gitclaim.ops.verbs`)."""
    params = (TASK_ID, *extra, AGENT)
    return Operation(name, summary, params, effect, "op", _VERB_ERRORS, details, past=past, names_holder=names_holder)


def _view(
    name: str, summary: str, result: str, *params: Param, errors: tuple[type[E.GitclaimError], ...] = ()
) -> Operation:
    return Operation(name, summary, (*params, OFFLINE), Effect.READ, result, errors)


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "init",
        "Create the store branch on the remote, or attach to an existing one.",
        (
            AGENT,
            Param(
                "require_signed",
                bool,
                "A new store requires signed commits; this agent, with its signing key, is its first admin.",
                False,
                ("--require-signed",),
            ),
        ),
        Effect.CHANGE,
        "init",
        past="initialised",
    ),
    Operation(
        "restore",
        "Put back the store branch this clone last saw, history intact, after it vanished from the remote.",
        (AGENT,),
        Effect.CHANGE,
        "restore",
        details="It creates the branch only where the remote has none: never over one made since.",
        commits=False,
        past="restored",
    ),
    Operation(
        "add",
        "Add one task (one commit); it starts in todo.",
        (
            Param("title", str, "Title of the new task."),
            Param("task_id", str | None, "Task id (a slug); default: a short random id.", None, ("--id",)),
            Param("priority", int | None, "0 (most urgent) to 9; default 2.", None, ("--priority", "-p")),
            Param("depends_on", list[str] | None, "A task this one waits for.", None, ("--depends-on", "-d")),
            Param("tags", list[str] | None, "A tag.", None, ("--tag", "-t")),
            Param("description", str, "Longer description.", "", ("--description",)),
            Param("acceptance", list[str] | None, "An acceptance criterion.", None, ("--acceptance",)),
            Param("parent", str | None, "The task this one is part of (an epic).", None, ("--parent",), "ID"),
            AGENT,
        ),
        Effect.CHANGE,
        "added",
        (E.AlreadyExists,),
        custom=frozenset({Surface.CLI}),  # with --file it adds many
        usage="add TITLE [--id ID] [--priority N] [--depends-on ID]... [--tag T]... [--description TEXT]"
        " [--acceptance TEXT]... [--parent ID]",
        past="added",
    ),
    Operation(
        "add_many",
        "Add many tasks in one commit; they may depend on each other (by id) and on existing tasks.",
        (Param("entries", list[dict[str, Any]], "The new tasks.", wire="tasks"), AGENT),
        Effect.CHANGE,
        "added",
        (E.AlreadyExists,),
        "Either all are added or none.",
        surfaces=frozenset({Surface.MCP, Surface.API}),  # the CLI says `add --file FILE`
        custom=frozenset({Surface.MCP}),
        usage="add --file FILE",
        past="added",
    ),
    _view(
        "list",
        "List tasks, filtered by state, holder, tag or parent; by priority, then age.",
        "listing",
        Param(
            "state",
            list[str] | None,
            "Only tasks in these states (backlog, todo, someday, active, waiting, review, done, failed, cancelled).",
            None,
            ("--state", "-s"),
            "STATE",
        ),
        Param("holder", str | None, "Only tasks held by this agent.", None, ("--holder",), "AGENT"),
        Param("tag", str | None, "Only tasks with this tag.", None, ("--tag", "-t"), "TAG"),
        Param("parent", str | None, "Only the children of this task.", None, ("--parent",), "ID"),
        LIMIT,
    ),
    Operation(
        "ready",
        "Tasks claimable now, by priority, then age.",
        (LIMIT, OFFLINE),
        Effect.READ,
        "listing",
        details="Claimable: a claimable state with every dependency done. Claim one with claim, or let next pick.",
    ),
    _view("show", "One task: its fields, what blocks it, and its history.", "task_view", TASK_ID, errors=(E.NotFound,)),
    Operation(
        "claim",
        "Claim a task: one commit, pushed with compare-and-swap. Exactly one agent wins.",
        (TASK_ID, AGENT, TTL),
        Effect.CHANGE,
        "op",
        _CLAIM_ERRORS,
        "Claiming a task you already hold succeeds with changed=false. A task whose lease expired is taken"
        " over (previous_holder names whom from).",
        past="claimed",
        names_holder="as",
        unchanged=_HELD,
    ),
    Operation(
        "next",
        "Claim the best ready task; having lost a race, go on to the next.",
        (AGENT, TTL, WAIT, TIMEOUT),
        Effect.CHANGE,
        "op",
        (E.NothingReady, E.LostRace, E.NotClaimable, E.Blocked),
        "The usual way to get work: by priority, then age. With wait, block until a task is claimable"
        " (looking at the remote's tip, fetching only when it moved); after timeout, nothing_ready with"
        " details.timed_out.",
        past="claimed",
        names_holder="as",
        shows_title=True,
        unchanged=_HELD,
    ),
    Operation(
        "run",
        "Claim a task, run COMMAND on it and keep its lease while it runs; done on exit 0, failed otherwise.",
        (
            Param("task_id", str | None, "The task to claim (or --next).", None, metavar="[ID]"),
            Param("pick_next", bool, "Claim the best ready task.", False, ("--next",)),
            TTL,
            Param("loop", bool, "With --next: one task after another, until nothing is ready.", False, ("--loop",)),
            AGENT,
            Param("command", list[str], "COMMAND and its arguments, after --.", metavar="-- COMMAND..."),
        ),
        Effect.CHANGE,
        "ran",
        (E.NothingReady, E.LostRace, E.NotClaimable, E.Blocked, E.NotFound),
        "COMMAND gets GITCLAIM_TASK, GITCLAIM_AGENT and GITCLAIM_TASK_FILE (the task as JSON). The lease is"
        " renewed every third of its length; SIGINT or SIGTERM is forwarded to COMMAND, then the task is"
        " released; a task taken over meanwhile stops COMMAND. The exit status is COMMAND's (docs/agents-run.md).",
        surfaces=NOT_MCP,
        custom=frozenset({Surface.CLI}),
        usage="run (ID or --next) [--ttl D] [--loop] -- COMMAND...",
        past="ran",
    ),
    _verb(
        "release", "Give your claimed task back to the queue.", "released", details="Holder only; it goes back to todo."
    ),
    replace(
        _verb(
            "done",
            "Mark your claimed task done, with what the work produced.",
            "finished",
            Param(
                "result",
                str | None,
                "What the work produced (a link, a commit, a summary); recorded with the completion.",
                None,
                ("--result",),
                "TEXT",
            ),
            Param(
                "next",
                bool,
                "Also claim the best ready task, in the same commit and push (having lost a race, another).",
                False,
                ("--next",),
            ),
            replace(TTL, help="With --next: the lease of the task it claims (90, 90s, 15m, 2h, 1d; 0: none)."),
            details="The holder finishes an active task; anyone may approve a task in review. A result"
            " given is kept on the task (show prints it) and named in the commit (log shows it). With next,"
            " the same commit claims the next task as next would: next is that claim, or nothing_ready is"
            " true and the task is only finished.",
        ),
        result="done",
        custom=frozenset({Surface.CLI}),  # --result-file FILE
        usage="done ID [--result TEXT] [--result-file FILE] [--next [--ttl D]]",
    ),
    Operation(
        "note",
        "Append a timestamped note to a task (one commit); notes are never rewritten.",
        (TASK_ID, Param("text", str, "The note.", metavar="TEXT"), AGENT),
        Effect.CHANGE,
        "op",
        (E.NotFound, E.NotClaimable),
        "Anyone may note any task, in any state but archived: progress, findings, what was tried.",
        past="noted",
    ),
    _verb(
        "handoff",
        "Pass your active task to another agent; the commit records both.",
        "handed off",
        Param("to", str, "The agent who takes the task over.", flags=("--to",), metavar="AGENT"),
        names_holder="to",
    ),
    _verb(
        "wait",
        "Park your task until something outside the queue happens (you keep it).",
        "parked",
        Param("waiting_for", str, "What the task waits for.", flags=("--for",), metavar="TEXT"),
    ),
    _verb("resume", "Continue your waiting task.", "resumed", details="Holder only; back to active."),
    _verb("review", "Ask for review of your task; anyone may then `done` or `reopen` it.", "sent for review"),
    _verb(
        "fail",
        "Give up on your task, saying why.",
        "failed",
        Param("reason", str, "Why the task failed.", flags=("--reason",), metavar="TEXT"),
    ),
    _verb("cancel", "Drop a task (anyone if unheld; the holder if held).", "cancelled", effect=Effect.DROP),
    _verb("reopen", "Put a done, cancelled, failed or reviewed task back in the queue.", "reopened"),
    _verb(
        "reset",
        "Clear anyone's claim on a task and put it back (records whom it was taken from).",
        "reset",
        effect=Effect.DROP,
        details="An operator's override: previous_holder names whom it was taken from.",
    ),
    _verb(
        "retry",
        "Run a failed or done task again, clearing claims downstream of it in the same commit.",
        "retried",
        details="The tasks whose claims were cleared are listed in also.",
    ),
    Operation(
        "edit",
        "Change plain fields (title, priority, tags, depends_on, your own fields...).",
        (TASK_ID, Param("changes", dict[str, str], "FIELD=VALUE (repeat).", flags=("--set",)), AGENT),
        Effect.CHANGE,
        "op",
        (E.NotFound, E.NotClaimable),
        "state may move only among backlog, todo and someday; claims change only through the verbs.",
        custom=frozenset({Surface.CLI, Surface.MCP}),
        usage="edit ID --set FIELD=VALUE...",
        past="edited",
        unchanged="{task} already has those values; nothing changed",
    ),
    Operation(
        "heartbeat",
        "Renew the leases you hold (no commit on the store branch).",
        (AGENT,),
        Effect.CHANGE,
        "heartbeat",
        details="Call it every few minutes while working on a task claimed with a lease.",
        commits=False,
    ),
    _view(
        "stale",
        "Claims whose lease expired (and, with --silent-after, whose holder went quiet).",
        "stale",
        SILENT_AFTER,
        LIMIT,
    ),
    Operation(
        "reap",
        "Return every stale claim to the queue, in one commit.",
        (SILENT_AFTER, AGENT),
        Effect.DROP,
        "reaped",
        details="The commit records whom each claim was taken from.",
    ),
    Operation(
        "watch",
        "Print the store's changes as they land, one line (or JSON object) per operation, until Ctrl-C.",
        (),
        Effect.READ,
        "watched",
        details="Looks at the remote's tip with a bounded backoff and fetches only when it moved; with --json,"
        " one log entry object per line.",
        surfaces=NOT_MCP,
        custom=frozenset({Surface.CLI}),
    ),
    _view("board", "Every task, in columns by state.", "board", LIMIT),
    _view("who", "Who holds what, since when, and whether each lease is live.", "who", LIMIT),
    _view("blocked", "What waits on what: dependencies not done, and tasks waiting on the outside.", "blocked", LIMIT),
    _view(
        "graph",
        "The dependency graph as Graphviz DOT or Mermaid.",
        "graph",
        Param("fmt", str, "dot or mermaid.", "mermaid", ("--format", "-f"), "FORMAT", wire="format"),
    ),
    _view(
        "log",
        "The audit trail, newest first: who did what to which task, when.",
        "history",
        Param("task_id", str | None, "Only entries about this task.", None, metavar="[ID]"),
        LIMIT,
    ),
    _policy(
        "signers_add",
        "signers add",
        "List an agent's public key in the store's allowed_signers (and give it a role).",
        SIGNER_NAME,
        Param("key", str, "A public key file (.pub), or the key itself: ssh-ed25519 AAAA...", metavar="PUBKEY_FILE"),
        Param("admin", bool, "Also make the agent an admin.", False, ("--admin",)),
        Param("operator", bool, "Also make the agent an operator.", False, ("--operator",)),
    ),
    _policy("signers_remove", "signers remove", "Take an agent's keys out of allowed_signers.", SIGNER_NAME),
    Operation(
        "signers_list",
        "The store's allowed signers, roles, pusher map, and whether signatures are required.",
        (OFFLINE,),
        Effect.READ,
        "policy",
        surfaces=NOT_MCP,
        cli="signers list",
    ),
    _policy(
        "signers_require",
        "signers require",
        "Require a good signature on every commit from now on.",
        details="The admin's own key must be listed first (signers add), so that it vouches for this commit.",
    ),
    _policy(
        "access_grant",
        "access grant",
        "Give an agent a role, or let a pusher act as agents.",
        ROLE,
        ROLE_NAME,
        AS_AGENTS,
    ),
    _policy(
        "access_revoke",
        "access revoke",
        "Take a role away, or a pusher's right to act as agents.",
        ROLE,
        ROLE_NAME,
        AS_AGENTS,
    ),
    Operation(
        "verify",
        "Replay the store branch's history through the validator, the signature and the identity checks.",
        (
            Param(
                "since",
                str | None,
                "Trust this commit and its policy as given; check what follows (default: from the root).",
                None,
                ("--since",),
                "REV",
            ),
            Param(
                "admins",
                list[str] | None,
                "NAME=PUBKEY_FILE: a key trusted from outside the branch to set the store's first policy.",
                None,
                ("--admin",),
                "NAME=PUBKEY_FILE",
            ),
            OFFLINE,
        ),
        Effect.READ,
        "verified",
        (E.VerifyFailed,),
        "Exit 0 when every commit keeps the rules; exit 21 (verify_failed) with each violation otherwise:"
        " its commit, rule, author and what the change did. What a team whose host runs no server hook"
        " (github.com) runs in CI on every push to the store branch (docs/identity.md).",
    ),
    Operation(
        "compact",
        "Replace the store branch's history with one commit; keep the history in a create-only archive ref.",
        (AGENT,),
        Effect.CHANGE,
        "compacted",
        (E.NotAllowed, E.RetriesExhausted),
        surfaces=NOT_MCP,
        details="Operators only, signed where the store requires signatures. One push creates"
        " refs/gitclaim/archive/BRANCH/DATE-TIP at the old tip and moves the branch to a parentless commit"
        " holding the same tree: fresh clones fetch one commit, and log, show and verify read on through the"
        " archive. The server hook accepts no other rewrite (docs/history.md).",
    ),
    Operation(
        "archive",
        "Move done and cancelled tasks finished before a date out of the live folder, in one commit.",
        (
            Param(
                "done_before",
                str,
                "Archive the tasks finished before this: a date (2026-01-31), a time (2026-01-31T12:00Z) or an age"
                " (30d, 2w, 12h).",
                flags=("--done-before",),
                metavar="DATE",
            ),
            Param("dry_run", bool, "Say which tasks would move; change nothing.", False, ("--dry-run",)),
            AGENT,
        ),
        Effect.CHANGE,
        "archived",
        (E.NotAllowed, E.RetriesExhausted),
        surfaces=NOT_MCP,
        details="Operators only (anyone where the store has no access file), signed where the store requires"
        " signatures. Each task's file moves unchanged from tasks/ to archive/: ready, list, board and next no"
        " longer read it, show and log still do, a dependency on it keeps its state's rule (done: met), and it is"
        " never claimed, reopened or changed again. Nothing finished before the date: nothing is written"
        " (docs/history.md).",
    ),
    Operation(
        "hooks",
        "Install the hooks that enforce the store's rules on every push.",
        result="installed",
        surfaces=frozenset({Surface.CLI}),
        custom=frozenset({Surface.CLI}),
        usage="hooks install [--server PATH [--vref]]",
        effect=Effect.CHANGE,
        commits=False,
    ),
    Operation(
        "mcp",
        "Serve the store to MCP clients over stdio (needs the `mcp` extra).",
        (AGENT,),
        surfaces=frozenset({Surface.CLI}),
        custom=frozenset({Surface.CLI}),
        usage="mcp [--agent A]",
    ),
    Operation(
        "demo",
        "Run a team of agent processes on a fresh local store and show who did what.",
        result="demo",
        surfaces=frozenset({Surface.CLI}),
        custom=frozenset({Surface.CLI}),
        usage="demo [--agents N] [--tasks N] [--keep]",
    ),
)

BY_NAME: dict[str, Operation] = {op.name: op for op in OPERATIONS}


def carried(surface: Surface, *, generated: bool | None = None) -> list[Operation]:
    """The operations ``surface`` carries (only the generated or only the
    hand-written ones, with ``generated``)."""
    out = [op for op in OPERATIONS if surface in op.surfaces]
    if generated is not None:
        out = [op for op in out if (surface not in op.custom) is generated]
    return out


def invoke(store: Store, op: Operation, args: Mapping[str, Any]) -> Jsonable:
    """Run ``op`` as the Store method of its name, with ``args`` as keywords
    (a None is an argument not given: the method's default applies)."""
    result: Jsonable = getattr(store, op.name)(**{k: v for k, v in args.items() if v is not None})
    return result


# --- what the operations return (the MCP descriptions and docs/cli.md) ---------------------

TASK = (
    "{id, title, state, priority, depends_on, tags, description, acceptance, created_at, created_by,"
    " claim: {holder, claimed_at, lease_seconds} or null, waiting_for, fail_reason, extra, parent,"
    " result: {text, by, at} or null, notes: [{at, by, text}]}"
)
ENTRY = "{commit, time, author, subject, op, agent, tasks, from, to, trailers, moves: [move], violations: [text]}"
MOVE = "{task, verb, from, to, holder_before, holder_after}: what the commit did to one task, read from its file"
STALE_CLAIM = "{task, holder, claimed_at, lease_expires, last_seen, reason}"
PROBLEM = "{path, message, code}: a file on the branch that could not be read, and was skipped"

RESULTS: dict[str, tuple[str, tuple[str, ...]]] = {  # the shape, and the terms it uses
    "init": ("{remote, branch, commit, created}", ()),
    "restore": ("{remote, branch, commit, restored}", ()),
    "added": ("{tasks: [task], commit, retries}", ("task",)),
    "op": ("{op, task, from, to, commit, changed, retries, previous_holder, also: [task]}", ("task",)),
    "done": (
        "{op, task, from, to, commit, changed, retries, previous_holder, also: [task], next: {op, task, from, to,"
        " commit, changed, retries, previous_holder, also} or null, nothing_ready}",
        ("task",),
    ),
    "listing": ("{tasks: [task], problems: [problem], commit, total, cut}", ("task", "problem")),
    "task_view": (
        "{task, path, archived, blockers: [{id, state}], children: [{id, state, title}], history: [entry], history_cut,"
        " commit, fetched: [text]}",
        ("task", "entry", "move"),
    ),
    "heartbeat": ("{agent, at, holding: [task id]}", ()),
    "ran": (
        "{agent, runs: [{task, outcome: done|failed|released|lost|left, status, commit, renewals, seconds, state,"
        " holder, signal}], status}",
        ("task",),
    ),
    "watched": ("one entry per line, as it lands", ("entry", "move")),
    "stale": (
        "{claims: [stale claim], problems: [problem], commit, now, total, cut}",
        ("stale claim", "task", "problem"),
    ),
    "reaped": ("{reaped: [stale claim], commit, retries}", ("stale claim", "task")),
    "board": (
        "{columns: {state: [task]}, problems: [problem], commit, total: {state: count}, cut}",
        ("task", "problem"),
    ),
    "who": (
        "{holdings: [{task, holder, claimed_at, lease_expires, last_seen, lease}], problems: [problem], commit, now,"
        " total, cut}",
        ("task", "problem"),
    ),
    "blocked": (
        "{tasks: [{task, blockers: [{id, state}], waiting_for}], problems: [problem], commit, total, cut}",
        ("task", "problem"),
    ),
    "graph": ("{format, text, problems: [problem], commit}", ("problem",)),
    "history": ("{entries: [entry], cut, commit, total, fetched: [text]}", ("entry", "move")),
    "installed": (
        "{path, updated, chained, gitolite: {mode, repo, home, local_code, rc_file, rc_settings, rc_enable, conf,"
        " active, detected_by, notes} or null}",
        (),
    ),
    "policy": (
        "{require_signed, admins, operators, pushers: {pusher: [agent]}, signers: [{name, key, fingerprint}],"
        " commit, changed, retries}",
        (),
    ),
    "verified": ("{ok, commits, since, tip, violations: [violation], fetched: [text]}", ("violation",)),
    "compacted": ("{old_tip, tip, archive, replaced, changed, retries}", ()),
    "archived": ("{before, archived: [task id], count, commit, changed, dry_run, retries}", ()),
    "demo": (
        "{folder, agents, tasks, per_agent, claims, double_claims, not_done, retries, seconds, commits, ok}",
        (),
    ),
}
VIOLATION = "{commit, rule, path, task, message, author, agent, did}"
TERMS: dict[str, str] = {
    "task": TASK,
    "entry": ENTRY,
    "stale claim": STALE_CLAIM,
    "problem": PROBLEM,
    "violation": VIOLATION,
    "move": MOVE,
}


def result_text(op: Operation) -> str:
    """The result's shape, with the terms it uses spelled out."""
    shape, terms = RESULTS[op.result]
    return shape + "".join(f"; {term} is {TERMS[term]}" for term in terms)
